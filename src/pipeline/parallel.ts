/**
 * Layers fitted on worker threads. The main thread reads each layer and hands its factors to a
 * worker (the buffers are transferred, not copied); the worker runs the same pure, deterministic
 * per-layer code as a single-threaded run and sends back the coefficient blocks. Results are
 * stored by layer index, so the output does not depend on which worker finished first: a run with
 * N threads writes the same bytes as a run with one.
 */
import { LanePool, wholeBuffers } from './worker-pool.js';
import { availableParallelism } from 'node:os';
import { compressLayer, expandLayer, maxAbsOf, type CompressedLayer, type DeliveryPrecision, type LayerRecipe } from '../core/compress-layer.js';
import { targetSvd } from '../core/fit.js';
import { setUniformBasisDevice } from '../core/uniform-basis.js';
import type { ComputeBackend } from '../backends/index.js';
import { mat } from '../core/matrix.js';
import type { Candidate } from '../core/allocate.js';
import type { LayerSpec } from '../formats/layer.js';
import { PAPER_PRESET, type BudgetStrategy, type CompressSettings, type Strategy } from './settings.js';
import { boundError, candidateTable, chooseLayer, measureCandidates, predictedTable, settingsBytes, type CandidateIndex, type MeasuredRow } from './layer-strategy.js';

export function defaultThreads(): number {
  return availableParallelism();
}

/**
 * Rough single-thread seconds to fit a plan, from measured rates on a 2-core EPYC (docs/PERFORMANCE.md):
 * the uniform basis costs ~300 passes over k·n values at ~2e9 values/s; the budget strategy
 * (orthogonal basis, fast transforms) ~8 µs per factor entry. Only used to decide whether worker
 * threads pay for their start-up (~0.3 s of CPU each); results never depend on it.
 */
export function estimateFitSeconds(layers: readonly LayerSpec[], strategy: Strategy): number {
  let s = 0;
  for (const l of layers) {
    const entries = l.rank * (l.dIn + l.dOut);
    if (strategy.kind === 'fixed' && strategy.basis === 'uniform') {
      const k = Math.min(strategy.coeffsA, l.rank * l.dIn), kb = Math.min(strategy.coeffsB, l.dOut * l.rank);
      s += (300 * (k * l.rank * l.dIn + kb * l.dOut * l.rank)) / 2e9;
    } else {
      s += 8e-6 * entries;
    }
  }
  return s;
}

/** Worker threads to use: none (inline) when the whole fit is shorter than their start-up would be worth. */
export function chooseThreads(requested: number, layers: readonly LayerSpec[], strategy: Strategy): number {
  if (requested <= 1 || layers.length <= 1) return 1;
  return estimateFitSeconds(layers, strategy) < 2 ? 1 : Math.min(requested, layers.length);
}

/** One layer's factors as read from the file, plus what to do with them. */
export interface FitTask {
  spec: LayerSpec;
  /** A0 (rank × d_in) and B0 (d_out × rank), row-major. */
  a: Float64Array;
  b: Float64Array;
  deliverA: DeliveryPrecision;
  deliverB: DeliveryPrecision;
  job:
    | { kind: 'choose'; settings: CompressSettings }
    | { kind: 'predict'; strategy: BudgetStrategy }
    | { kind: 'sweep'; strategy: BudgetStrategy; seed: number; maxErrors: number[]; paper: boolean }
    | { kind: 'measure'; strategy: BudgetStrategy; seed: number; fit: CompressSettings['fit']; indices: CandidateIndex[] }
    | { kind: 'compress'; settings: LayerRecipe };
}

export interface FitOutcome {
  layer?: CompressedLayer;
  /** Measured candidates ('measure': the indices asked for, in order; 'sweep': all of them). */
  table?: MeasuredRow[];
  /** Predicted rice candidates, in ladderIndices' order ('predict'). */
  predicted?: Candidate[];
  /** 'sweep': the layer under each --max-error asked for, and under --preset paper (bytes as f32 coefficients). */
  searched?: Candidate[];
  paper?: Candidate;
  /** σ of the source update (for the report and the budget's energy weights). */
  sigma: Float64Array;
  /** Messages the layer's decisions produced (logged by the main thread). */
  warnings: string[];
}

/**
 * The per-layer work, identical on every thread. The layer carries its factors' range as its fit
 * synthesized them (CompressedLayer.maxAbs), which compress checks in the main thread.
 */
export function runFitTask(task: FitTask): FitOutcome {
  const { spec } = task;
  const a0 = mat(spec.rank, spec.dIn, task.a), b0 = mat(spec.dOut, spec.rank, task.b);
  const target = { a0, b0, s0: spec.scale, svd: targetSvd({ a0, b0, s0: spec.scale }), deliverA: task.deliverA, deliverB: task.deliverB };
  const warnings: string[] = [];
  const sigma = target.svd.sigma;
  const job = task.job;
  if (job.kind === 'sweep') {
    const bounded = job.maxErrors.map((maxError) => chooseLayer(target, spec, { strategy: { ...job.strategy, target: { maxError } }, seed: job.seed, fit: {} }));
    const paper = job.paper ? chooseLayer(target, spec, { strategy: PAPER_PRESET, seed: job.seed, fit: {} }) : undefined;
    return {
      table: candidateTable(target, spec, job.strategy, job.seed, {}), sigma, warnings,
      searched: bounded.map((l) => ({ bytes: settingsBytes(l.settings), error: boundError(l) })),
      ...(paper ? { paper: { bytes: 4 * (paper.settings.k + paper.settings.l), error: paper.error } } : {}),
    };
  }
  if (job.kind === 'predict') return { predicted: predictedTable(target, spec, job.strategy), sigma, warnings };
  if (job.kind === 'measure') return { table: measureCandidates(target, spec, job.strategy, job.seed, job.fit, job.indices), sigma, warnings };
  if (job.kind === 'compress') return { layer: compressLayer(target, job.settings), sigma, warnings };
  return { layer: chooseLayer(target, spec, job.settings, { warn: (m: string) => warnings.push(m) }), sigma, warnings };
}

