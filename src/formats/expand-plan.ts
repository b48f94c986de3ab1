/**
 * The expand side of the format layer: which tensors, metadata and adapter config an expanded file gets.
 *
 * Same family: the source's names and dtypes, shapes equal except the rank axis (A axis 0, B axis 1).
 * When a layer's rank changes, what stores alpha is rewritten so the layer's scale holds:
 *   kohya `.alpha` (and diffusers `.alpha`): new_alpha = scale * new_rank, as sd-scripts
 *     networks/resize_lora.py rank_resize does, rounded to a value the alpha's dtype holds exactly;
 *     ss_network_dim / ss_network_alpha updated as resize() does ("Dynamic" when layers differ);
 *   PEFT adapter_config.json and diffusers lora_adapter_metadata: r / lora_alpha / rank_pattern /
 *     alpha_pattern adjusted (see adjustLoraConfig).
 * scaleOut is the scale the target tool will apply to B·A given what is written; the expander multiplies
 * B by scale / scaleOut, which absorbs any rounding of a stored alpha.
 *
 * kohya hashes: sshs_model_hash / sshs_legacy_hash describe the file's bytes, which an expand changes, so
 * they are dropped from the planned metadata and `kohyaHashes.finalizeMetadata` recomputes them from the
 * data section's SHA-256 that the writer passes (see kohyaHashFinalizer for what is exact and what is not).
 *
 * `to`: conversion between families where the module mapping is unambiguous (diffusers -> kohya,
 * diffusers -> peft for a single component); elsewhere a UsageError says why. A diffusers source's
 * kohya training metadata (ss_network_dim / ss_network_alpha) is updated for kohya as above.
 */
import type { DType } from '../io/safetensors/dtypes.js';
import { decodeToFloat64, dtypeSize, encodeFloats, isEncodableDType } from '../io/safetensors/dtypes.js';
import { FormatError, NumericError, UsageError } from '../errors.js';
import { jsonDepth, MAX_CONFIG_DEPTH } from '../io/json-depth.js';
import type { Family, LayerKind, LayerSpec } from './layer.js';
import {
  dict, escapeRegex, isPlainObject, orderSafePatternKey, peftScaling, readLoraConfig, resolveRankAlpha,
} from './common.js';
import { DIFFUSERS_COMPONENTS, LORA_ADAPTER_METADATA_KEY, parseAdapterMetadata } from './diffusers.js';
import { PEFT_PREFIX } from './peft.js';
import { exampleList } from './refuse.js';

export interface TensorLike { name: string; dtype: DType; shape: number[] }

export type OutputSource =
  | { kind: 'factor'; layer: number; factor: 'A' | 'B' }
  /** `bytes`: the value encoded little-endian in the tensor's dtype (the writer takes these as they are, integers included). */
  | { kind: 'alpha'; value: number; bytes: Uint8Array }
  | { kind: 'passthrough'; name: string };

export interface OutputTensor { name: string; dtype: DType; shape: number[]; source: OutputSource }

export interface OutputLayer {
  name: string;
  keyA: string;
  keyB: string;
  keyAlpha?: string;
  rank: number;
  /** The scale the target tool applies to B·A as written; the expander multiplies B by scale / scaleOut. */
  scaleOut: number;
}

export interface KohyaHashPlan {
  /** For the writer's WriteOptions.finalizeMetadata: entries to merge once the data section's SHA-256 is known. */
  finalizeMetadata: (dataSha256Hex: string) => Record<string, string>;
  /** 'exact': sshs_legacy_hash is written and correct; 'omitted': left out so readers recompute it from the file. */
  legacyHash: 'exact' | 'omitted';
}

export interface OutputPlan {
  family: Family;
  /** Every tensor of the output file, layers first (A, B, alpha) then passthrough, in input order. */
  tensors: OutputTensor[];
  /** One per input layer, same order. */
  layers: OutputLayer[];
  metadata: Record<string, string> | null;
  /** PEFT adapter_config.json to write beside the file (the same object when nothing changed), else null. */
  config: unknown | null;
  /** Present when the source metadata held kohya hashes: they must be recomputed for the new bytes. */
  kohyaHashes: KohyaHashPlan | null;
  warnings: string[];
}

