/**
 * The NOLA container: an ordinary safetensors file whose `__metadata__["nola"]` is a JSON
 * document describing every layer (seeds, basis, counts, scale, error) and naming the tensors
 * that hold its coefficients. Building and validating that document lives here; reading and
 * writing bytes lives in src/io. Specified in docs/FORMAT.md.
 */
import { FORMAT_VERSION, GENERATOR, COEFF_PREFIX, PASSTHROUGH_PREFIX, QUANT_GROUP_SIZE } from '../core/constants.js';
import type { BasisFamily } from '../core/basis.js';
import type { DType } from '../io/safetensors/dtypes.js';
import type { TensorInfo } from '../io/safetensors/types.js';
import type { Family, LayerKind } from '../formats/layer.js';
import { FormatError } from '../errors.js';

import { QUANT_MODES, type QuantMode } from '../core/quantize.js';
export { QUANT_MODES, type QuantMode };

export interface NolaLayerEntry {
  name: string;
  kind: LayerKind;
  key_A: string;
  key_B: string;
  key_alpha?: string;
  dtype_A: DType;
  dtype_B: DType;
  dtype_alpha?: DType;
  /** Source tensor shapes (rank axis = source rank). */
  shape_A: number[];
  shape_B: number[];
  source_rank: number;
  rank: number;
  d_in: number;
  d_out: number;
  /** alpha as the source stated it (absent: the family default, alpha = rank). */
  alpha?: number;
  source_scale: number;
  /** s in ΔW ≈ s · B · A. */
  scale: number;
  basis: BasisFamily;
  seed_A: number;
  seed_B: number;
  num_basis_A: number;
  num_basis_B: number;
  quant_A: QuantMode;
  quant_B: QuantMode;
  coeffs_A: string;
  coeffs_B: string;
  /** Per-group f16 scales, for integer quant modes only. */
  scales_A?: string;
  scales_B?: string;
  /** Relative Frobenius error of what is stored: ‖ΔW − ΔŴ‖ / ‖ΔW‖. */
  error: number;
}

export interface NolaPassthrough {
  /** Source tensor name. */
  name: string;
  /** Tensor in the NOLA file holding its bytes, unchanged. */
  tensor: string;
}

export interface NolaSource {
  family: Family;
  file: string;
  bytes: number;
  /** SHA-256 (hex) of the source's data section: the tensors' bytes as stored. */
  tensors_sha256: string;
  metadata: Record<string, string> | null;
  config: unknown;
}

export interface NolaDocument {
  format_version: number;
  generator: string;
  source: NolaSource;
  layers: NolaLayerEntry[];
  passthrough: NolaPassthrough[];
}

export function coeffTensorName(layerIndex: number, factor: 'A' | 'B'): string {
  return `${COEFF_PREFIX}${layerIndex}.${factor}`;
}
export function scalesTensorName(layerIndex: number, factor: 'A' | 'B'): string {
  return `${COEFF_PREFIX}${layerIndex}.${factor}.scales`;
}
export function passthroughTensorName(index: number): string {
  return `${PASSTHROUGH_PREFIX}${index}`;
}

export function quantBits(mode: QuantMode): number {
  switch (mode) {
    case 'f32': return 32;
    case 'f16': case 'bf16': return 16;
    default: return Number(mode.slice(3));
  }
}

export function isIntQuant(mode: QuantMode): boolean {
  return mode.startsWith('int');
}

/** dtype and shape of the tensors that hold `count` coefficients in `mode`. */
export function coeffTensorLayout(count: number, mode: QuantMode): { codes: { dtype: DType; shape: number[] }; scales?: { dtype: DType; shape: number[] } } {
  if (mode === 'f32') return { codes: { dtype: 'F32', shape: [count] } };
  if (mode === 'f16') return { codes: { dtype: 'F16', shape: [count] } };
  if (mode === 'bf16') return { codes: { dtype: 'BF16', shape: [count] } };
  const bits = quantBits(mode);
  return {
    codes: { dtype: 'U8', shape: [Math.ceil((count * bits) / 8)] },
    scales: { dtype: 'F16', shape: [Math.ceil(count / QUANT_GROUP_SIZE)] },
  };
}

/** Bytes the coefficients of one factor occupy in the file (codes + scales). */
export function coeffBytes(count: number, mode: QuantMode): number {
  const { codes, scales } = coeffTensorLayout(count, mode);
  const size = (d: { dtype: DType; shape: number[] }): number => d.shape[0] * (d.dtype === 'F32' ? 4 : d.dtype === 'U8' ? 1 : 2);
  return size(codes) + (scales ? size(scales) : 0);
}

/** Stable JSON: key order is the order of the object literals built by the pipeline. */
export function serializeDocument(doc: NolaDocument): string {
  return JSON.stringify(doc);
}

/**
 * Parse and validate the document against the tensors actually present. Every inconsistency is a
 * FormatError naming the file and the field, so expand never starts on a file it cannot finish.
 */
