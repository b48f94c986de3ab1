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
import { isEncodableDType } from '../io/safetensors/dtypes.js';

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
  /** The same after expand rounds the factors to the source dtypes (F16/BF16 add their rounding). */
  error_expanded?: number;
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
  // JSON.parse keeps the last of duplicate keys: a document that says two things is refused instead.
  const duplicate = duplicateKey(json);
  if (duplicate !== null) fail(`the "nola" metadata has duplicate key ${JSON.stringify(duplicate)}`);
  if (!isObject(raw)) fail('the "nola" metadata is not a JSON object');
  const doc = raw as Record<string, unknown>;
  if (doc.format_version !== FORMAT_VERSION) fail(`unknown NOLA format_version ${JSON.stringify(doc.format_version)} (this nola reads version ${FORMAT_VERSION}; upgrade nola)`);
  if (doc.generator !== GENERATOR) fail(`unknown generator ${JSON.stringify(doc.generator)} (this nola knows ${GENERATOR})`);
  if (!isObject(doc.source)) fail('missing "source"');
  const src = doc.source as Record<string, unknown>;
  if (!['peft', 'kohya', 'diffusers'].includes(src.family as string)) fail(`unknown source family ${JSON.stringify(src.family)}`);
  // expand writes into a folder under this name: a bare file name, never a path.
  if (typeof src.file !== 'string' || !/^[^/\\]+$/.test(src.file) || src.file === '.' || src.file === '..' || hasLoneSurrogate(src.file)) {
    fail(`source.file must be a plain file name, got ${JSON.stringify(src.file)}`);
  }
  if (!isCount(src.bytes, Number.MAX_SAFE_INTEGER)) fail(`source.bytes must be a non-negative integer, got ${JSON.stringify(src.bytes)}`);
  if (typeof src.tensors_sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(src.tensors_sha256)) fail('source.tensors_sha256 must be 64 lowercase hex digits');
  if (src.metadata !== null && !(isObject(src.metadata) && Object.entries(src.metadata).every(([k, v]) => typeof v === 'string' && !hasLoneSurrogate(k) && !hasLoneSurrogate(v)))) {
    fail('source.metadata must be null or an object of strings');
  }
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
  // Tensor names the expanded file will hold: distinct, and names a safetensors header can carry.
  const outputNames = new Set<string>();
  const claimOutputName = (name: string, where: string): void => {
    if (name === '' || name === '__metadata__' || hasLoneSurrogate(name)) fail(`${where}: ${JSON.stringify(name)} cannot be a tensor name`);
    if (outputNames.has(name)) fail(`${where}: tensor name "${name}" is used twice`);
    outputNames.add(name);
  };
  (doc.layers as unknown[]).forEach((l, i) => {
    const where = `layer ${i}`;
    if (!isObject(l)) fail(`${where} is not an object`);
    const e = l as Record<string, unknown>;
    for (const key of ['name', 'key_A', 'key_B', 'dtype_A', 'dtype_B', 'kind', 'basis', 'quant_A', 'quant_B'] as const) {
      if (typeof e[key] !== 'string') fail(`${where}: "${key}" missing or not a string`);
    }
    for (const key of ['rank', 'source_rank', 'd_in', 'd_out', 'seed_A', 'seed_B', 'num_basis_A', 'num_basis_B'] as const) {
      const v = e[key];
      // Seeds are u32; every count also fits one (a factor is limited to MAX_FACTOR_ENTRIES anyway).
      if (!isCount(v, 0xffffffff)) fail(`${where}: "${key}" must be an integer in 0..${0xffffffff}, got ${JSON.stringify(v)}`);
    }
    for (const key of ['scale', 'source_scale', 'error'] as const) {
      if (typeof e[key] !== 'number' || !Number.isFinite(e[key])) fail(`${where}: "${key}" must be a finite number`);
    }
    if (e.basis !== 'uniform' && e.basis !== 'orthogonal') fail(`${where}: unknown basis ${JSON.stringify(e.basis)}`);
    if (e.kind !== 'linear' && e.kind !== 'conv' && e.kind !== 'embedding') fail(`${where}: unknown kind ${JSON.stringify(e.kind)}`);
    for (const f of ['A', 'B'] as const) {
      // expand writes the factors back in this dtype: one it can encode floats into.
      if (!isEncodableDType(e[`dtype_${f}`] as DType)) fail(`${where}: dtype_${f} ${JSON.stringify(e[`dtype_${f}`])} is not F64, F32, F16 or BF16`);
    }
    if ((e.key_alpha === undefined) !== (e.dtype_alpha === undefined)) fail(`${where}: key_alpha and dtype_alpha come together`);
    if (e.key_alpha !== undefined && (typeof e.key_alpha !== 'string' || typeof e.dtype_alpha !== 'string' || !ALPHA_DTYPES.has(e.dtype_alpha))) {
      fail(`${where}: key_alpha must be a tensor name and dtype_alpha a float or integer dtype`);
    }
    if (e.alpha !== undefined && (typeof e.alpha !== 'number' || !Number.isFinite(e.alpha))) fail(`${where}: "alpha" must be a finite number`);
    checkShapes(e, where, fail);
    for (const f of ['A', 'B'] as const) {
      if (!QUANT_MODES.includes(e[`quant_${f}`] as QuantMode)) fail(`${where}: unknown quant_${f} ${JSON.stringify(e[`quant_${f}`])}`);
    }
    const rank = e.rank as number, dIn = e.d_in as number, dOut = e.d_out as number;
    if (rank < 1 || dIn < 1 || dOut < 1) fail(`${where}: rank, d_in and d_out must be positive`);
    if (rank * dIn > MAX_FACTOR_ENTRIES || dOut * rank > MAX_FACTOR_ENTRIES) {
      fail(`${where}: factors of ${rank} x ${dIn} and ${dOut} x ${rank} values exceed the limit of ${MAX_FACTOR_ENTRIES} values per factor`);
    }
    const ka = e.num_basis_A as number, kb = e.num_basis_B as number;
    if (ka < 1 || ka > rank * dIn) fail(`${where}: num_basis_A ${ka} outside 1..${rank * dIn}`);
    if (kb < 1 || kb > dOut * rank) fail(`${where}: num_basis_B ${kb} outside 1..${dOut * rank}`);
    if (names.has(e.name as string)) fail(`${where}: duplicate layer name "${e.name}"`);
    names.add(e.name as string);
    for (const key of [e.key_A, e.key_B, e.key_alpha]) if (key !== undefined) claimOutputName(key as string, where);
    for (const [f, k] of [['A', ka], ['B', kb]] as const) {
      const layout = coeffTensorLayout(k, e[`quant_${f}`] as QuantMode);
      expectTensor(e[`coeffs_${f}`], layout.codes.dtype, layout.codes.shape, `${where} (${e.name}) coeffs_${f}`);
      if (layout.scales) expectTensor(e[`scales_${f}`], layout.scales.dtype, layout.scales.shape, `${where} (${e.name}) scales_${f}`);
    }
  });
  (doc.passthrough as unknown[]).forEach((p, i) => {
    if (!isObject(p) || typeof p.name !== 'string' || typeof p.tensor !== 'string') fail(`passthrough ${i} is malformed`);
    const { name, tensor } = p as unknown as NolaPassthrough;
    claimOutputName(name, `passthrough ${i}`);
    if (!byName.has(tensor)) fail(`passthrough ${i}: tensor "${tensor}" is missing from the file`);
    if (used.has(tensor)) fail(`passthrough ${i}: tensor "${tensor}" is referenced twice`);
    used.add(tensor);
  });
  const extra = tensors.filter((t) => !used.has(t.name)).map((t) => t.name);
  if (extra.length > 0) fail(`tensors not described by the metadata: ${extra.slice(0, 3).join(', ')}`);
  return raw as NolaDocument;
}