export interface PlanOutputArgs {
  family: Family;
  to?: Family;
  layers: Array<{ spec: LayerSpec; rank: number }>;
  passthrough: TensorLike[];
  metadata: Record<string, string> | null;
  config: unknown | null;
}

export function planOutput(args: PlanOutputArgs): OutputPlan {
  for (const { spec, rank } of args.layers) {
    if (!Number.isInteger(rank) || rank < 1) throw new UsageError(`layer '${spec.name}': output rank must be a positive integer, got ${rank}`);
  }
  const to = args.to ?? args.family;
  if (to === args.family) return planSameFamily(args);
  if (args.family === 'diffusers' && to === 'kohya') return planDiffusersToKohya(args);
  if (args.family === 'diffusers' && to === 'peft') return planDiffusersToPeft(args);
  if (args.family === 'kohya') {
    throw new UsageError(
      `--to ${to}: kohya keys flatten module paths to underscores (e.g. '${args.layers[0]?.spec.name ?? 'lora_unet_down_blocks_0_...'}'), ` +
      `so the dotted paths ${to} needs (down_blocks.0 vs down_blocks_0, transformer_blocks...) cannot be recovered without the model's module table`);
  }
  if (to === 'kohya') {
    throw new UsageError(
      `--to kohya: a PEFT adapter's module paths (e.g. '${args.layers[0]?.spec.name ?? ''}') name modules of one model with no ` +
      `pipeline component, and kohya keys need one (lora_unet_, lora_te_...) that cannot be inferred`);
  }
  throw new UsageError(
    `--to diffusers: a PEFT adapter does not say which pipeline component (unet, text_encoder, transformer...) it adapts, ` +
    `and diffusers keys need one`);
}

// ---------------------------------------------------------------------------------------------
// Shapes and alpha values

function outShapes(spec: LayerSpec, rank: number): { a: number[]; b: number[] } {
  return { a: [rank, ...spec.shapeA.slice(1)], b: [spec.shapeB[0], rank, ...spec.shapeB.slice(2)] };
}

const INTEGER_DTYPES: ReadonlySet<DType> = new Set<DType>(['I64', 'I32', 'I16', 'I8', 'U8', 'U16', 'U32', 'U64']);

/** The value nearest `x` that a tensor of `dtype` holds exactly (round to nearest, ties to even). */
export function representable(x: number, dtype: DType): number {
  if (isEncodableDType(dtype)) return decodeToFloat64(encodeFloats(new Float64Array([x]), dtype), dtype)[0];
  if (INTEGER_DTYPES.has(dtype)) return Math.round(x);
  throw new UsageError(`cannot write an alpha of dtype ${dtype}`);
}

/** Little-endian bytes of one value in `dtype` (exact: callers pass values from `representable` or read from a file). */
export function scalarBytes(value: number, dtype: DType): Uint8Array {
  if (isEncodableDType(dtype)) return encodeFloats(new Float64Array([value]), dtype);
  const out = new Uint8Array(dtypeSize(dtype));
  const dv = new DataView(out.buffer);
  switch (dtype) {
    case 'I64': dv.setBigInt64(0, BigInt(value), true); break;
    case 'U64': dv.setBigUint64(0, BigInt(value), true); break;
    case 'I32': dv.setInt32(0, value, true); break;
    case 'U32': dv.setUint32(0, value, true); break;
    case 'I16': dv.setInt16(0, value, true); break;
    case 'U16': dv.setUint16(0, value, true); break;
    case 'I8': dv.setInt8(0, value); break;
    case 'U8': dv.setUint8(0, value); break;
    default: throw new UsageError(`cannot write an alpha of dtype ${dtype}`);
  }
  return out;
}

function alphaSource(value: number, dtype: DType): OutputSource {
  return { kind: 'alpha', value, bytes: scalarBytes(value, dtype) };
}

/** kohya's effective alpha for a stored value (0 means rank). */
function kohyaAlpha(stored: number, rank: number): number {
  return stored === 0 ? rank : stored;
}

/** The scale kohya applies for a stored alpha. */
function kohyaScale(stored: number, rank: number): number {
  return kohyaAlpha(stored, rank) / rank;
}

/** Whether any layer is written at another rank than its source's. */
function rankChanged(layers: PlanOutputArgs['layers']): boolean {
  return layers.some(({ spec, rank }) => rank !== spec.rank);
}

