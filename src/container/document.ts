/**
 * The NOLA container: an ordinary safetensors file whose `__metadata__["nola"]` is a JSON
 * document describing every layer (seeds, basis, counts, scale, error) and naming the tensors
 * that hold its coefficients. Building and validating that document lives here; reading and
 * writing bytes lives in src/io. Specified in docs/FORMAT.md.
 */
import { FORMAT_VERSION, FORMAT_VERSION_RICE, GENERATOR, COEFF_TENSOR, DOCUMENT_TENSOR, PASSTHROUGH_PREFIX } from '../core/constants.js';
import type { BasisFamily } from '../core/basis.js';
import type { DType } from '../io/safetensors/dtypes.js';
import type { TensorInfo } from '../io/safetensors/types.js';
import type { Family, LayerKind } from '../formats/layer.js';
import { FormatError } from '../errors.js';
import { isEncodableDType } from '../io/safetensors/dtypes.js';
import { jsonDepth, MAX_DOCUMENT_DEPTH } from '../io/json-depth.js';

import { isEntropySegment, minEntropyBlockBytes, QUANT_MODES, quantSegments, quantizedSizes, type QuantMode, type QuantSpec } from '../core/quantize.js';
export { QUANT_MODES, type QuantMode, type QuantSpec };

/** Bytes [offset, offset + bytes) of one tensor of the file. */
export interface ByteRange {
  tensor: string;
  offset: number;
  bytes: number;
}

/** Where one factor's stored coefficients are: the codes and, for integer modes, the per-group scales. */
export interface BlockLocation {
  codes: ByteRange;
  scales?: ByteRange;
}

/**
 * One layer as the rest of nola sees it, whatever the version of the file it came from (version 1
 * stores these objects nearly as they are; version 2 stores a compact table, see serializeDocument).
 */
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
  quant_A: QuantSpec;
  quant_B: QuantSpec;
  /** Relative Frobenius error of what is stored: ‖ΔW − ΔŴ‖ / ‖ΔW‖. */
  error: number;
  /** The same after expand rounds the factors to the source dtypes (F16/BF16 add their rounding). */
  error_expanded?: number;
  blocks: { A: BlockLocation; B: BlockLocation };
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
  /** Version 2: the one tensor holding every layer's coefficients, and the SHA-256 (hex) of its bytes. */
  coeffs?: { tensor: string; sha256: string };
  /** Optional: the settings that made the file, as the leading hex digits of a SHA-256 (src/pipeline/batch-fingerprint.ts); absent in older files. */
  settings_sha256?: string;
}

export function passthroughTensorName(index: number): string {
  return `${PASSTHROUGH_PREFIX}${index}`;
}

/**
 * Version 1 keeps a factor's block as tensors of their own: the codes as F32/F16/BF16 [count] for
 * the float modes or U8 [bytes] for the int modes, and the int modes' scales as F16 [groups].
 */
function v1BlockTensors(count: number, mode: QuantMode): { codes: { dtype: DType; shape: number[]; bytes: number }; scales?: { dtype: DType; shape: number[]; bytes: number } } {
  const sizes = quantizedSizes(count, mode);
  const dtype: DType = mode === 'f32' ? 'F32' : mode === 'f16' ? 'F16' : mode === 'bf16' ? 'BF16' : 'U8';
  return {
    codes: { dtype, shape: [dtype === 'U8' ? sizes.codes : count], bytes: sizes.codes },
    ...(sizes.scales > 0 ? { scales: { dtype: 'F16', shape: [sizes.scales / 2], bytes: sizes.scales } } : {}),
  };
}

/**
 * Version 2 places the layers' blocks back to back in one U8 tensor, in layer order, A before B,
 * codes before scales. Returns each layer's locations and the stream's total length.
 */
export function placeBlocks(
  layers: ReadonlyArray<Pick<NolaLayerEntry, 'num_basis_A' | 'num_basis_B' | 'quant_A' | 'quant_B'>>,
  tensor: string = COEFF_TENSOR,
): { blocks: Array<NolaLayerEntry['blocks']>; bytes: number } {
  let offset = 0;
  const place = (count: number, mode: QuantSpec): BlockLocation => {
    const { codes, scales } = quantizedSizes(count, mode);
    const loc: BlockLocation = { codes: { tensor, offset, bytes: codes } };
    offset += codes;
    if (scales > 0) {
      loc.scales = { tensor, offset, bytes: scales };
      offset += scales;
    }
    return loc;
  };
  const blocks = layers.map((l) => ({ A: place(l.num_basis_A, l.quant_A), B: place(l.num_basis_B, l.quant_B) }));
  return { blocks, bytes: offset };
}

