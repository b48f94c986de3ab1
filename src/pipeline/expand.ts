/**
 * nola expand: NOLA file → ordinary LoRA in the source's format (or --to another family), with the
 * source's tensor names and dtypes, its metadata and (PEFT) adapter_config.json, updated where the
 * rank changed. Factors are synthesized on worker threads a few layers ahead of the writer.
 */
import path from 'node:path';
import { readdir, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { assertLayersFit, assertMaxAbsHolds, isNolaMetadata, openNola, readBlock, validateNola, type OpenNola } from './nola-source.js';
import { openSafetensors } from '../io/safetensors/index.js';
import { createExpandPool, type ExpandedLayer, type ExpandPool } from './expand-layer.js';
import { planOutput, type OutputPlan } from '../formats/index.js';
import { FormatError, NolaError, UsageError } from '../errors.js';
import type { DType } from '../io/safetensors/dtypes.js';
import type { Family, LayerSpec } from '../formats/layer.js';
import type { NolaLayerEntry } from '../container/document.js';
import { assertDistinctOutputs, assertWritable, hashDataSection, OutputBatch, planLayout, writeSafetensors, writeTextAtomic } from '../io/index.js';
import type { TensorData, TensorSpec } from '../io/safetensors/types.js';

export interface ExpandRequest {
  input: string;
  output?: string;
  to?: Family;
  force?: boolean;
  /** Worker threads synthesizing layers (default: all cores; small files run inline). Output bytes do not depend on it. */
  threads?: number;
  onProgress?: (done: number, total: number, layer: string) => void;
}

export interface ExpandResult {
  input: string;
  output: string;
  config: string | null;
  family: Family;
  layers: number;
  tensors: number;
  bytes: number;
  warnings: string[];
}

export function specFromEntry(e: NolaLayerEntry): LayerSpec {
  return {
    name: e.name, kind: e.kind, keyA: e.key_A, keyB: e.key_B,
    ...(e.key_alpha !== undefined ? { keyAlpha: e.key_alpha, dtypeAlpha: e.dtype_alpha } : {}),
    dtypeA: e.dtype_A, dtypeB: e.dtype_B, shapeA: e.shape_A, shapeB: e.shape_B,
    rank: e.source_rank, dIn: e.d_in, dOut: e.d_out,
    ...(e.alpha !== undefined ? { alpha: e.alpha } : {}),
    scale: e.source_scale,
  };
}

/** The weights file PEFT's from_pretrained loads from an adapter folder. */
export const PEFT_WEIGHTS = 'adapter_model.safetensors';

/** `x.nola` / `x.nola.safetensors` / `x.safetensors` → `x`. */
function stripNolaExtension(file: string): string {
  return file.replace(/\.nola\.safetensors$/, '').replace(/\.nola$/, '').replace(/\.safetensors$/, '');
}

/**
 * The default expanded output, beside the input, never over the source's files:
 *   PEFT: a loadable adapter folder `x.expanded/` (adapter_model.safetensors + adapter_config.json);
 *   kohya, diffusers: `x.expanded.safetensors`.
 * Returns the weights file's path; a PEFT config goes beside it.
 */
export function defaultExpandPath(input: string, family: Family): string {
  const base = `${stripNolaExtension(input)}.expanded`;
  return family === 'peft' ? path.join(base, PEFT_WEIGHTS) : `${base}.safetensors`;
}

/**
 * A folder given to expand (or verify) stands for the one NOLA file in it: a `*.nola` or
 * `*.nola.safetensors` file, else the one `.safetensors` file whose metadata says NOLA.
 */
export async function resolveNolaPath(input: string): Promise<string> {
  const st = await stat(input).catch(() => undefined);
  if (st === undefined || !st.isDirectory()) return input;
  const entries = (await readdir(input)).sort();
  let candidates = entries.filter((e) => e.endsWith('.nola') || e.endsWith('.nola.safetensors'));
  if (candidates.length === 0) {
    candidates = [];
    for (const e of entries.filter((x) => x.endsWith('.safetensors'))) {
      const f = await openSafetensors(path.join(input, e)).catch(() => undefined);
      if (f === undefined) continue;
      if (isNolaMetadata(f.metadata)) candidates.push(e);
      await f.close();
    }
  }
  if (candidates.length === 1) return path.join(input, candidates[0]);
  throw new FormatError(candidates.length === 0
    ? `${input}: no NOLA file in this folder (looked for *.nola, *.nola.safetensors and NOLA metadata)`
    : `${input}: several NOLA files (${candidates.slice(0, 3).join(', ')}); name one`);
}

/**
 * Where the weights go: the default (see defaultExpandPath); `-o out/` or an existing folder: inside it,
 * as adapter_model.safetensors for PEFT, else under the source's file name; `-o file`: that file.
 */
export async function resolveExpandOutput(input: string, output: string | undefined, sourceFile: string, family: Family = 'kohya'): Promise<string> {
  const inFolder = family === 'peft' ? PEFT_WEIGHTS : sourceFile;
  if (output === undefined) return defaultExpandPath(input, family);
  const isDir = output.endsWith('/') || output.endsWith(path.sep) || await stat(output).then((s) => s.isDirectory(), () => false);
  return isDir ? path.join(output, inFolder) : output;
}

/** --force replaces an earlier expansion, never the LoRA the NOLA file was made from (same data-section SHA-256). */
async function assertNotSource(output: string, sourceSha256: string): Promise<void> {
  const existing = await openSafetensors(output).catch(() => undefined);
  if (existing === undefined) return;
  try {
    if (await hashDataSection(existing) === sourceSha256) {
      throw new UsageError(`${output} is the LoRA this NOLA file was made from; nola will not replace it: expand elsewhere (-o DIR/)`);
    }
  } finally {
    await existing.close();
  }
}

/**
 * A config is only replaced together with its own weights: an adapter_config.json beside some other
 * adapter_model.safetensors belongs to that adapter (the source, typically), --force or not.
 */
async function assertConfigOurs(configPath: string, output: string): Promise<void> {
  const exists = await stat(configPath).then(() => true, () => false);
  if (!exists) return;
  const weights = path.join(path.dirname(configPath), PEFT_WEIGHTS);
  const other = path.resolve(weights) !== path.resolve(output) && await stat(weights).then(() => true, () => false);
  if (other) {
    throw new UsageError(`${configPath} belongs to the adapter ${weights} beside it; nola will not replace it: expand into another folder (-o DIR/)`);
  }
}

export async function expand(req: ExpandRequest): Promise<ExpandResult> {
  const input = await resolveNolaPath(req.input);
  const nola = await openNola(input);
  try {
    const { doc } = nola;
    const { plan, specs, withProducer } = await buildExpand(nola, req.to, req.threads, req.onProgress);
    const output = await resolveExpandOutput(input, req.output, doc.source.file, plan.family);
    const configPath = plan.config !== null && plan.config !== undefined ? path.join(path.dirname(output), 'adapter_config.json') : null;
    // A folder that does not exist yet holds nothing to overwrite; it is created (by the batch) just before writing.
    const folderExists = await stat(path.dirname(output)).then((st) => st.isDirectory(), () => false);
    if (folderExists) {
      await assertNotSource(output, doc.source.tensors_sha256);
      if (configPath !== null) await assertConfigOurs(configPath, output);
    }
    // PEFT writes its config with indent=2 and no trailing newline; an unchanged config stays byte-compatible.
    // Serialized before anything is written: a config that cannot be is refused with nothing on disk.
    const configText = configPath === null ? null : JSON.stringify(plan.config, null, 2);
    await assertDistinctOutputs(configPath === null ? [output] : [output, configPath], [input]);
    const batch = new OutputBatch(req.force ?? false);
    try {
      if (!folderExists) await batch.createFolder(path.dirname(output));
      await assertWritable(output, req.force ?? false);
      if (configPath !== null) await assertWritable(configPath, req.force ?? false);

      await withProducer((produce) => writeSafetensors(output, specs, plan.metadata, (spec, i) => produce(i), {
        force: req.force,
        batch,
        ...(plan.kohyaHashes ? { finalizeMetadata: plan.kohyaHashes.finalizeMetadata } : {}),
      }));
      if (configPath !== null) await writeTextAtomic(configPath, configText!, { force: req.force, batch });
      await batch.commit();
    } catch (e) {
      await batch.abort();
      throw e;
    }
    return {
      input, output, config: configPath, family: plan.family,
      layers: plan.layers.length, tensors: plan.tensors.length, bytes: (await stat(output)).size, warnings: plan.warnings,
    };
  } finally {
    await nola.reader.close();
  }
}

/**
 * Produces output tensor i. Layers are synthesized ahead of the writer, in the order it will ask for
 * them (its file layout), by the pool's lanes (the calling thread and worker threads) with at most `pool.window` layers in flight; a
 * layer's two factors are dropped once both have been written, so memory holds a few layers at a
 * time. Every layer is computed by the same code whatever the thread count: the bytes are the same.
 */
function factorProducer(
  nola: OpenNola, plan: OutputPlan, specs: readonly TensorSpec[], pool: ExpandPool, onProgress?: ExpandRequest['onProgress'],
): (i: number) => Promise<TensorData> {
  const dtypes = new Map<string, DType>();
  for (const t of plan.tensors) if (t.source.kind === 'factor') dtypes.set(`${t.source.layer}${t.source.factor}`, t.dtype);
  // Layers in the order the writer first asks for one of their factors.
  const order: number[] = [];
  const position = new Map<number, number>();
  for (const t of planLayout(specs)) {
    const src = plan.tensors[t.index].source;
    if (src.kind === 'factor' && !position.has(src.layer)) {
      position.set(src.layer, order.length);
      order.push(src.layer);
    }
  }
  const window = pool.window;
  const started = new Map<number, Promise<ExpandedLayer>>();
  const live = new Map<number, { layer: ExpandedLayer; pending: number }>();
  let next = 0;
  const start = (li: number): Promise<ExpandedLayer> => {
    const entry = nola.doc.layers[li];
    const job = (async (): Promise<ExpandedLayer> => {
      const blockA = await readBlock(nola, entry, 'A');
      const blockB = await readBlock(nola, entry, 'B');
      try {
        return await pool.run({
          settings: { rank: entry.rank, k: entry.num_basis_A, l: entry.num_basis_B, basis: entry.basis, seedA: entry.seed_A, seedB: entry.seed_B },
          dIn: entry.d_in, dOut: entry.d_out, blockA, blockB,
          // The target tool applies scaleOut to B·A as written; fold the difference into B.
          ratio: entry.scale / plan.layers[li].scaleOut,
          dtypeA: dtypes.get(`${li}A`)!, dtypeB: dtypes.get(`${li}B`)!,
        });
      } catch (e) {
        if (e instanceof NolaError) e.message = `${nola.file}: layer ${JSON.stringify(entry.name)}: ${e.message}`;
        throw e;
      }
    })();
    job.catch(() => {}); // awaited when the writer reaches the layer; no unhandled rejection before that
    return job;
  };
  /** Starts layers up to `window` ahead of position p (those before p are already consumed). */
  const prefetch = (p: number): void => {
    while (next < order.length && next < p + window) {
      const li = order[next++];
      started.set(li, start(li));
    }
  };
  let done = 0;
  const passthroughTensor = new Map(nola.doc.passthrough.map((p) => [p.name, p.tensor]));
  return async (i: number): Promise<TensorData> => {
    const t = plan.tensors[i];
    const src = t.source;
    if (src.kind === 'alpha') return src.bytes;
    if (src.kind === 'passthrough') return new Uint8Array(await nola.reader.readRaw(passthroughTensor.get(src.name)!));
    let held = live.get(src.layer);
    if (held === undefined) {
      const p = position.get(src.layer)!;
      prefetch(p);
      const layer = await started.get(src.layer)!;
      started.delete(src.layer);
      held = { layer, pending: 2 };
      live.set(src.layer, held);
      prefetch(p + 1);
    }
    const f = src.factor === 'A' ? held.layer.a : held.layer.b;
    assertMaxAbsHolds(nola.file, nola.doc.layers[src.layer].name, src.factor, f.maxAbs, t.dtype);
    if (--held.pending === 0) {
      live.delete(src.layer);
      onProgress?.(++done, plan.layers.length, nola.doc.layers[src.layer].name);
    }
    return f.data;
  };
}

/** The output plan of a NOLA file (expand writes it; verify checks every step of it). */
export function planExpand(nola: OpenNola, to: Family | undefined): OutputPlan {
  const { doc } = nola;
  return planOutputFor(nola.file, {
    family: doc.source.family,
    to,
    layers: doc.layers.map((e) => ({ spec: specFromEntry(e), rank: e.rank })),
    passthrough: doc.passthrough.map((p) => {
      const t = nola.reader.get(p.tensor)!;
      return { name: p.name, dtype: t.dtype, shape: t.shape };
    }),
    metadata: doc.source.metadata,
    config: doc.source.config,
  });
}

/**
 * Worker threads for an expand: the number asked for, else all cores unless the file is small enough
 * that starting workers costs more than it saves (about 0.1 s each). The output does not depend on it.
 */
export function expandThreads(requested: number | undefined, layers: readonly NolaLayerEntry[]): number {
  if (requested !== undefined) return Math.max(1, Math.min(requested, layers.length));
  const threads = availableParallelism();
  if (threads <= 1 || layers.length <= 1) return 1;
  let work = 0;
  for (const e of layers) {
    const na = e.rank * e.d_in, nb = e.d_out * e.rank;
    // orthogonal: O(n log n) per factor; uniform: k·n basis values (~1e9/s per core)
    work += e.basis === 'uniform' ? (e.num_basis_A * na + e.num_basis_B * nb) / 1e9 : (na + nb) * 5e-8;
  }
  return work < 0.3 ? 1 : Math.min(threads, layers.length);
}

/** Produces output tensor i (plan order): floats to encode into its dtype, or raw bytes. */
export type TensorProducer = (i: number) => Promise<TensorData>;

/**
 * The seam between planning and writing: the plan and output tensors of an open NOLA file, and
 * withProducer(use), which runs `use` with the producer of those tensors (its worker pool is closed
 * when `use` settles). expand() writes what it produces; the API's load() keeps it in
 * memory through the writer's own encoding (src/pipeline/load.ts). Nothing is written here.
 */
export async function buildExpand(nola: OpenNola, to: Family | undefined, threads?: number, onProgress?: ExpandRequest['onProgress']): Promise<{
  plan: OutputPlan;
  specs: TensorSpec[];
  withProducer: <T>(use: (produce: TensorProducer) => Promise<T>) => Promise<T>;
}> {
  assertLayersFit(nola);
  await validateNola(nola);
  const plan = planExpand(nola, to);
  const specs: TensorSpec[] = plan.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape }));
  const withProducer = async <T>(use: (produce: TensorProducer) => Promise<T>): Promise<T> => {
    const pool = createExpandPool(expandThreads(threads, nola.doc.layers));
    try {
      return await use(factorProducer(nola, plan, specs, pool, onProgress));
    } finally {
      await pool.close();
    }
  };
  return { plan, specs, withProducer };
}

/** planOutput judges the document's layers and config, not files: errors name the NOLA file they came from. */
function planOutputFor(file: string, args: Parameters<typeof planOutput>[0]): OutputPlan {
  try {
    return planOutput(args);
  } catch (e) {
    if (e instanceof NolaError && !e.message.startsWith(`${file}: `)) e.message = `${file}: ${e.message}`;
    throw e;
  }
}