/** A new alpha for `rank` that keeps the layer's scale: scale * rank (resize_lora rank_resize), exact in its dtype. */
function alphaFor(spec: LayerSpec, rank: number, dtype: DType): number {
  if (rank === spec.rank && spec.alphaStored !== undefined) return spec.alphaStored;
  const alpha = spec.alpha ?? spec.rank;
  const out = representable((alpha * rank) / spec.rank, dtype);
  // Out of range: a float dtype rounds to Inf, an integer one would wrap around when written.
  if (!Number.isFinite(out) || decodeToFloat64(scalarBytes(out, dtype), dtype)[0] !== out) {
    throw new NumericError(`layer '${spec.name}': alpha ${(alpha * rank) / spec.rank} does not fit its ${dtype} tensor`);
  }
  return out;
}

/** Python's str(float): what kohya writes into ss_network_alpha. */
export function pythonFloatString(x: number): string {
  if (Number.isInteger(x) && Math.abs(x) < 1e16) return `${x}.0`;
  return String(x);
}

// ---------------------------------------------------------------------------------------------
// PEFT-style config adjustment

/**
 * rank_pattern / alpha_pattern keys that every PEFT release reads the same way. PEFT matches a key
 * against a module path with re.match(rf"(.*\.)?({key})$") (recent releases) or
 * re.match(rf".*\.{key}$") (older ones, which need a dot before the key and never match a key that
 * starts with ^). The key is therefore the shortest proper dotted suffix of the path (regex-escaped)
 * that no other path equals or ends with after a dot; both rules then match this module and no other.
 * A path with no such suffix (a single component, or the tail of another path) keys by the whole path,
 * which the recent rule matches; anchored with ^ only where another path ends with it too.
 */
export function patternKeys(paths: readonly string[]): string[] {
  const all = [...new Set(paths)];
  return paths.map((p) => {
    const parts = p.split('.');
    for (let j = 1; j < parts.length; j++) {
      const suffix = parts.slice(parts.length - j).join('.');
      if (!all.some((q) => q !== p && (q === suffix || q.endsWith(`.${suffix}`)))) return orderSafePatternKey(escapeRegex(suffix));
    }
    return all.some((q) => q !== p && q.endsWith(`.${p}`)) ? `^${escapeRegex(p)}` : orderSafePatternKey(escapeRegex(p));
  });
}

/** A dict() as an ordinary object for callers (load().config): the same own keys, "__proto__" included (fromEntries defines them). */
function plain<T>(d: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(d));
}

export interface ConfigLayer {
  modulePath: string;
  rankIn: number;
  rankOut: number;
  /** Alpha the source config gives the module. */
  alphaIn: number;
}

/**
 * Adjusts a PEFT LoraConfig (adapter_config.json, or a diffusers lora_adapter_metadata entry) so every
 * listed module gets its new rank and keeps its scale (lora_alpha/r, or lora_alpha/sqrt(r) with use_rslora).
 *   - no rank changes: the same object is returned;
 *   - no patterns, and every module goes to one rank R: r = R and lora_alpha scaled to match;
 *   - otherwise: one entry per changed module is put first in rank_pattern / alpha_pattern, keyed by
 *     patternKeyFor (a dotted suffix of the module path that no other layer's path ends with), and the
 *     source's own entries follow, still deciding every module that kept its rank.
 * Returns the config and, per layer, the scale PEFT will compute from it.
 */
