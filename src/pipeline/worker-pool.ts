/**
 * Lanes for per-layer jobs: the calling thread and worker threads (LanePool), the one mechanism
 * behind compress's fit (parallel.ts) and expand's synthesis (expand-layer.ts).
 *
 * Protocol: the pool posts `{ id, job }`; the worker (its entry calls `serveJobs`) answers
 * `{ id, result }` or `{ id, error }`, transferring the result's buffers. Errors cross as plain data
 * and are rebuilt as nola's typed errors, so a worker's refusal keeps its exit code. A worker that
 * dies fails the pool: every job in flight and every caller waiting for a worker gets that failure.
 */
import { Worker, parentPort } from 'node:worker_threads';
import { BackendUnavailableError, FormatError, IoError, NolaError, NumericError, PairingError, UsageError } from '../errors.js';

/** Errors cross the thread boundary as plain data; rebuild the typed ones so exit codes survive. */
export interface SerializedError { name: string; message: string; stack?: string }
const ERROR_TYPES: Record<string, new (m: string) => NolaError> = {
  UsageError, FormatError, PairingError, NumericError, BackendUnavailableError, IoError,
};
export function serializeError(e: unknown): SerializedError {
  const err = e instanceof Error ? e : new Error(String(e));
  return { name: err.name, message: err.message, stack: err.stack };
}
export function deserializeError(s: SerializedError): Error {
  const Type = ERROR_TYPES[s.name];
  const err = Type ? new Type(s.message) : new Error(s.message);
  if (s.stack !== undefined) err.stack = s.stack;
  return err;
}

/** The buffers of these arrays that can move to another thread whole (each once; views into larger buffers are left). */
export function wholeBuffers(arrays: ReadonlyArray<Uint8Array | Float64Array>): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const u of arrays) {
    if (u.buffer instanceof ArrayBuffer && u.byteOffset === 0 && u.byteLength === u.buffer.byteLength) out.add(u.buffer);
  }
  return [...out];
}

/**
 * Each worker's young generation, fixed at V8's starting size (3 MiB: two 1 MiB semi-spaces and the
 * new large-object space). V8 would double a busy worker's up to 48 MiB and keep it: over a library
 * run that was about 30 MiB a worker at no gain in speed (docs/PERFORMANCE.md "Libraries"). A limit of
 * the worker's own isolate, so V8's process-wide flags, which every worker's start-up resets, do not
 * decide it; bin/nola.js holds the main thread's the same way with a flag.
 */
const YOUNG_GENERATION_MB = 3;

interface Reply<R> { id: number; result?: R; error?: SerializedError }
interface Pending<R> { resolve: (r: R) => void; reject: (e: Error) => void }

export interface PoolOptions<J> {
  /** Named in the failure when a worker dies ("fit worker exited with code 1"). */
  name: string;
  /** The message to post for a job and the buffers to transfer with it (default: the job, nothing transferred). */
  prepare?: (job: J) => { job: J; transfer: ArrayBuffer[] };
  /** Each worker's old-generation limit in MiB (default: V8's). See LIBRARY_OLD_GENERATION_MB. */
  oldGenerationMb?: number;
  /** Jobs posted to a worker at once (default 1); 2 keeps a worker busy while the main thread is. */
  depth?: number;
  /**
   * LanePool: false keeps the calling thread out of the lanes even under setCallingThreadLane (jobs
   * that can hold a thread for seconds: its event loop, so Ctrl-C and progress, would wait that long).
   */
  callingThread?: boolean;
}

/**
 * The old-generation limit of a library run's workers (issue 12). V8 lets an isolate's old
 * generation grow at least 8 MiB past what survived its last major collection before the next one,
 * and only 2 MiB when the isolate is short of room (its "conservative" growing mode, which it
 * enters when the limit leaves less than 128 MiB free). One file never fills that slack; a run of
 * many fills it with finished files' garbage in every thread, which is most of what a library run
 * held above one file's peak. A fit worker's heap holds small objects only (7–13 MiB live: layer
 * data lives in array buffers, outside the heap), so this limit puts it in that mode at no risk of
 * running out; measured cost and effect in docs/PERFORMANCE.md "Libraries".
 */
export const LIBRARY_OLD_GENERATION_MB = 128;

export class WorkerPool<J, R> {
  private readonly load = new Map<Worker, number>();
  private readonly all: Worker[] = [];
  private readonly online: Array<Promise<void>> = [];
  private readonly waiting: Array<() => void> = [];
  private readonly pending = new Map<number, Pending<R>>();
  private nextId = 0;
  private failure: Error | undefined;

  constructor(readonly threads: number, private readonly script: URL, private readonly options: PoolOptions<J>) {}

