/**
 * A worker entry for test/pipeline/worker-pool.test.ts: doubles numbers, refuses "usage" with a
 * UsageError, and dies with exit code 3 on "exit" (a crashed worker, as an out-of-memory kill is).
 */
import { isMainThread } from 'node:worker_threads';
import { serveJobs } from '../../src/pipeline/worker-pool.js';
import { UsageError } from '../../src/errors.js';

// node --test runs every file under dist/test/: loaded there (not as a worker) it does nothing.
if (!isMainThread) serveJobs((job: number | 'usage' | 'exit'): Float64Array => {
  if (job === 'exit') process.exit(3);
  if (job === 'usage') throw new UsageError('refused on the worker');
  return Float64Array.of(job * 2);
}, (r) => [r.buffer as ArrayBuffer]);

