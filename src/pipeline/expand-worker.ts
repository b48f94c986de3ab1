/**
 * Worker-thread entry for src/pipeline/expand-layer.ts: synthesizes the layers it is sent, one at
 * a time, and sends back their encoded factors (transferred).
 */
import { expandedTransfers, runExpandJob } from './expand-layer.js';
import { serveJobs } from './worker-pool.js';

serveJobs(runExpandJob, expandedTransfers);