  private spawn(): Worker {
    const limits = { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB, ...(this.options.oldGenerationMb === undefined ? {} : { maxOldGenerationSizeMb: this.options.oldGenerationMb }) };
    const w = new Worker(this.script, { resourceLimits: limits });
    w.on('message', (m: Reply<R>) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      this.release(w);
      if (p === undefined) return;
      if (m.error !== undefined) p.reject(deserializeError(m.error));
      else p.resolve(m.result as R);
    });
    w.on('error', (e) => this.fail(e));
    w.on('exit', (code) => { if (code !== 0) this.fail(new Error(`${this.options.name} worker exited with code ${code}`)); });
    this.all.push(w);
    this.load.set(w, 0);
    this.online.push(new Promise<void>((resolve) => { w.once('online', resolve); w.once('error', () => resolve()); w.once('exit', () => resolve()); }));
    return w;
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    // Callers waiting for a worker would wait forever: wake them, acquire() then throws the failure.
    for (const wake of this.waiting.splice(0)) wake();
  }

  private release(w: Worker): void {
    this.load.set(w, this.load.get(w)! - 1);
    this.waiting.shift()?.();
  }

  /** The least loaded worker with room for a job (an idle one first, then a new one, then one to queue behind). */
  private async acquire(): Promise<Worker> {
    const depth = this.options.depth ?? 1;
    for (;;) {
      if (this.failure) throw this.failure;
      let best: Worker | undefined;
      for (const w of this.all) if (best === undefined || this.load.get(w)! < this.load.get(best)!) best = w;
      if (best !== undefined && this.load.get(best) === 0) return this.take(best);
      if (this.all.length < this.threads) return this.take(this.spawn());
      if (best !== undefined && this.load.get(best)! < depth) return this.take(best);
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  private take(w: Worker): Worker {
    this.load.set(w, this.load.get(w)! + 1);
    return w;
  }

  /** Resolves when every worker started so far runs (or has failed): its start-up no longer touches the process's V8 flags. */
  async started(): Promise<void> {
    await Promise.all(this.online);
  }

  async run(job: J): Promise<R> {
    const w = await this.acquire();
    const id = this.nextId++;
    const { job: msg, transfer } = this.options.prepare?.(job) ?? { job, transfer: [] };
    return new Promise<R>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.postMessage({ id, job: msg }, transfer);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((w) => w.terminate()));
    this.all.length = 0;
    this.load.clear();
    this.online.length = 0;
  }
}

/** A worker entry's whole body: answer each `{ id, job }` with `run(job)`, transferring `transfers(result)`. */
export function serveJobs<J, R>(run: (job: J) => R, transfers: (result: R) => ArrayBuffer[]): void {
  const port = parentPort;
  if (port === null) throw new Error('this module runs as a worker thread');
  port.on('message', ({ id, job }: { id: number; job: J }) => {
    try {
      const result = run(job);
      port.postMessage({ id, result }, transfers(result));
    } catch (e) {
      port.postMessage({ id, error: serializeError(e) });
    }
  });
}

/**
 * Jobs posted to each worker of a LanePool at once: the second waits in the worker's queue, so a
 * worker that finishes while the calling thread is busy with its own job goes straight on.
 */
const WORKER_DEPTH = 2;

let callingThreadLane = false;

/**
 * Whether the calling thread is one of a LanePool's lanes: the CLI's policy (src/cli/main.ts), which
 * owns its process. Off (the default, the API's): a host's event loop is not held by nola's layers,
 * and `threads` are all workers, one job at a time each, threads + 1 in flight.
 */
export function setCallingThreadLane(on: boolean): void {
  callingThreadLane = on;
}

/**
 * `threads` lanes for jobs: the calling thread itself and threads − 1 workers (started on demand).
 * The calling thread would otherwise sit waiting for the workers (it only reads layers and encodes
 * results, a small share of the work), and every worker is an isolate with its own heap and malloc
 * arena: one fewer took 15% off an SD-1.5-sized compress's peak RSS and 27% off a 7B-shaped one's
 * at the same speed (docs/PERFORMANCE.md, "One lane on the calling thread"). A job on the calling
 * thread holds its event loop for the job's duration (a layer: milliseconds to a fraction of a
 * second), so progress and signals are handled between layers. threads = 1 runs everything inline.
 * Jobs go to a worker with room first, so workers have their next job queued before the calling
 * thread starts one of its own. `window` is how many jobs can be running or queued at once: what a
 * caller keeps in flight to keep every lane busy. Without setCallingThreadLane(true), or with
 * `callingThread: false`, the lanes are `threads` workers (threads = 1: the calling thread alone).
 */
export class LanePool<J, R> {
  readonly window: number;
  private readonly workers: WorkerPool<J, R> | undefined;
  /** Jobs handed to the workers at once (running or queued in a worker; without the calling thread's lane, one more waits in the WorkerPool). */
  private readonly workerSlots: number;
  private posted = 0;
  private inlineBusy = false;
  private readonly waiting: Array<() => void> = [];
  /** Whether the calling thread takes jobs: always with one thread; with more, by setCallingThreadLane. */
  private readonly inlineLane: boolean;

  constructor(readonly threads: number, script: URL, options: PoolOptions<J>, private readonly inline: (job: J) => R) {
    this.inlineLane = threads <= 1 || (callingThreadLane && options.callingThread !== false);
    const workers = this.inlineLane ? Math.max(0, threads - 1) : threads;
    const depth = this.inlineLane ? WORKER_DEPTH : 1;
    this.workers = workers > 0 ? new WorkerPool<J, R>(workers, script, { ...options, depth }) : undefined;
    this.workerSlots = workers === 0 ? 0 : this.inlineLane ? depth * workers : threads + 1;
    this.window = this.workerSlots + (this.inlineLane ? 1 : 0);
  }

  async run(job: J): Promise<R> {
    for (;;) {
      if (this.workers !== undefined && this.posted < this.workerSlots) {
        this.posted++;
        try {
          return await this.workers.run(job);
        } finally {
          this.posted--;
          this.waiting.shift()?.();
        }
      }
      if (this.inlineLane && !this.inlineBusy) {
        this.inlineBusy = true;
        try {
          // Let the callers' other jobs reach the workers before this thread is taken, and let the
          // workers finish starting: a worker's start-up resets V8's process-wide flags, which
          // bin/nola.js sets again as each comes online, and a busy thread in that window would grow
          // its young generation (docs/PERFORMANCE.md, "Libraries").
          if (this.workers !== undefined) {
            await new Promise<void>((resolve) => setImmediate(resolve));
            await this.workers.started();
          }
          return this.inline(job);
        } finally {
          this.inlineBusy = false;
          this.waiting.shift()?.();
        }
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  async close(): Promise<void> {
    await this.workers?.close();
  }
}