/** The columns of a version-2 layer row, in order. */
export const LAYER_FIELDS = [
  'name', 'style', 'kind', 'shape_A', 'd_out', 'rank', 'alpha', 'scale', 'basis',
  'seed_A', 'seed_B', 'num_basis_A', 'num_basis_B', 'quant_A', 'quant_B', 'error', 'error_expanded',
] as const;

/**
 * How a layer's source tensors are named and typed. A key is [prefix, suffix] (key = prefix + layer
 * name + suffix), or a plain string for a key that does not contain the layer name (diffusers
 * attention-processor keys such as `…to_k_lora.down.weight` of layer `…k_proj`).
 */
type KeyPattern = [string, string] | string;
interface KeyStyle {
  A: KeyPattern;
  B: KeyPattern;
  alpha?: KeyPattern;
  dtype_A: DType;
  dtype_B: DType;
  dtype_alpha?: DType;
}

function keyPattern(key: string, name: string): KeyPattern {
  const at = key.indexOf(name);
  return at < 0 ? key : [key.slice(0, at), key.slice(at + name.length)];
}

function applyPattern(p: KeyPattern, name: string): string {
  return typeof p === 'string' ? p : p[0] + name + p[1];
}

function keyStyle(e: NolaLayerEntry): KeyStyle {
  return {
    A: keyPattern(e.key_A, e.name),
    B: keyPattern(e.key_B, e.name),
    ...(e.key_alpha !== undefined ? { alpha: keyPattern(e.key_alpha, e.name) } : {}),
    dtype_A: e.dtype_A,
    dtype_B: e.dtype_B,
    ...(e.dtype_alpha !== undefined ? { dtype_alpha: e.dtype_alpha } : {}),
  };
}

/** Errors are stored to 6 significant digits: far below any tolerance anyone checks, half the characters. */
export function roundError(x: number): number {
  return Number(x.toPrecision(6));
}

/** The version a document's file states: the oldest that reads it (3 with a rans block, else 2). */
export function documentVersion(layers: ReadonlyArray<Pick<NolaLayerEntry, 'quant_A' | 'quant_B'>>): number {
  const rans = (q: QuantSpec): boolean => typeof q !== 'string' && q.some((seg) => seg[0] === 'rans');
  return layers.some((e) => rans(e.quant_A) || rans(e.quant_B)) ? FORMAT_VERSION : FORMAT_VERSION_RICE;
}

/**
 * A document built by compress, as version 2 stores it (docs/FORMAT.md): `metadata`, the short JSON
 * of __metadata__["nola"] (version, generator, the document tensor's name), and `body`, the JSON the
 * caller zlib-compresses into that tensor. Compact by construction, because the description is a real
 * share of a small adapter's file: layers are rows of LAYER_FIELDS,
 * tensor names are factored into key styles (prefix + layer name + suffix, with the dtypes), shape_B
 * and d_in follow from shape_A, errors keep 6 significant digits, and error_expanded is null where it
 * equals error. Key order is fixed: the same document gives the same bytes.
 */
export function serializeDocument(doc: NolaDocument): { metadata: string; body: string } {
  if (doc.coeffs === undefined) throw new Error('internal: serializeDocument needs a version-2 document (coeffs)');
  const styles: KeyStyle[] = [];
  const styleIds = new Map<string, number>();
  const rows = doc.layers.map((e) => {
    const style = keyStyle(e);
    const id = JSON.stringify(style);
    if (!styleIds.has(id)) { styleIds.set(id, styles.length); styles.push(style); }
    const error = roundError(e.error);
    const expanded = e.error_expanded === undefined ? null : roundError(e.error_expanded);
    const row: Record<(typeof LAYER_FIELDS)[number], unknown> = {
      name: e.name, style: styleIds.get(id), kind: e.kind, shape_A: e.shape_A, d_out: e.d_out, rank: e.rank,
      alpha: e.alpha ?? null, scale: e.scale, basis: e.basis, seed_A: e.seed_A, seed_B: e.seed_B,
      num_basis_A: e.num_basis_A, num_basis_B: e.num_basis_B, quant_A: e.quant_A, quant_B: e.quant_B,
      error, error_expanded: expanded === error ? null : expanded,
    };
    return LAYER_FIELDS.map((f) => row[f]);
  });
  const metadata = JSON.stringify({ format_version: documentVersion(doc.layers), generator: doc.generator, document: DOCUMENT_TENSOR });
  const body = JSON.stringify({
    source: doc.source,
    coeffs: doc.coeffs,
    key_styles: styles,
    layer_fields: LAYER_FIELDS,
    layers: rows,
    passthrough: doc.passthrough,
    ...(doc.settings_sha256 !== undefined ? { settings_sha256: doc.settings_sha256 } : {}),
  });
  return { metadata, body };
}