export function adjustLoraConfig(config: Record<string, unknown>, layers: ConfigLayer[], where: string):
  { config: Record<string, unknown>; scaleOut: number[] } {
  const view = readLoraConfig(config, where);
  for (const l of layers) {
    // compress refuses such a source (scaleFromConfig), so only a damaged NOLA document gets here.
    const { r } = resolveRankAlpha(view, l.modulePath, where);
    if (r !== l.rankIn) throw new FormatError(`${where} gives module '${l.modulePath}' rank ${r}, but its source factors have rank ${l.rankIn}`);
  }
  const targetAlpha = (l: ConfigLayer): number =>
    view.useRslora ? l.alphaIn * Math.sqrt(l.rankOut / l.rankIn) : (l.alphaIn * l.rankOut) / l.rankIn;
  let out: Record<string, unknown> = config;
  if (layers.some((l) => l.rankOut !== l.rankIn)) {
    const noPatterns = Object.keys(view.rankPattern).length === 0 && Object.keys(view.alphaPattern).length === 0;
    const ranks = new Set(layers.map((l) => l.rankOut));
    if (noPatterns && ranks.size === 1) {
      const R = layers[0].rankOut;
      out = { ...config, r: R, lora_alpha: targetAlpha(layers[0]) };
    } else {
      const rankPattern = dict<number>();
      const alphaPattern = dict<number>();
      const keys = patternKeys(layers.map((l) => l.modulePath));
      for (const [i, l] of layers.entries()) {
        if (l.rankOut === l.rankIn) continue;
        const key = keys[i];
        rankPattern[key] = l.rankOut;
        const a = targetAlpha(l);
        if (a !== l.alphaIn || key in view.alphaPattern) alphaPattern[key] = a;
      }
      // The source's own keys after them; one that is an array index would jump ahead in JSON order.
      const follow = (into: Record<string, number>, from: Record<string, number>): void => {
        for (const [k, v] of Object.entries(from)) if (!(orderSafePatternKey(k) in into)) into[orderSafePatternKey(k)] = v;
      };
      follow(rankPattern, view.rankPattern);
      follow(alphaPattern, view.alphaPattern);
      out = { ...config, rank_pattern: plain(rankPattern), alpha_pattern: plain(alphaPattern) };
    }
  }
  const check = readLoraConfig(out, where);
  const scaleOut = layers.map((l) => {
    const { r, alpha } = resolveRankAlpha(check, l.modulePath, where);
    if (r !== l.rankOut) throw new Error(`internal: adjusted ${where} gives '${l.modulePath}' rank ${r}, wanted ${l.rankOut}`);
    return peftScaling(alpha, r, check.useRslora);
  });
  return { config: out, scaleOut };
}

// ---------------------------------------------------------------------------------------------
// kohya metadata and hashes

const HASH_KEYS = ['sshs_model_hash', 'sshs_legacy_hash'];

/** kohya counts 1x1 convolutions with the linear layers (network_dim) and larger kernels with conv_dim. */
function isConvKernel(kind: LayerKind, shapeA: number[]): boolean {
  return kind === 'conv' && shapeA.slice(2).some((d) => d > 1);
}

function updateKohyaMetadata(meta: Record<string, string>, layers: Array<{ spec: LayerSpec; rank: number; alpha: number }>,
  warnings: string[]): void {
  const network = layers.filter((l) => !isConvKernel(l.spec.kind, l.spec.shapeA));
  const conv = layers.filter((l) => isConvKernel(l.spec.kind, l.spec.shapeA));
  const main = network.length > 0 ? network : conv;
  const uniq = (xs: number[]): number[] => [...new Set(xs)];
  const dims = uniq(main.map((l) => l.rank));
  const alphas = uniq(main.map((l) => l.alpha));
  if (meta.ss_network_dim !== undefined) meta.ss_network_dim = dims.length === 1 ? String(dims[0]) : 'Dynamic';
  if (meta.ss_network_alpha !== undefined) meta.ss_network_alpha = alphas.length === 1 ? pythonFloatString(alphas[0]) : 'Dynamic';
  if (conv.length > 0 && network.length > 0 && meta.ss_network_args !== undefined) {
    let args: unknown;
    try { args = jsonDepth(meta.ss_network_args, MAX_CONFIG_DEPTH) > MAX_CONFIG_DEPTH ? undefined : JSON.parse(meta.ss_network_args); } catch { args = undefined; }
    const cd = uniq(conv.map((l) => l.rank));
    const ca = uniq(conv.map((l) => l.alpha));
    if (isPlainObject(args) && ('conv_dim' in args || 'conv_alpha' in args)) {
      if (cd.length === 1 && ca.length === 1) {
        if ('conv_dim' in args) args.conv_dim = String(cd[0]);
        if ('conv_alpha' in args) args.conv_alpha = String(ca[0]);
        meta.ss_network_args = JSON.stringify(args);
      } else {
        warnings.push('ss_network_args conv_dim/conv_alpha left as they were: the convolution layers now have different ranks');
      }
    }
  }
}

/** SHA-256 of zero bytes (FIPS 180-4), first 8 hex digits: kohya's legacy hash of a file shorter than 1 MiB. */
export const LEGACY_HASH_OF_SMALL_FILE = 'e3b0c442';
const LEGACY_OFFSET = 0x100000;

