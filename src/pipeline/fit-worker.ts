/**
 * Worker-thread entry for src/pipeline/parallel.ts: fits the layers it is sent, one at a time,
 * and sends back their coefficient blocks (transferred).
 */
import { outcomeTransfers, runFitTask } from './parallel.js';
import { serveJobs } from './worker-pool.js';

serveJobs(runFitTask, outcomeTransfers);
