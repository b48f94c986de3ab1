#!/usr/bin/env node
// Thin shim: the CLI is compiled TypeScript (npm run build) in dist/.
// Memory policy (docs/PERFORMANCE.md, issue 12): V8 doubles a busy isolate's young generation up to
// 16 MiB a semi-space and keeps it; over a library run that grew the main thread and each fit worker
// by about 25 MiB (1.4x one file's peak RSS over 40 SD-1.5 files) at no gain in speed. Workers are
// held at the starting size by their own resource limits (src/pipeline/worker-pool.ts); the main
// thread by this flag, set before the CLI's modules load and again as each worker comes online (a
// worker's start-up resets V8's flags, which are the process's). The CLI's policy only: the API
// (src/index.ts) leaves its host's flags alone.
import { setFlagsFromString } from 'node:v8';
const holdYoungGeneration = () => setFlagsFromString('--semi-space-growth-factor=1');
holdYoungGeneration();
process.on('worker', (worker) => worker.once('online', holdYoungGeneration));
import('../dist/src/cli/main.js').then((m) => m.main(process.argv), (e) => {
  if (e && e.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes('dist/src/cli/main.js')) {
    process.stderr.write('nola: error: nola is not built yet: run npm run build (in the nola checkout) first\n');
    process.exit(1);
  }
  throw e;
});
