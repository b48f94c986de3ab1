#!/usr/bin/env node
// Thin shim: the CLI is compiled TypeScript (npm run build) in dist/.
import('../dist/src/cli/main.js').then((m) => m.main(process.argv), (e) => {
  if (e && e.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes('dist/src/cli/main.js')) {
    process.stderr.write('nola: error: nola is not built yet: run npm run build (in the nola checkout) first\n');
    process.exit(1);
  }
  throw e;
});