/** Buffers to transfer with a message (each at most once). */
export function outcomeTransfers(o: FitOutcome): ArrayBuffer[] {
  return wholeBuffers([o.sigma, ...(o.layer ? [o.layer.blockA, o.layer.blockB].flatMap((blk) => [blk.codes, blk.scales]) : [])]);
}

/** An owned copy when the array is a view into a larger buffer (so transferring it detaches nothing else). */
function owned(x: Float64Array): Float64Array {
  return x.byteOffset === 0 && x.byteLength === x.buffer.byteLength && x.buffer instanceof ArrayBuffer ? x : x.slice();
}

function cpuRange(task: FitTask, layer: CompressedLayer): { a: number; b: number } {
  const { a, b } = expandLayer(layer.settings, task.spec.dIn, task.spec.dOut, layer.blockA, layer.blockB);
  return { a: maxAbsOf(a.data), b: maxAbsOf(b.data) };
}

export interface FitPool {
  readonly threads: number;
  /** Tasks to keep in flight to keep every lane busy (LanePool.window). */
  readonly window: number;
  run(task: FitTask): Promise<FitOutcome>;
  close(): Promise<void>;
}

export interface FitPoolOptions {
  /** A device backend: tasks run inline on it (threads is then 1). */
  backend?: ComputeBackend;
  /** Each worker's old-generation limit in MiB (library runs: LIBRARY_OLD_GENERATION_MB); default V8's. */
  oldGenerationMb?: number;
  /** False: the calling thread takes no layers (PoolOptions.callingThread; see jobsHoldThread). */
  callingThread?: boolean;
}

/**
 * Whether a fit with this strategy can hold a thread for seconds a layer: the uniform basis (the
 * paper's construction) costs k·n multiply-adds per pass, about 12 s a layer of a 7B-shaped adapter
 * at 1024 coefficients; the budget strategy's transforms take a fraction of a second. Such fits stay
 * off the calling thread, so Ctrl-C and progress are not kept waiting.
 */
export function jobsHoldThread(strategy: Strategy): boolean {
  return strategy.kind === 'fixed' && strategy.basis === 'uniform';
}

/**
 * The calling thread and threads − 1 fit workers (LanePool; threads ≤ 1: the calling thread alone).
 * A device backend runs tasks inline on the calling thread only (it holds one context, in this
 * thread, and its bases are freed after each layer).
 */
export function createFitPool(threads: number, { backend, oldGenerationMb, callingThread }: FitPoolOptions = {}): FitPool {
  if (backend !== undefined && backend.name !== 'cpu') {
    return {
      threads: 1,
      window: 1,
      run: async (task) => {
        setUniformBasisDevice((seed, k, n) => backend.uniformBasis(seed, k, n));
        let o: FitOutcome;
        try {
          o = runFitTask(task);
        } finally {
          setUniformBasisDevice(undefined);
          backend.releaseLayer();
        }
        // The fit's syntheses were float32 products on the device: the range is synthesized again
        // on the CPU, as expand will synthesize the factors.
        return o.layer === undefined ? o : { ...o, layer: { ...o.layer, maxAbs: cpuRange(task, o.layer) } };
      },
      close: async () => {},
    };
  }
  return new LanePool<FitTask, FitOutcome>(Math.max(1, threads), new URL('./fit-worker.js', import.meta.url), {
    name: 'fit',
    oldGenerationMb,
    callingThread,
    prepare: (task) => {
      const job: FitTask = { ...task, a: owned(task.a), b: owned(task.b) };
      return { job, transfer: [job.a.buffer as ArrayBuffer, job.b.buffer as ArrayBuffer] };
    },
  }, runFitTask);
}

/**
 * Runs `makeTask(i)` for i < count through the pool with at most `pool.window` layers in flight (2 ·
 * threads − 1: memory holds a few layers, however many the file has), calling `onDone` as each finishes.
 * Returns the outcomes in layer order.
 */
export async function mapLayers(
  pool: FitPool,
  count: number,
  makeTask: (i: number) => Promise<FitTask>,
  onDone?: (i: number, o: FitOutcome) => void,
): Promise<FitOutcome[]> {
  const results: FitOutcome[] = new Array(count);
  const window = pool.window;
  const inflight = new Set<Promise<void>>();
  let firstError: unknown;
  for (let next = 0; next < count || inflight.size > 0;) {
    while (next < count && inflight.size < window && firstError === undefined) {
      const i = next++;
      const p: Promise<void> = makeTask(i)
        .then((task) => pool.run(task))
        .then((o) => { results[i] = o; onDone?.(i, o); })
        .catch((e: unknown) => { firstError ??= e; })
        .finally(() => inflight.delete(p));
      inflight.add(p);
    }
    if (firstError !== undefined && inflight.size === 0) break;
    if (inflight.size > 0) await Promise.race(inflight);
    if (firstError !== undefined && next < count) next = count;
  }
  if (firstError !== undefined) throw firstError;
  return results;
}
