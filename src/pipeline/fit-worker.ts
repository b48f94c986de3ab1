/**
 * Worker-thread entry for src/pipeline/parallel.ts: fits the layers it is sent, one at a time,
 * and sends back their coefficient blocks (transferred).
 */
import { parentPort } from 'node:worker_threads';
import { outcomeTransfers, runFitTask, serializeError, type FitTask } from './parallel.js';

const port = parentPort;
if (port === null) throw new Error('fit-worker.js runs as a worker thread');
port.on('message', ({ id, task }: { id: number; task: FitTask }) => {
  try {
    const outcome = runFitTask(task);
    port.postMessage({ id, outcome }, outcomeTransfers(outcome));
  } catch (e) {
    port.postMessage({ id, error: serializeError(e) });
  }
});