/** Factors are synthesized in one typed array: at most 2^31 - 1 values (far beyond any LoRA; see README, Limits). */
export const MAX_FACTOR_ENTRIES = 0x7fffffff;

/** Dtypes an alpha may be written back in (floats and integers; the writer encodes these exactly). */
const ALPHA_DTYPES: ReadonlySet<string> = new Set(['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'U16', 'U32', 'U64']);

/**
 * The source shapes agree with the layer's numbers, by the rule of src/formats/layer.ts: A is
 * [source_rank, ...] with the trailing axes multiplying to d_in, B is [d_out, source_rank, 1, ...];
 * a conv has the same (> 2) number of axes in both, linear and embedding factors are 2-D.
 */
function checkShapes(e: Record<string, unknown>, where: string, fail: (what: string) => never): void {
  const a = e.shape_A, b = e.shape_B;
  const ok = (s: unknown): s is number[] => Array.isArray(s) && s.length >= 2 && s.length <= 8 && s.every((d) => isCount(d, 0xffffffff) && d > 0);
  if (!ok(a) || !ok(b)) return fail(`${where}: shape_A and shape_B must be lists of 2 to 8 positive integers`);
  const dIn = a.slice(1).reduce((p, d) => p * d, 1);
  const conv = a.length > 2 || b.length > 2;
  if (a[0] !== e.source_rank || b[1] !== e.source_rank || dIn !== e.d_in || b[0] !== e.d_out
    || b.slice(2).some((d) => d !== 1) || (conv && a.length !== b.length) || conv !== (e.kind === 'conv')) {
    fail(`${where}: shape_A [${a}] and shape_B [${b}] do not match ${e.kind} source_rank ${e.source_rank}, d_in ${e.d_in}, d_out ${e.d_out}`);
  }
}

/**
 * The first key that appears twice in one object of `json` (text JSON.parse has already accepted), or
 * null. A scan, not a parser: it tracks which strings are keys (the first string in an object and each
 * string after a ',' at object level) with one set of seen keys per open object.
 */
function duplicateKey(json: string): string | null {
  const stack: Array<Set<string> | null> = []; // null: an array
  let expectKey = false;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '"') {
      let j = i + 1;
      while (json[j] !== '"') j += json[j] === '\\' ? 2 : 1;
      if (expectKey) {
        const key = JSON.parse(json.slice(i, j + 1)) as string;
        const seen = stack[stack.length - 1]!;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === '{') {
      stack.push(new Set());
      expectKey = true;
    } else if (c === '[') {
      stack.push(null);
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      expectKey = stack.length > 0 && stack[stack.length - 1] !== null;
    }
  }
  return null;
}

function isCount(v: unknown, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
}

function hasLoneSurrogate(s: string): boolean {
  return /\p{Cs}/u.test(s);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
