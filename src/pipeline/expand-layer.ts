/**
 * Expand's per-layer work, on worker threads or inline: dequantize and synthesize both factors,
 * fold the scale ratio into B, and encode each factor into the bytes of its output dtype. The same
 * pure code runs on every thread, and results are handed to the writer by layer in file order, so
 * the output is byte-identical for any number of threads (and to writing the floats directly: the
 * writer would call the same encodeFloats).
 */
import { expandLayer, maxAbsOf } from '../core/compress-layer.js';
import type { QuantizedBlock } from '../core/quantize.js';
import type { LayerSettings } from '../core/compress-layer.js';
import { encodeFloats, isEncodableDType, type DType } from '../io/safetensors/dtypes.js';
import { LanePool, wholeBuffers } from './worker-pool.js';

export interface ExpandJob {
  settings: Pick<LayerSettings, 'rank' | 'k' | 'l' | 'basis' | 'seedA' | 'seedB'>;
  dIn: number;
  dOut: number;
  blockA: QuantizedBlock;
  blockB: QuantizedBlock;
  /** entry.scale / scaleOut: multiplies B when it is not 1. */
  ratio: number;
  dtypeA: DType;
  dtypeB: DType;
}

/** One synthesized factor: its bytes in the output dtype (floats where the dtype cannot encode them) and max |x|. */
export interface ExpandedFactor {
  data: Uint8Array | Float64Array;
  /** max |x| over the factor, NaN if any entry is NaN. */
  maxAbs: number;
}

export interface ExpandedLayer { a: ExpandedFactor; b: ExpandedFactor }

function factor(data: Float64Array, dtype: DType): ExpandedFactor {
  const maxAbs = maxAbsOf(data);
  return { data: isEncodableDType(dtype) ? encodeFloats(data, dtype) : data, maxAbs };
}

export function runExpandJob(job: ExpandJob): ExpandedLayer {
  const { a, b } = expandLayer(job.settings, job.dIn, job.dOut, job.blockA, job.blockB);
  if (job.ratio !== 1) for (let j = 0; j < b.data.length; j++) b.data[j] *= job.ratio;
  return { a: factor(a.data, job.dtypeA), b: factor(b.data, job.dtypeB) };
}

export function expandedTransfers(l: ExpandedLayer): ArrayBuffer[] {
  return wholeBuffers([l.a.data, l.b.data]);
}

export interface ExpandPool {
  readonly threads: number;
  /** Layers to keep in flight to keep every lane busy (LanePool.window). */
  readonly window: number;
  run(job: ExpandJob): Promise<ExpandedLayer>;
  close(): Promise<void>;
}

/** The calling thread and threads − 1 workers, started on demand (LanePool); threads ≤ 1: the calling thread alone. */
export function createExpandPool(threads: number): ExpandPool {
  return new LanePool<ExpandJob, ExpandedLayer>(Math.max(1, threads), new URL('./expand-worker.js', import.meta.url), { name: 'expand' }, runExpandJob);
}