/**
 * What the writer must merge into the header for kohya's hashes (sd-scripts library/train_util.py
 * precalculate_safetensors_hashes, read back by sd-webui-additional-networks):
 *   sshs_model_hash  = addnet_hash_safetensors: SHA-256 of every byte after the header. It does not depend
 *                      on the metadata, so the data section's SHA-256 of the file being written is exact.
 *   sshs_legacy_hash = addnet_hash_legacy: first 8 hex digits of the SHA-256 of bytes [0x100000, 0x110000)
 *                      of the file as safetensors would save it with only the ss_* metadata. Those bytes
 *                      depend on that re-serialized header, which the writer does not see. nola writes it only
 *                      when that file is certainly shorter than 0x100000 bytes (an upper bound on the header:
 *                      every offset given the most digits it can have, plus 7 bytes of padding): the window is
 *                      then empty and the hash is that of zero bytes, e3b0c442. Otherwise the key is left out,
 *                      and additional-networks' get_legacy_hash computes it from the file (legacy_hash_file).
 */
export function kohyaHashFinalizer(tensors: readonly TensorLike[], metadata: Record<string, string> | null): KohyaHashPlan {
  let dataLength = 0;
  for (const t of tensors) dataLength += t.shape.reduce((n, d) => n * d, 1) * dtypeSize(t.dtype);
  const digits = String(dataLength).length;
  const maxOffset = Number('9'.repeat(digits));
  const header = dict<unknown>();
  const ss = dict<string>();
  for (const [k, v] of Object.entries(metadata ?? {})) if (k.startsWith('ss_')) ss[k] = v;
  header.__metadata__ = ss;
  for (const t of tensors) header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [maxOffset, maxOffset] };
  const headerBound = new TextEncoder().encode(JSON.stringify(header)).length + 7;
  const exact = 8 + headerBound + dataLength <= LEGACY_OFFSET;
  return {
    legacyHash: exact ? 'exact' : 'omitted',
    finalizeMetadata: (dataSha256Hex: string) => {
      if (!/^[0-9a-f]{64}$/.test(dataSha256Hex)) throw new Error(`finalizeMetadata: not a SHA-256 hex digest: '${dataSha256Hex}'`);
      const out: Record<string, string> = { sshs_model_hash: dataSha256Hex };
      if (exact) out.sshs_legacy_hash = LEGACY_HASH_OF_SMALL_FILE;
      return out;
    },
  };
}

function withoutHashes(meta: Record<string, string> | null): { meta: Record<string, string> | null; had: boolean } {
  if (!meta) return { meta, had: false };
  const had = HASH_KEYS.some((k) => meta[k] !== undefined);
  if (!had) return { meta, had };
  const copy = { ...meta };
  for (const k of HASH_KEYS) delete copy[k];
  return { meta: copy, had };
}

function finish(family: Family, tensors: OutputTensor[], layers: OutputLayer[], metadata: Record<string, string> | null,
  config: unknown | null, warnings: string[]): OutputPlan {
  const { meta, had } = withoutHashes(metadata);
  const kohyaHashes = had ? kohyaHashFinalizer(tensors, meta) : null;
  if (kohyaHashes?.legacyHash === 'omitted') {
    warnings.push('sshs_legacy_hash left out: it depends on a re-serialized header nola cannot reproduce for a file over 1 MiB; ' +
      'additional-networks recomputes it from the file');
  }
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new UsageError(`two output tensors would be named '${t.name}'`);
    names.add(t.name);
  }
  return { family, tensors, layers, metadata: meta, config, kohyaHashes, warnings };
}

// ---------------------------------------------------------------------------------------------
// Same family

