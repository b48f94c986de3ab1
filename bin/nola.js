#!/usr/bin/env node
// Thin shim: the CLI is compiled TypeScript (npm run build) in dist/.
import('../dist/src/cli/main.js').then((m) => m.main(process.argv));