/** Where a version-1 file keeps one part of one factor's block: `nola.coeffs.<i>.A`, `….A.scales`. */
export interface V1TensorPart {
  name: string;
  dtype: DType;
  shape: number[];
  layer: number;
  factor: 'A' | 'B';
  part: 'codes' | 'scales';
}

/**
 * A document as version 1 stores it (`--format-version 1`; what issue #2 specified and nola 0.1
 * wrote): the whole document as the `nola` metadata JSON, one object per layer with every field
 * spelled out, and one tensor per block part. Only single-mode fixed-size storage fits in it.
 */
export function serializeDocumentV1(doc: NolaDocument): { metadata: string; tensors: V1TensorPart[] } {
  const tensors: V1TensorPart[] = [];
  const layers = doc.layers.map((e, i) => {
    const names: Record<string, string> = {};
    for (const f of ['A', 'B'] as const) {
      const mode = e[`quant_${f}`];
      if (typeof mode !== 'string') throw new Error(`internal: version 1 cannot hold segmented or rice storage (layer ${e.name})`);
      const { codes, scales } = v1BlockTensors(f === 'A' ? e.num_basis_A : e.num_basis_B, mode);
      const name = `${V1_COEFF_PREFIX}${i}.${f}`;
      tensors.push({ name, dtype: codes.dtype, shape: codes.shape, layer: i, factor: f, part: 'codes' });
      names[`coeffs_${f}`] = name;
      if (scales !== undefined) {
        tensors.push({ name: `${name}.scales`, dtype: scales.dtype, shape: scales.shape, layer: i, factor: f, part: 'scales' });
        names[`scales_${f}`] = `${name}.scales`;
      }
    }
    return {
      name: e.name, kind: e.kind, key_A: e.key_A, key_B: e.key_B,
      ...(e.key_alpha !== undefined ? { key_alpha: e.key_alpha, dtype_alpha: e.dtype_alpha } : {}),
      dtype_A: e.dtype_A, dtype_B: e.dtype_B, shape_A: e.shape_A, shape_B: e.shape_B,
      source_rank: e.source_rank, rank: e.rank, d_in: e.d_in, d_out: e.d_out,
      ...(e.alpha !== undefined ? { alpha: e.alpha } : {}),
      source_scale: e.source_scale, scale: e.scale, basis: e.basis, seed_A: e.seed_A, seed_B: e.seed_B,
      num_basis_A: e.num_basis_A, num_basis_B: e.num_basis_B, quant_A: e.quant_A, quant_B: e.quant_B,
      coeffs_A: names.coeffs_A, coeffs_B: names.coeffs_B,
      ...(names.scales_A !== undefined ? { scales_A: names.scales_A } : {}),
      ...(names.scales_B !== undefined ? { scales_B: names.scales_B } : {}),
      error: roundError(e.error),
      ...(e.error_expanded !== undefined ? { error_expanded: roundError(e.error_expanded) } : {}),
    };
  });
  const metadata = JSON.stringify({
    format_version: 1, generator: doc.generator, source: doc.source, layers, passthrough: doc.passthrough,
    ...(doc.settings_sha256 !== undefined ? { settings_sha256: doc.settings_sha256 } : {}),
  });
  return { metadata, tensors };
}

/** Version 1 names coefficient tensors `nola.coeffs.<layer>.<factor>` (and `….scales`). */
const V1_COEFF_PREFIX = 'nola.coeffs.';

/**
 * Parse and validate the document against the tensors actually present. Every inconsistency is a
 * FormatError naming the file and the field, so expand never starts on a file it cannot finish.
 * Reads versions 3 and 2 (what compress writes) and version 1 (files of nola 0.1).
 */