function planSameFamily(args: PlanOutputArgs): OutputPlan {
  const warnings: string[] = [];
  const tensors: OutputTensor[] = [];
  const layers: OutputLayer[] = [];
  const kohyaRows: Array<{ spec: LayerSpec; rank: number; alpha: number }> = [];
  const scaleOut: Array<number | undefined> = [];
  args.layers.forEach(({ spec, rank }, i) => {
    const s = outShapes(spec, rank);
    tensors.push({ name: spec.keyA, dtype: spec.dtypeA, shape: s.a, source: { kind: 'factor', layer: i, factor: 'A' } });
    tensors.push({ name: spec.keyB, dtype: spec.dtypeB, shape: s.b, source: { kind: 'factor', layer: i, factor: 'B' } });
    if (spec.keyAlpha !== undefined) {
      const dtype = spec.dtypeAlpha ?? 'F32';
      const value = alphaFor(spec, rank, dtype);
      tensors.push({ name: spec.keyAlpha, dtype, shape: [], source: alphaSource(value, dtype) });
      scaleOut[i] = kohyaScale(value, rank);
      kohyaRows.push({ spec, rank, alpha: kohyaAlpha(value, rank) });
    } else if (args.family === 'kohya') {
      scaleOut[i] = 1; // no alpha tensor: alpha = rank
      kohyaRows.push({ spec, rank, alpha: rank });
    }
    layers.push({ name: spec.name, keyA: spec.keyA, keyB: spec.keyB, keyAlpha: spec.keyAlpha, rank, scaleOut: NaN });
  });
  for (const p of args.passthrough) tensors.push({ name: p.name, dtype: p.dtype, shape: [...p.shape], source: { kind: 'passthrough', name: p.name } });

  const changed = rankChanged(args.layers);
  let metadata = args.metadata;
  let config = args.config;
  const pending = args.layers.map((_, i) => i).filter((i) => scaleOut[i] === undefined);

  if (args.family === 'kohya' && changed && metadata) {
    metadata = { ...metadata };
    updateKohyaMetadata(metadata, kohyaRows, warnings);
  }
  if (args.family === 'peft' && pending.length > 0) {
    if (isPlainObject(config)) {
      const res = adjustLoraConfig(config, pending.map((i) => configLayer(args.layers[i], 'peft')), 'adapter_config.json');
      config = res.config;
      pending.forEach((i, k) => { scaleOut[i] = res.scaleOut[k]; });
    } else {
      // Without a config PEFT's defaults apply on load (r=8, lora_alpha=8), which nola cannot make fit every layer.
      pending.forEach((i) => { scaleOut[i] = args.layers[i].spec.scale; });
      warnings.push('PEFT adapter without adapter_config.json: none written; the loader must be given r and lora_alpha that keep alpha = r');
    }
  }
  if (args.family === 'diffusers' && pending.length > 0) {
    metadata = planDiffusersMetadata(args, pending, scaleOut, metadata);
  }
  args.layers.forEach((_, i) => { layers[i].scaleOut = scaleOut[i] ?? 1; });
  return finish(args.family, tensors, layers, metadata, config, warnings);
}

/**
 * A layer's pipeline component and module path. describeLora fills both; a LayerSpec restored without them
 * (older container) falls back on the name, which for diffusers is "<component>.<module path>".
 */
export function moduleOf(spec: LayerSpec, family: Family): { component: string; modulePath: string } {
  if (spec.modulePath !== undefined) return { component: spec.component ?? '', modulePath: spec.modulePath };
  const dot = spec.name.indexOf('.');
  if (family === 'diffusers' && dot > 0 && (DIFFUSERS_COMPONENTS as readonly string[]).includes(spec.name.slice(0, dot))) {
    return { component: spec.name.slice(0, dot), modulePath: spec.name.slice(dot + 1) };
  }
  return { component: '', modulePath: spec.name };
}

function configLayer({ spec, rank }: { spec: LayerSpec; rank: number }, family: Family): ConfigLayer {
  return { modulePath: moduleOf(spec, family).modulePath, rankIn: spec.rank, rankOut: rank, alphaIn: spec.alpha ?? spec.rank };
}

