/**
 * Expand's per-layer work, on worker threads or inline: dequantize and synthesize both factors,
 * fold the scale ratio into B, and encode each factor into the bytes of its output dtype. The same
 * pure code runs on every thread, and results are handed to the writer by layer in file order, so
 * the output is byte-identical for any number of threads (and to writing the floats directly: the
 * writer would call the same encodeFloats).
 */
import { Worker } from 'node:worker_threads';
import { expandLayer } from '../core/compress-layer.js';
import type { QuantizedBlock } from '../core/quantize.js';
import type { LayerSettings } from '../core/compress-layer.js';
import { encodeFloats, isEncodableDType, type DType } from '../io/safetensors/dtypes.js';
import { deserializeError, type SerializedError } from './parallel.js';

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

function maxAbsOf(data: Float64Array): number {
  let maxAbs = 0;
  for (let i = 0; i < data.length; i++) {
    const v = Math.abs(data[i]);
    if (Number.isNaN(v)) return NaN;
    if (v > maxAbs) maxAbs = v;
  }
  return maxAbs;
}

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
  const out = new Set<ArrayBuffer>();
  for (const f of [l.a, l.b]) {
    const d = f.data;
    if (d.buffer instanceof ArrayBuffer && d.byteOffset === 0 && d.byteLength === d.buffer.byteLength) out.add(d.buffer);
  }
  return [...out];
}

export interface ExpandPool {
  readonly threads: number;
  run(job: ExpandJob): Promise<ExpandedLayer>;
  close(): Promise<void>;
}

/** threads ≤ 1: inline on the calling thread. Otherwise up to `threads` workers, started on demand. */
export function createExpandPool(threads: number): ExpandPool {
  if (threads <= 1) return { threads: 1, run: async (job) => runExpandJob(job), close: async () => {} };
  return new Pool(threads);
}

interface Pending { resolve: (l: ExpandedLayer) => void; reject: (e: Error) => void }

class Pool implements ExpandPool {
  private readonly idle: Worker[] = [];
  private readonly all: Worker[] = [];
  private readonly waiting: Array<() => void> = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private failure: Error | undefined;

  constructor(readonly threads: number) {}

  private spawn(): Worker {
    const w = new Worker(new URL('./expand-worker.js', import.meta.url));
    w.on('message', (m: { id: number; layer?: ExpandedLayer; error?: SerializedError }) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      this.idle.push(w);
      this.waiting.shift()?.();
      if (p === undefined) return;
      if (m.error !== undefined) p.reject(deserializeError(m.error));
      else p.resolve(m.layer!);
    });
    w.on('error', (e) => this.fail(e));
    w.on('exit', (code) => { if (code !== 0) this.fail(new Error(`expand worker exited with code ${code}`)); });
    this.all.push(w);
    return w;
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    for (const wake of this.waiting.splice(0)) wake();
  }

  private async acquire(): Promise<Worker> {
    for (;;) {
      if (this.failure) throw this.failure;
      const w = this.idle.pop();
      if (w !== undefined) return w;
      if (this.all.length < this.threads) return this.spawn();
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  async run(job: ExpandJob): Promise<ExpandedLayer> {
    const w = await this.acquire();
    const id = this.nextId++;
    return new Promise<ExpandedLayer>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.postMessage({ id, job });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((w) => w.terminate()));
    this.all.length = 0;
    this.idle.length = 0;
  }
}