export function parseDocument(file: string, json: string | undefined, tensors: readonly TensorInfo[], body?: string): NolaDocument {
  const fail = (what: string): never => { throw new FormatError(`${file}: ${what}`); };
  const envelope = parseEnvelope(file, json);
  let doc: Record<string, unknown>;
  if (envelope.version === 1) {
    doc = envelope.raw;
    onlyKnownKeys(doc, V1_DOCUMENT_KEYS, 'the document', fail);
  } else {
    if (body === undefined) throw new Error('internal: a version-2 or -3 document needs its body (see documentTensor)');
    const inner = parseJsonObject(file, body, `the document in tensor "${envelope.document}"`);
    for (const key of ['format_version', 'generator', 'document']) {
      if (key in inner) fail(`the document in tensor "${envelope.document}" repeats "${key}", which only __metadata__ may state`);
    }
    onlyKnownKeys(inner, V2_DOCUMENT_KEYS, 'the document', fail);
    doc = { ...envelope.raw, ...inner };
  }
  const version = envelope.version;
  if (!isObject(doc.source)) fail('missing "source"');
  const src = doc.source as Record<string, unknown>;
  onlyKnownKeys(src, SOURCE_KEYS, '"source"', fail);
  for (const k of SOURCE_KEYS) if (!(k in src)) fail(`"source" has no "${k}"`);
  if (!['peft', 'kohya', 'diffusers'].includes(src.family as string)) fail(`unknown source family ${JSON.stringify(src.family)}`);
  // expand writes into a folder under this name: a bare file name, never a path.
  if (typeof src.file !== 'string' || !/^[^/\\]+$/.test(src.file) || src.file === '.' || src.file === '..' || hasLoneSurrogate(src.file)) {
    fail(`source.file must be a plain file name, got ${JSON.stringify(src.file)}`);
  }
  // expand writes adapter_config.json beside the LoRA: the LoRA may not take that name.
  if (src.file === 'adapter_config.json') fail('source.file may not be "adapter_config.json" (expand writes the config under that name)');
  if (!isCount(src.bytes, Number.MAX_SAFE_INTEGER)) fail(`source.bytes must be a non-negative integer, got ${JSON.stringify(src.bytes)}`);
  if (!isSha256(src.tensors_sha256)) fail('source.tensors_sha256 must be 64 lowercase hex digits');
  if (src.metadata !== null && !(isObject(src.metadata) && Object.entries(src.metadata).every(([k, v]) => typeof v === 'string' && !hasLoneSurrogate(k) && !hasLoneSurrogate(v)))) {
    fail('source.metadata must be null or an object of strings');
  }
  if (!Array.isArray(doc.layers)) fail('"layers" is not a list');
  if (!Array.isArray(doc.passthrough)) fail('"passthrough" is not a list');
  // The expanded LoRA must be a file a safetensors reader opens: at most MAX_OUTPUT_TENSORS tensors.
  if ((doc.layers as unknown[]).length > MAX_LAYERS) fail(`${(doc.layers as unknown[]).length} layers, more than the limit of ${MAX_LAYERS}`);

  const byName = new Map(tensors.map((t) => [t.name, t]));
  const used = new Set<string>();
  if (envelope.version !== 1) {
    const t = byName.get(envelope.document);
    if (t === undefined || t.dtype !== 'U8' || t.shape.length !== 1) fail(`document tensor "${envelope.document}" must be U8 [n]`);
    used.add(envelope.document);
  }
  const claimTensor = (name: unknown, dtype: DType, shape: number[], what: string): void => {
    if (typeof name !== 'string') fail(`${what}: tensor name missing`);
    const t = byName.get(name as string);
    if (t === undefined) fail(`${what}: tensor "${String(name)}" is missing from the file`);
    if (t!.dtype !== dtype || t!.shape.length !== shape.length || t!.shape.some((d, i) => d !== shape[i])) {
      fail(`${what}: tensor "${String(name)}" is ${t!.dtype} [${t!.shape}] but the metadata implies ${dtype} [${shape}]`);
    }
    if (used.has(name as string)) fail(`${what}: tensor "${String(name)}" is referenced twice`);
    used.add(name as string);
  };

  const entries = version === 1 ? (doc.layers as unknown[]) : layersFromRows(doc, fail);
  if (version === 1) entries.forEach((l, i) => { if (isObject(l)) onlyKnownKeys(l, V1_LAYER_KEYS, `layer ${i}`, fail); });
  const layers = entries.map((l, i) => validateLayer(l, `layer ${i}`, version, fail));
  const names = new Set<string>();
  // Tensor names the expanded file will hold: distinct, and names a safetensors header can carry.
  const outputNames = new Set<string>();
  const claimOutputName = (name: string, where: string): void => {
    if (name === '' || name === '__metadata__' || hasLoneSurrogate(name)) fail(`${where}: ${JSON.stringify(name)} cannot be a tensor name`);
    if (outputNames.has(name)) fail(`${where}: tensor name "${name}" is used twice`);
    outputNames.add(name);
  };
  layers.forEach((e, i) => {
    const where = `layer ${i}`;
    if (names.has(e.name)) fail(`${where}: duplicate layer name "${e.name}"`);
    names.add(e.name);
    for (const key of [e.key_A, e.key_B, e.key_alpha]) if (key !== undefined) claimOutputName(key, where);
  });

  let coeffs: NolaDocument['coeffs'];
  if (version === 1) {
    // Version 1: tensors named by each layer, codes and scales apart.
    layers.forEach((e, i) => {
      const l = (doc.layers as Array<Record<string, unknown>>)[i];
      for (const f of ['A', 'B'] as const) {
        const mode = e[`quant_${f}`];
        if (typeof mode !== 'string') fail(`layer ${i}: version 1 has no quantization segments (quant_${f})`);
        const { codes, scales } = v1BlockTensors(f === 'A' ? e.num_basis_A : e.num_basis_B, mode as QuantMode);
        claimTensor(l[`coeffs_${f}`], codes.dtype, codes.shape, `layer ${i} (${e.name}) coeffs_${f}`);
        e.blocks[f] = { codes: { tensor: l[`coeffs_${f}`] as string, offset: 0, bytes: codes.bytes } };
        if (scales !== undefined) {
          claimTensor(l[`scales_${f}`], scales.dtype, scales.shape, `layer ${i} (${e.name}) scales_${f}`);
          e.blocks[f].scales = { tensor: l[`scales_${f}`] as string, offset: 0, bytes: scales.bytes };
        }
      }
    });
  } else {
    if (!isObject(doc.coeffs) || typeof doc.coeffs.tensor !== 'string' || !isSha256(doc.coeffs.sha256)) {
      fail('"coeffs" must be {"tensor": name, "sha256": 64 lowercase hex digits}');
    }
    onlyKnownKeys(doc.coeffs as Record<string, unknown>, COEFFS_KEYS, '"coeffs"', fail);
    const c = doc.coeffs as { tensor: string; sha256: string };
    coeffs = { tensor: c.tensor, sha256: c.sha256 };
    const placed = placeBlocks(layers, c.tensor);
    claimTensor(c.tensor, 'U8', [placed.bytes], `"coeffs" (${layers.length} layers)`);
    layers.forEach((e, i) => { e.blocks = placed.blocks[i]; });
  }

  (doc.passthrough as unknown[]).forEach((p, i) => {
    if (!isObject(p) || typeof p.name !== 'string' || typeof p.tensor !== 'string') fail(`passthrough ${i} is malformed`);
    onlyKnownKeys(p as Record<string, unknown>, PASSTHROUGH_KEYS, `passthrough ${i}`, fail);
    const { name, tensor } = p as unknown as NolaPassthrough;
    claimOutputName(name, `passthrough ${i}`);
    if (!byName.has(tensor)) fail(`passthrough ${i}: tensor "${tensor}" is missing from the file`);
    if (used.has(tensor)) fail(`passthrough ${i}: tensor "${tensor}" is referenced twice`);
    used.add(tensor);
  });
  if (outputNames.size > MAX_OUTPUT_TENSORS) fail(`the expanded LoRA would hold ${outputNames.size} tensors, more than the limit of ${MAX_OUTPUT_TENSORS}`);
  const extra = tensors.filter((t) => !used.has(t.name)).map((t) => t.name);
  if (extra.length > 0) fail(`tensors not described by the metadata: ${extra.slice(0, 3).join(', ')}`);
  if (doc.settings_sha256 !== undefined && !(typeof doc.settings_sha256 === 'string' && /^[0-9a-f]{16,64}$/.test(doc.settings_sha256))) fail('settings_sha256 must be 16 to 64 lowercase hex digits');
  return {
    format_version: version as number,
    generator: GENERATOR,
    source: src as unknown as NolaSource,
    layers,
    passthrough: (doc.passthrough as NolaPassthrough[]).map(({ name, tensor }) => ({ name, tensor })),
    ...(coeffs !== undefined ? { coeffs } : {}),
    ...(doc.settings_sha256 !== undefined ? { settings_sha256: doc.settings_sha256 as string } : {}),
  };
}