/** Adjusts diffusers lora_adapter_metadata per component; layers it does not cover keep alpha = rank (scale 1). */
function planDiffusersMetadata(args: PlanOutputArgs, pending: number[], scaleOut: Array<number | undefined>,
  metadata: Record<string, string> | null): Record<string, string> | null {
  const meta = parseAdapterMetadata(metadata);
  if (!meta || !metadata) {
    pending.forEach((i) => { scaleOut[i] = 1; });
    return metadata;
  }
  const bySource = new Map<string, number[]>(); // component name, or '' for the flat config
  for (const i of pending) {
    const c = moduleOf(args.layers[i].spec, 'diffusers').component;
    const src = meta.components.has(c) ? c : meta.flat ? '' : null;
    if (src === null) { scaleOut[i] = 1; continue; }
    let list = bySource.get(src);
    if (!list) bySource.set(src, (list = []));
    list.push(i);
  }
  const raw = JSON.parse(metadata[LORA_ADAPTER_METADATA_KEY]) as Record<string, unknown>;
  let rewritten = false;
  for (const [src, idx] of bySource) {
    const cfg = (src ? meta.components.get(src) : meta.flat) as Record<string, unknown>;
    const where = `${LORA_ADAPTER_METADATA_KEY}${src ? ` (${src})` : ''}`;
    const res = adjustLoraConfig(cfg, idx.map((i) => configLayer(args.layers[i], 'diffusers')), where);
    idx.forEach((i, k) => { scaleOut[i] = res.scaleOut[k]; });
    if (res.config !== cfg) {
      rewritten = true;
      for (const field of ['r', 'lora_alpha', 'rank_pattern', 'alpha_pattern']) {
        const key = src ? `${src}.${field}` : field;
        if (field in res.config) raw[key] = res.config[field];
      }
    }
  }
  if (!rewritten) return metadata;
  // diffusers writes this entry with json.dumps(indent=2); key order is kept so pattern precedence survives.
  return { ...metadata, [LORA_ADAPTER_METADATA_KEY]: JSON.stringify(raw, null, 2) };
}

// ---------------------------------------------------------------------------------------------
// Across families

function refuseCrossPassthrough(args: PlanOutputArgs, to: Family): void {
  if (args.passthrough.length > 0) {
    throw new UsageError(
      `--to ${to}: ${args.passthrough.length} non-LoRA tensors (${exampleList(args.passthrough.map((p) => p.name))}) have no ` +
      `equivalent name in ${to} keys; convert without them or keep the ${args.family} layout`);
  }
}

/**
 * diffusers component -> kohya prefix. unet/diffusion_model: ComfyUI comfy/lora.py model_lora_keys_unet
 * maps "lora_unet_" + the module path with dots as underscores; text_encoder(_2): diffusers
 * state_dict_utils.convert_state_dict_to_kohya (lora_te1/lora_te2) for SDXL pairs, and sd-scripts'
 * "lora_te" when there is one text encoder; transformer: "lora_transformer_" (OneTrainer, in ComfyUI's table).
 */
function kohyaPrefix(component: string, hasTe2: boolean): string | null {
  switch (component) {
    case 'unet':
    case 'diffusion_model': return 'lora_unet_';
    case 'transformer': return 'lora_transformer_';
    case 'text_encoder': return hasTe2 ? 'lora_te1_' : 'lora_te_';
    case 'text_encoder_2': return 'lora_te2_';
    case 'text_encoder_3': return 'lora_te3_';
    default: return null;
  }
}

function planDiffusersToKohya(args: PlanOutputArgs): OutputPlan {
  refuseCrossPassthrough(args, 'kohya');
  const mods = args.layers.map((l) => moduleOf(l.spec, 'diffusers'));
  const hasTe2 = mods.some((m) => m.component === 'text_encoder_2');
  const warnings: string[] = [];
  if (!hasTe2 && mods.some((m) => m.component === 'text_encoder')) {
    warnings.push("text_encoder layers written as 'lora_te_' (SD1/SD2 naming); an SDXL file would need 'lora_te1_'");
  }
  const tensors: OutputTensor[] = [];
  const layers: OutputLayer[] = [];
  const kohyaRows: Array<{ spec: LayerSpec; rank: number; alpha: number }> = [];
  args.layers.forEach(({ spec, rank }, i) => {
    const { component, modulePath } = mods[i];
    const prefix = kohyaPrefix(component, hasTe2);
    if (prefix === null) {
      throw new UsageError(
        `--to kohya: layer '${spec.name}' ${component ? `is in component '${component}', which has` : 'names no pipeline component, so it has'} ` +
        `no kohya prefix (known: unet, transformer, text_encoder, text_encoder_2, text_encoder_3, diffusion_model)`);
    }
    const stem = prefix + modulePath.replace(/\./g, '_');
    const s = outShapes(spec, rank);
    const keyA = `${stem}.lora_down.weight`;
    const keyB = `${stem}.lora_up.weight`;
    const keyAlpha = `${stem}.alpha`;
    const value = representable(spec.scale * rank, 'F32');
    tensors.push({ name: keyA, dtype: spec.dtypeA, shape: s.a, source: { kind: 'factor', layer: i, factor: 'A' } });
    tensors.push({ name: keyB, dtype: spec.dtypeB, shape: s.b, source: { kind: 'factor', layer: i, factor: 'B' } });
    tensors.push({ name: keyAlpha, dtype: 'F32', shape: [], source: alphaSource(value, 'F32') });
    layers.push({ name: spec.name, keyA, keyB, keyAlpha, rank, scaleOut: kohyaScale(value, rank) });
    kohyaRows.push({ spec, rank, alpha: kohyaAlpha(value, rank) });
  });
  let metadata: Record<string, string> | null = null;
  if (args.metadata) {
    metadata = { ...args.metadata };
    delete metadata[LORA_ADAPTER_METADATA_KEY];
    // A source that carries kohya's training metadata (ss_network_dim / ss_network_alpha): they
    // describe the written ranks and alphas once the rank changed, as in a kohya -> kohya expand.
    if (rankChanged(args.layers)) updateKohyaMetadata(metadata, kohyaRows, warnings);
  }
  return finish('kohya', tensors, layers, metadata, null, warnings);
}

