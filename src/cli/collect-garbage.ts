/**
 * A major collection of the main thread's heap, run by the CLI between the files of a library run
 * once the heap has grown a step past what the last one left live
 * (issue 12; the CLI's memory policy, beside bin/nola.js's, docs/PERFORMANCE.md "Libraries"). V8
 * lets an isolate's old generation grow at least 8 MiB past what survived its last major collection
 * before it collects again; one file never fills that, a run of many fills it with finished files'
 * garbage. A collection between files costs a few milliseconds (the main thread's live heap is about
 * 10 MiB). The API (src/index.ts) leaves its host's heap to its host.
 *
 * Node gives scripts gc() only behind --expose-gc: the flag is set just long enough to make one
 * context that has it, then unset, so worker threads started later do not get it.
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | undefined;

/** Best effort: where the host forbids it (a policy, an embedder), the run goes on without it. */
export function collectGarbage(): void {
  gc ??= findGc();
  gc();
}

/**
 * The main thread's heap may grow this far past what the last collection left live before the next
 * file is followed by a collection. Since the main thread fits layers too (LanePool), a collection
 * after every file cost 8–10% more CPU in a library run (its fit code re-warms after each); at 8 MiB
 * a run of 40 SD-1.5-sized files takes the time it took with no collection, at 112–117 MiB against
 * 117–133 without (docs/PERFORMANCE.md, "One lane on the calling thread").
 */
const GROWTH_STEP_BYTES = 8 * 1024 * 1024;
let liveAfterLast = 0;

/** collectGarbage, when the heap has grown GROWTH_STEP_BYTES past what the last one left (the first call always); whether it collected. */
export function collectGarbageIfGrown(): boolean {
  if (liveAfterLast > 0 && getHeapStatistics().used_heap_size <= liveAfterLast + GROWTH_STEP_BYTES) return false;
  collectGarbage();
  liveAfterLast = getHeapStatistics().used_heap_size;
  return true;
}

function findGc(): () => void {
  try {
    setFlagsFromString('--expose-gc');
    const found: unknown = runInNewContext('gc');
    return typeof found === 'function' ? (found as () => void) : () => {};
  } catch {
    return () => {};
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}