/**
 * __metadata__["nola"]: for version 1 the whole document, for version 2 the version, the generator and
 * the name of the U8 tensor holding the zlib-compressed document. Returns the version-2 tensor name so
 * the reader can fetch and inflate the body before parseDocument; undefined for version 1.
 */
export function documentTensor(file: string, json: string | undefined): string | undefined {
  const envelope = parseEnvelope(file, json);
  return envelope.version !== 1 ? envelope.document : undefined;
}

type Envelope = { version: 1; raw: Record<string, unknown> } | { version: 2 | 3; raw: Record<string, unknown>; document: string };

function parseEnvelope(file: string, json: string | undefined): Envelope {
  if (json === undefined) throw new FormatError(`${file}: not a NOLA file (no "nola" entry in __metadata__); to compress a LoRA use 'nola compress'`);
  const raw = parseJsonObject(file, json, 'the "nola" metadata');
  const fail = (what: string): never => { throw new FormatError(`${file}: ${what}`); };
  const version = raw.format_version;
  if (version !== 1 && version !== FORMAT_VERSION_RICE && version !== FORMAT_VERSION) fail(`unknown NOLA format_version ${JSON.stringify(version)} (this nola reads versions 1 to ${FORMAT_VERSION}; upgrade nola)`);
  if (raw.generator !== GENERATOR) fail(`unknown generator ${JSON.stringify(raw.generator)} (this nola knows ${GENERATOR})`);
  if (version === 1) return { version: 1, raw };
  const keys = Object.keys(raw).sort().join(',');
  if (keys !== 'document,format_version,generator') fail(`the "nola" metadata of a version-${version as number} file holds exactly format_version, generator and document, got ${keys}`);
  if (raw.document !== DOCUMENT_TENSOR) fail(`the "nola" metadata: "document" must be ${JSON.stringify(DOCUMENT_TENSOR)}, got ${JSON.stringify(raw.document)}`);
  return { version: version as 2 | 3, raw, document: raw.document as string };
}