function planDiffusersToPeft(args: PlanOutputArgs): OutputPlan {
  refuseCrossPassthrough(args, 'peft');
  const mods = args.layers.map((l) => moduleOf(l.spec, 'diffusers'));
  const components = [...new Set(mods.map((m) => m.component))];
  if (components.length > 1) {
    throw new UsageError(
      `--to peft: the file adapts ${components.length} pipeline components (${components.join(', ')}); a PEFT adapter ` +
      `adapts one model, so convert one component at a time`);
  }
  const tensors: OutputTensor[] = [];
  const layers: OutputLayer[] = [];
  const rows = args.layers.map(({ spec, rank }, i) => ({ path: mods[i].modulePath, rank, alpha: spec.scale * rank }));
  // r and lora_alpha: the most common values; the rest go to exact pattern entries.
  const mode = (xs: number[]): number => {
    const counts = new Map<number, number>();
    for (const x of xs) counts.set(x, (counts.get(x) ?? 0) + 1);
    return [...counts].sort((p, q) => q[1] - p[1] || p[0] - q[0])[0][0];
  };
  const r = mode(rows.map((x) => x.rank));
  const loraAlpha = mode(rows.map((x) => x.alpha));
  const rankPattern = dict<number>();
  const alphaPattern = dict<number>();
  const keys = patternKeys(rows.map((x) => x.path));
  for (const [i, x] of rows.entries()) {
    if (x.rank !== r) rankPattern[keys[i]] = x.rank;
    if (x.alpha !== loraAlpha) alphaPattern[keys[i]] = x.alpha;
  }
  const meta = parseAdapterMetadata(args.metadata);
  const base = meta ? (meta.components.get(components[0]) ?? meta.flat ?? {}) : {};
  const config: Record<string, unknown> = {
    ...base,
    peft_type: 'LORA',
    r,
    lora_alpha: loraAlpha,
    rank_pattern: plain(rankPattern),
    alpha_pattern: plain(alphaPattern),
    use_rslora: false,
    target_modules: [...new Set(rows.map((x) => x.path))].sort(),
  };
  const check = readLoraConfig(config, 'adapter_config.json');
  args.layers.forEach(({ spec, rank }, i) => {
    const path = rows[i].path;
    const keyA = `${PEFT_PREFIX}${path}.lora_A.weight`;
    const keyB = `${PEFT_PREFIX}${path}.lora_B.weight`;
    const s = outShapes(spec, rank);
    tensors.push({ name: keyA, dtype: spec.dtypeA, shape: s.a, source: { kind: 'factor', layer: i, factor: 'A' } });
    tensors.push({ name: keyB, dtype: spec.dtypeB, shape: s.b, source: { kind: 'factor', layer: i, factor: 'B' } });
    const ra = resolveRankAlpha(check, path, 'adapter_config.json');
    layers.push({ name: spec.name, keyA, keyB, rank, scaleOut: peftScaling(ra.alpha, ra.r, false) });
  });
  return finish('peft', tensors, layers, { format: 'pt' }, config, []);
}

