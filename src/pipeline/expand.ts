/**
 * nola expand: NOLA file → ordinary LoRA in the source's format (or --to another family), with the
 * source's tensor names and dtypes, its metadata and (PEFT) adapter_config.json, updated where the
 * rank changed. Factors are synthesized one layer at a time as the writer asks for them.
 */
import path from 'node:path';
import { mkdir, stat } from 'node:fs/promises';
import { assertLayersFit, openNola, synthesizeLayer, type OpenNola } from './nola-source.js';
import type { Mat } from '../core/matrix.js';
import { planOutput, representable, type OutputPlan } from '../formats/index.js';
import { IoError, NolaError, NumericError } from '../errors.js';
import type { DType } from '../io/safetensors/dtypes.js';
import type { Family, LayerSpec } from '../formats/layer.js';
import type { NolaLayerEntry } from '../container/document.js';
import { assertWritable, writeSafetensors, writeTextAtomic } from '../io/index.js';
import type { TensorData, TensorSpec } from '../io/safetensors/types.js';

export interface ExpandRequest {
  input: string;
  output?: string;
  to?: Family;
  force?: boolean;
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

/** Default output: beside the input, `x.nola.safetensors` → `x.expanded.safetensors`; a folder gets the source's file name. */
export async function resolveExpandOutput(input: string, output: string | undefined, sourceFile: string): Promise<string> {
  if (output === undefined) {
    const base = input.replace(/\.nola\.safetensors$/, '').replace(/\.safetensors$/, '');
    return `${base}.expanded.safetensors`;
  }
  // `-o out/` names a folder, created if needed (a PEFT adapter is a folder).
  if (output.endsWith('/') || output.endsWith(path.sep)) {
    await mkdir(output, { recursive: true }).catch((e: NodeJS.ErrnoException) => {
      throw new IoError(`cannot create folder ${output}: ${e.code === 'EACCES' ? 'permission denied' : e.message}`);
    });
    return path.join(output, sourceFile);
  }
  const isDir = await stat(output).then((s) => s.isDirectory(), () => false);
  return isDir ? path.join(output, sourceFile) : output;
}

export async function expand(req: ExpandRequest): Promise<ExpandResult> {
  const nola = await openNola(req.input);
  try {
    const { doc } = nola;
    const { plan, specs, withProducer } = await buildExpand(nola, req.to, req.onProgress);
    const output = await resolveExpandOutput(req.input, req.output, doc.source.file);
    const configPath = plan.config !== null && plan.config !== undefined ? path.join(path.dirname(output), 'adapter_config.json') : null;
    await assertWritable(output, req.force ?? false);
    if (configPath !== null) await assertWritable(configPath, req.force ?? false);

    await withProducer((produce) => writeSafetensors(output, specs, plan.metadata, (spec, i) => produce(i), {
      force: req.force,
      ...(plan.kohyaHashes ? { finalizeMetadata: plan.kohyaHashes.finalizeMetadata } : {}),
    }));
    // PEFT writes its config with indent=2 and no trailing newline; an unchanged config stays byte-compatible.
    if (configPath !== null) await writeTextAtomic(configPath, JSON.stringify(plan.config, null, 2), { force: req.force });
    return {
      input: req.input, output, config: configPath, family: plan.family,
      layers: plan.layers.length, tensors: plan.tensors.length, bytes: (await stat(output)).size, warnings: plan.warnings,
    };
  } finally {
    await nola.reader.close();
  }
}

/**
 * Produces output tensor i. A layer's two factors are synthesized together on first request and
 * dropped once both have been written, so memory holds about one layer at a time.
 */
function factorProducer(nola: OpenNola, plan: OutputPlan, onProgress?: ExpandRequest['onProgress']): (i: number) => Promise<TensorData> {
  const live = new Map<number, { a: Mat; b: Mat; pending: number }>();
  let done = 0;
  const passthroughTensor = new Map(nola.doc.passthrough.map((p) => [p.name, p.tensor]));
  return async (i: number): Promise<TensorData> => {
    const t = plan.tensors[i];
    const src = t.source;
    if (src.kind === 'alpha') return src.bytes;
    if (src.kind === 'passthrough') return new Uint8Array(await nola.reader.readRaw(passthroughTensor.get(src.name)!));
    let layer = live.get(src.layer);
    if (layer === undefined) {
      const entry = nola.doc.layers[src.layer];
      const { a, b } = await synthesizeLayer(nola, entry);
      // The target tool applies scaleOut to B·A as written; fold the difference into B.
      const ratio = entry.scale / plan.layers[src.layer].scaleOut;
      if (ratio !== 1) for (let j = 0; j < b.data.length; j++) b.data[j] *= ratio;
      layer = { a, b, pending: 2 };
      live.set(src.layer, layer);
    }
    const data = src.factor === 'A' ? layer.a.data : layer.b.data;
    assertHolds(nola.file, nola.doc.layers[src.layer].name, src.factor, data, t.dtype);
    if (--layer.pending === 0) {
      live.delete(src.layer);
      onProgress?.(++done, plan.layers.length, nola.doc.layers[src.layer].name);
    }
    return data;
  };
}

/** A synthesized factor must be finite and within range of the dtype it is written in (else the file would hold Inf). */
function assertHolds(file: string, layer: string, factor: 'A' | 'B', data: Float64Array, dtype: DType): void {
  let maxAbs = 0;
  for (let i = 0; i < data.length; i++) {
    const v = Math.abs(data[i]);
    if (Number.isNaN(v)) { maxAbs = NaN; break; }
    if (v > maxAbs) maxAbs = v;
  }
  if (!Number.isFinite(maxAbs) || !Number.isFinite(representable(maxAbs, dtype))) {
    throw new NumericError(`${file}: layer ${JSON.stringify(layer)}: factor ${factor} synthesizes to values (max |x| = ${maxAbs}) that ${dtype} cannot hold`);
  }
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

/** Produces output tensor i (plan order): floats to encode into its dtype, or raw bytes. */
export type TensorProducer = (i: number) => Promise<TensorData>;

/**
 * The seam between planning and writing: the plan and output tensors of an open NOLA file, and
 * withProducer(use), which runs `use` with the producer of those tensors (and releases whatever the
 * producer holds when `use` settles). expand() writes what it produces; the API's load() keeps it in
 * memory through the writer's own encoding (src/pipeline/load.ts). Nothing is written here.
 */
export async function buildExpand(nola: OpenNola, to: Family | undefined, onProgress?: ExpandRequest['onProgress']): Promise<{
  plan: OutputPlan;
  specs: TensorSpec[];
  withProducer: <T>(use: (produce: TensorProducer) => Promise<T>) => Promise<T>;
}> {
  assertLayersFit(nola);
  const plan = planExpand(nola, to);
  const specs: TensorSpec[] = plan.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape }));
  return { plan, specs, withProducer: (use) => use(factorProducer(nola, plan, onProgress)) };
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