function parseJsonObject(file: string, json: string, what: string): Record<string, unknown> {
  if (jsonDepth(json, MAX_DOCUMENT_DEPTH) > MAX_DOCUMENT_DEPTH) throw new FormatError(`${file}: ${what} nests deeper than ${MAX_DOCUMENT_DEPTH} levels of JSON objects and arrays`);
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (e) {
    throw new FormatError(`${file}: ${what} is not valid JSON (${(e as Error).message})`);
  }
  // JSON.parse keeps the last of duplicate keys: a document that says two things is refused instead.
  const duplicate = duplicateKey(json);
  if (duplicate !== null) throw new FormatError(`${file}: ${what} has duplicate key ${JSON.stringify(duplicate)}`);
  if (!isObject(raw)) throw new FormatError(`${file}: ${what} is not a JSON object`);
  return raw;
}

/**
 * Version 2: the key styles and the rows of LAYER_FIELDS, turned into version-1-shaped layer objects
 * (keys and dtypes from the style, shape_B and d_in from shape_A) for the one validation both share.
 */
function layersFromRows(doc: Record<string, unknown>, fail: (what: string) => never): Array<Record<string, unknown>> {
  const fields = doc.layer_fields;
  if (!Array.isArray(fields) || fields.length !== LAYER_FIELDS.length || fields.some((f, i) => f !== LAYER_FIELDS[i])) {
    fail(`"layer_fields" must be ${JSON.stringify(LAYER_FIELDS)}`);
  }
  if (!Array.isArray(doc.key_styles)) fail('"key_styles" is not a list');
  const pattern = (v: unknown): v is KeyPattern => typeof v === 'string' || (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'string'));
  const styles = (doc.key_styles as unknown[]).map((s, i) => {
    if (!isObject(s) || !pattern(s.A) || !pattern(s.B) || (s.alpha !== undefined && !pattern(s.alpha))) {
      fail(`key style ${i}: "A" and "B" (and "alpha" when present) must be [prefix, suffix] string pairs or strings`);
    }
    onlyKnownKeys(s as Record<string, unknown>, KEY_STYLE_KEYS, `key style ${i}`, fail);
    return s as Record<string, unknown>;
  });
  return (doc.layers as unknown[]).map((r, i) => {
    if (!Array.isArray(r) || r.length !== LAYER_FIELDS.length) fail(`layer ${i} is not a row of ${LAYER_FIELDS.length} values`);
    const row = Object.fromEntries(LAYER_FIELDS.map((f, j) => [f, (r as unknown[])[j]])) as Record<string, unknown>;
    if (typeof row.name !== 'string') fail(`layer ${i}: "name" missing or not a string`);
    if (!Number.isInteger(row.style) || (row.style as number) < 0 || (row.style as number) >= styles.length) {
      fail(`layer ${i}: "style" must index "key_styles" (0..${styles.length - 1}), got ${JSON.stringify(row.style)}`);
    }
    const style = styles[row.style as number];
    const name = row.name as string;
    const key = (p: KeyPattern): string => applyPattern(p, name);
    const shapeA = row.shape_A;
    const shapeOk = Array.isArray(shapeA) && shapeA.length >= 2 && shapeA.length <= 8 && shapeA.every((d) => isCount(d, 0xffffffff) && d > 0);
    if (!shapeOk) fail(`layer ${i}: shape_A must be a list of 2 to 8 positive integers`);
    const a = shapeA as number[];
    const out: Record<string, unknown> = {
      name, kind: row.kind,
      key_A: key(style.A as KeyPattern), key_B: key(style.B as KeyPattern),
      ...(style.alpha !== undefined ? { key_alpha: key(style.alpha as KeyPattern) } : {}),
      ...(style.dtype_alpha !== undefined ? { dtype_alpha: style.dtype_alpha } : {}),
      dtype_A: style.dtype_A, dtype_B: style.dtype_B,
      shape_A: a, shape_B: [row.d_out, a[0], ...a.slice(2).map(() => 1)],
      source_rank: a[0], rank: row.rank, d_in: a.slice(1).reduce((p, d) => p * d, 1), d_out: row.d_out,
      source_scale: row.scale, scale: row.scale,
      basis: row.basis, seed_A: row.seed_A, seed_B: row.seed_B, num_basis_A: row.num_basis_A, num_basis_B: row.num_basis_B,
      quant_A: row.quant_A, quant_B: row.quant_B, error: row.error,
    };
    if (row.alpha !== null) out.alpha = row.alpha;
    if (row.error_expanded !== null) out.error_expanded = row.error_expanded;
    return out;
  });
}

