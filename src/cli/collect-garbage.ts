/**
 * A major collection of the main thread's heap, run by the CLI between the files of a library run
 * (issue 12; the CLI's memory policy, beside bin/nola.js's, docs/PERFORMANCE.md "Libraries"). V8
 * lets an isolate's old generation grow at least 8 MiB past what survived its last major collection
 * before it collects again; one file never fills that, a run of many fills it with finished files'
 * garbage. A collection between files costs a few milliseconds (the main thread's live heap is about
 * 10 MiB). The API (src/index.ts) leaves its host's heap to its host.
 *
 * Node gives scripts gc() only behind --expose-gc: the flag is set just long enough to make one
 * context that has it, then unset, so worker threads started later do not get it.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | undefined;

/** Best effort: where the host forbids it (a policy, an embedder), the run goes on without it. */
export function collectGarbage(): void {
  gc ??= findGc();
  gc();
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