export function parseDocument(file: string, json: string | undefined, tensors: readonly TensorInfo[]): NolaDocument {
  if (json === undefined) throw new FormatError(`${file}: not a NOLA file (no "nola" entry in __metadata__); to compress a LoRA use 'nola compress'`);
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (e) {
    throw new FormatError(`${file}: the "nola" metadata is not valid JSON (${(e as Error).message})`);
  }
  const fail = (what: string): never => { throw new FormatError(`${file}: ${what}`); };
  if (!isObject(raw)) fail('the "nola" metadata is not a JSON object');
  const doc = raw as Record<string, unknown>;
  if (doc.format_version !== FORMAT_VERSION) fail(`unknown NOLA format_version ${JSON.stringify(doc.format_version)} (this nola reads version ${FORMAT_VERSION}; upgrade nola)`);
  if (doc.generator !== GENERATOR) fail(`unknown generator ${JSON.stringify(doc.generator)} (this nola knows ${GENERATOR})`);
  if (!isObject(doc.source)) fail('missing "source"');
  const src = doc.source as Record<string, unknown>;
  if (!['peft', 'kohya', 'diffusers'].includes(src.family as string)) fail(`unknown source family ${JSON.stringify(src.family)}`);
  if (!Array.isArray(doc.layers)) fail('"layers" is not a list');
  if (!Array.isArray(doc.passthrough)) fail('"passthrough" is not a list');

  const byName = new Map(tensors.map((t) => [t.name, t]));
  const used = new Set<string>();
  const expectTensor = (name: unknown, dtype: DType, shape: number[], what: string): void => {
    if (typeof name !== 'string') fail(`${what}: tensor name missing`);
    const t = byName.get(name as string);
    if (t === undefined) fail(`${what}: tensor "${String(name)}" is missing from the file`);
    if (t!.dtype !== dtype || t!.shape.length !== shape.length || t!.shape.some((d, i) => d !== shape[i])) {
      fail(`${what}: tensor "${String(name)}" is ${t!.dtype} [${t!.shape}] but the metadata implies ${dtype} [${shape}]`);
    }
    if (used.has(name as string)) fail(`${what}: tensor "${String(name)}" is referenced twice`);
    used.add(name as string);
  };

  const names = new Set<string>();
  (doc.layers as unknown[]).forEach((l, i) => {
    const where = `layer ${i}`;
    if (!isObject(l)) fail(`${where} is not an object`);
    const e = l as Record<string, unknown>;
    for (const key of ['name', 'key_A', 'key_B', 'dtype_A', 'dtype_B', 'kind', 'basis', 'quant_A', 'quant_B'] as const) {
      if (typeof e[key] !== 'string') fail(`${where}: "${key}" missing or not a string`);
    }
    for (const key of ['rank', 'source_rank', 'd_in', 'd_out', 'seed_A', 'seed_B', 'num_basis_A', 'num_basis_B'] as const) {
      const v = e[key];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 2 ** 32) fail(`${where}: "${key}" must be a non-negative integer, got ${JSON.stringify(v)}`);
    }
    for (const key of ['scale', 'source_scale', 'error'] as const) {
      if (typeof e[key] !== 'number' || !Number.isFinite(e[key])) fail(`${where}: "${key}" must be a finite number`);
    }
    if (!Array.isArray(e.shape_A) || !Array.isArray(e.shape_B)) fail(`${where}: shape_A/shape_B missing`);
    if (e.basis !== 'uniform' && e.basis !== 'orthogonal') fail(`${where}: unknown basis ${JSON.stringify(e.basis)}`);
    for (const f of ['A', 'B'] as const) {
      if (!QUANT_MODES.includes(e[`quant_${f}`] as QuantMode)) fail(`${where}: unknown quant_${f} ${JSON.stringify(e[`quant_${f}`])}`);
    }
    const rank = e.rank as number, dIn = e.d_in as number, dOut = e.d_out as number;
    if (rank < 1 || dIn < 1 || dOut < 1) fail(`${where}: rank, d_in and d_out must be positive`);
    const ka = e.num_basis_A as number, kb = e.num_basis_B as number;
    if (ka < 1 || ka > rank * dIn) fail(`${where}: num_basis_A ${ka} outside 1..${rank * dIn}`);
    if (kb < 1 || kb > dOut * rank) fail(`${where}: num_basis_B ${kb} outside 1..${dOut * rank}`);
    if (names.has(e.name as string)) fail(`${where}: duplicate layer name "${e.name}"`);
    names.add(e.name as string);
    for (const [f, k] of [['A', ka], ['B', kb]] as const) {
      const layout = coeffTensorLayout(k, e[`quant_${f}`] as QuantMode);
      expectTensor(e[`coeffs_${f}`], layout.codes.dtype, layout.codes.shape, `${where} (${e.name}) coeffs_${f}`);
      if (layout.scales) expectTensor(e[`scales_${f}`], layout.scales.dtype, layout.scales.shape, `${where} (${e.name}) scales_${f}`);
    }
  });
  (doc.passthrough as unknown[]).forEach((p, i) => {
    if (!isObject(p) || typeof (p as Record<string, unknown>).name !== 'string') fail(`passthrough ${i} is malformed`);
    const t = byName.get((p as NolaPassthrough).tensor);
    if (t === undefined) fail(`passthrough ${i}: tensor "${(p as NolaPassthrough).tensor}" is missing from the file`);
    used.add((p as NolaPassthrough).tensor);
  });
  const extra = tensors.filter((t) => !used.has(t.name)).map((t) => t.name);
  if (extra.length > 0) fail(`tensors not described by the metadata: ${extra.slice(0, 3).join(', ')}`);
  return raw as NolaDocument;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