/** One layer object (version-1 shape) checked field by field; the result carries no block locations yet. */
function validateLayer(l: unknown, where: string, version: number, fail: (what: string) => never): NolaLayerEntry {
  if (!isObject(l)) fail(`${where} is not an object`);
  const e = l as Record<string, unknown>;
  for (const key of ['name', 'key_A', 'key_B', 'dtype_A', 'dtype_B', 'kind', 'basis'] as const) {
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
  if (e.error_expanded !== undefined && (typeof e.error_expanded !== 'number' || !Number.isFinite(e.error_expanded))) {
    fail(`${where}: "error_expanded" must be a finite number`);
  }
  if (e.basis !== 'uniform' && e.basis !== 'orthogonal' && e.basis !== 'orthogonal-components') fail(`${where}: unknown basis ${JSON.stringify(e.basis)}`);
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
  const rank = e.rank as number, dIn = e.d_in as number, dOut = e.d_out as number;
  if (rank < 1 || dIn < 1 || dOut < 1) fail(`${where}: rank, d_in and d_out must be positive`);
  if (rank * dIn > MAX_FACTOR_ENTRIES || dOut * rank > MAX_FACTOR_ENTRIES) {
    fail(`${where}: factors of ${rank} x ${dIn} and ${dOut} x ${rank} values exceed the limit of ${MAX_FACTOR_ENTRIES} values per factor`);
  }
  const sourceRank = e.source_rank as number;
  if (rank > sourceRank) fail(`${where}: rank ${rank} exceeds the source rank ${sourceRank} (a NOLA layer never has more rank than its source)`);
  if (sourceRank > Math.min(dIn, dOut)) fail(`${where}: source rank ${sourceRank} exceeds min(d_in, d_out) = ${Math.min(dIn, dOut)}`);
  const ka = e.num_basis_A as number, kb = e.num_basis_B as number;
  const empty = ka === 0 && kb === 0 && e.basis === 'orthogonal'; // a layer that stores nothing (both factors zero)
  if (!empty && (ka < 1 || ka > rank * dIn)) fail(`${where}: num_basis_A ${ka} outside 1..${rank * dIn}`);
  if (!empty && (kb < 1 || kb > dOut * rank)) fail(`${where}: num_basis_B ${kb} outside 1..${dOut * rank}`);
  if (e.basis === 'orthogonal-components' && (ka !== rank * dIn || kb !== dOut * rank)) {
    fail(`${where}: the orthogonal-components basis is full span: num_basis_A must be ${rank * dIn} and num_basis_B ${dOut * rank}`);
  }
  for (const [f, count] of [['A', ka], ['B', kb]] as const) {
    const q = e[`quant_${f}`];
    if (typeof q === 'string') {
      if (!QUANT_MODES.includes(q as QuantMode)) fail(`${where}: unknown quant_${f} ${JSON.stringify(q)}`);
    } else {
      let segments: ReturnType<typeof quantSegments> = [];
      try {
        segments = quantSegments(q as QuantSpec, count);
      } catch (err) {
        fail(`${where}: quant_${f} must be a mode or [mode, count] segments: ${(err as Error).message}`);
      }
      // Every rice value takes at least one unary bit: a count the bytes cannot hold is refused before decoding allocates it.
      for (const seg of segments) {
        if (!isEntropySegment(seg)) continue;
        if (seg[0] === 'rans' && version < FORMAT_VERSION) fail(`${where}: quant_${f} has a rans segment, which needs format_version ${FORMAT_VERSION} (the file states ${version})`);
        const least = minEntropyBlockBytes(seg[0], seg[1]);
        if (seg[2] < least) fail(`${where}: quant_${f} ${seg[0]} segment of ${seg[1]} values in ${seg[2]} bytes (needs at least ${least})`);
      }
    }
  }
  const pick = <K extends keyof NolaLayerEntry>(...keys: K[]): Pick<NolaLayerEntry, K> =>
    Object.fromEntries(keys.filter((k) => e[k] !== undefined).map((k) => [k, e[k]])) as Pick<NolaLayerEntry, K>;
  const unplaced: ByteRange = { tensor: '', offset: 0, bytes: 0 };
  return {
    ...pick('name', 'kind', 'key_A', 'key_B', 'key_alpha', 'dtype_A', 'dtype_B', 'dtype_alpha', 'shape_A', 'shape_B',
      'source_rank', 'rank', 'd_in', 'd_out', 'alpha', 'source_scale', 'scale', 'basis', 'seed_A', 'seed_B',
      'num_basis_A', 'num_basis_B', 'quant_A', 'quant_B', 'error', 'error_expanded'),
    blocks: { A: { codes: unplaced }, B: { codes: unplaced } },
  };
}

/** Factors are synthesized in one typed array: at most 2^31 - 1 values (far beyond any LoRA; see README, Limits). */
export const MAX_FACTOR_ENTRIES = 0x7fffffff;

/** Tensors a safetensors reader accepts in one file (src/io/safetensors/reader.ts): the expanded LoRA's limit. */
export const MAX_OUTPUT_TENSORS = 100_000;
/** Layers of one document: two tensors each at least. */
export const MAX_LAYERS = MAX_OUTPUT_TENSORS / 2;

/** The keys each object of the document may hold (docs/FORMAT.md: any other key is refused; settings_sha256 is optional). */
const V2_DOCUMENT_KEYS = ['source', 'coeffs', 'key_styles', 'layer_fields', 'layers', 'passthrough', 'settings_sha256'];
const V1_DOCUMENT_KEYS = ['format_version', 'generator', 'source', 'layers', 'passthrough', 'settings_sha256'];
const SOURCE_KEYS = ['family', 'file', 'bytes', 'tensors_sha256', 'metadata', 'config'];
const COEFFS_KEYS = ['tensor', 'sha256'];
const KEY_STYLE_KEYS = ['A', 'B', 'alpha', 'dtype_A', 'dtype_B', 'dtype_alpha'];
const PASSTHROUGH_KEYS = ['name', 'tensor'];
const V1_LAYER_KEYS = [
  'name', 'kind', 'key_A', 'key_B', 'key_alpha', 'dtype_alpha', 'dtype_A', 'dtype_B', 'shape_A', 'shape_B', 'source_rank', 'rank',
  'd_in', 'd_out', 'alpha', 'source_scale', 'scale', 'basis', 'seed_A', 'seed_B', 'num_basis_A', 'num_basis_B', 'quant_A', 'quant_B',
  'coeffs_A', 'coeffs_B', 'scales_A', 'scales_B', 'error', 'error_expanded',
];

function onlyKnownKeys(o: Record<string, unknown>, known: readonly string[], where: string, fail: (what: string) => never): void {
  for (const k of Object.keys(o)) if (!known.includes(k)) fail(`${where} has unknown key ${JSON.stringify(k)} (a reader of format version 1-${FORMAT_VERSION} refuses keys it does not know)`);
}

/**
 * The rules of the layer table that a source LoRA decides, applied by compress before any fitting so
 * that it never writes a file the reader refuses (same rules as validateLayer, same wording).
 */
export function checkSourceLayers(file: string, layers: ReadonlyArray<{ name: string; dtypeA: DType; dtypeB: DType; dtypeAlpha?: DType; rank: number; dIn: number; dOut: number }>): void {
  const fail = (name: string, what: string): never => { throw new FormatError(`${file}: layer ${JSON.stringify(name)}: ${what} (a NOLA file cannot record it)`); };
  for (const l of layers) {
    for (const [f, d] of [['A', l.dtypeA], ['B', l.dtypeB]] as const) if (!isEncodableDType(d)) fail(l.name, `dtype_${f} ${JSON.stringify(d)} is not F64, F32, F16 or BF16`);
    if (l.dtypeAlpha !== undefined && !ALPHA_DTYPES.has(l.dtypeAlpha)) fail(l.name, `dtype_alpha ${JSON.stringify(l.dtypeAlpha)} is not a float or integer dtype`);
    if (l.rank > Math.min(l.dIn, l.dOut)) fail(l.name, `source rank ${l.rank} exceeds min(d_in, d_out) = ${Math.min(l.dIn, l.dOut)}`);
  }
  if (layers.length > MAX_LAYERS) throw new FormatError(`${file}: ${layers.length} layers, more than the limit of ${MAX_LAYERS}`);
}

/** A NOLA file's __metadata__ holds the "nola" entry and nothing else. */
export function checkNolaMetadata(file: string, metadata: Record<string, string> | null): void {
  const other = Object.keys(metadata ?? {}).filter((k) => k !== 'nola');
  if (other.length > 0) throw new FormatError(`${file}: __metadata__ of a NOLA file holds only "nola", found ${JSON.stringify(other[0])}`);
}

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

function isSha256(v: unknown): v is string {
  return typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);
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
