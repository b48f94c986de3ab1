/**
 * Worker-thread entry for src/pipeline/expand-layer.ts: synthesizes the layers it is sent, one at
 * a time, and sends back their encoded factors (transferred).
 */
import { parentPort } from 'node:worker_threads';
import { expandedTransfers, runExpandJob, type ExpandJob } from './expand-layer.js';
import { serializeError } from './parallel.js';

const port = parentPort;
if (port === null) throw new Error('expand-worker.js runs as a worker thread');
port.on('message', ({ id, job }: { id: number; job: ExpandJob }) => {
  try {
    const layer = runExpandJob(job);
    port.postMessage({ id, layer }, expandedTransfers(layer));
  } catch (e) {
    port.postMessage({ id, error: serializeError(e) });
  }
});
