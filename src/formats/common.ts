/**
 * Pieces shared by the family adapters (peft, kohya, diffusers): the input shape of describeLora,
 * the "factor group" every family parses its keys into, PEFT-style config resolution (used by PEFT's
 * adapter_config.json and by diffusers' lora_adapter_metadata), and the final assembly of LayerSpecs.
 * Pure: names, shapes, dtypes and small config objects only; tensor data is reached only through
 * the caller's readScalar, and only after every name/shape check has passed.
 */
import type { DType } from '../io/safetensors/dtypes.js';
import type { TensorInfo } from '../io/safetensors/types.js';
import { FormatError, NumericError, PairingError } from '../errors.js';
import type { Family, LayerSpec } from './layer.js';
import { checkPair, exampleList } from './refuse.js';
import { compilePeftKey, PatternError, type CompiledPattern } from './pattern.js';

/** What format code needs of a tensor: its name, dtype and shape (offsets are the reader's business). */
export type TensorMeta = Pick<TensorInfo, 'name' | 'dtype' | 'shape'>;

export interface DescribeInput {
  tensors: TensorMeta[];
  metadata: Record<string, string> | null;
  /** A sibling adapter_config.json, parsed by the caller. */
  config: unknown | null;
  /** Reads a one-element tensor (kohya `.alpha`) as a number, whatever its dtype. */
  readScalar: (name: string) => Promise<number>;
  /** `--format`: skip detection and parse as this family. */
  family?: Family;
}

/** The keys of one LoRA layer as a family's key parser found them. */
export interface FactorGroup {
  /** Canonical layer name (LayerSpec.name). */
  name: string;
  /** Where PEFT-style rank_pattern/alpha_pattern keys are matched: the module path inside its model. */
  modulePath: string;
  /** Diffusers pipeline component (unet, text_encoder, transformer...), '' when the keys carry none. */
  component: string;
  embedding: boolean;
  keyA?: string;
  keyB?: string;
  keyAlpha?: string;
}

/** A factor group whose factors exist and fit together. */
export interface PairedGroup {
  group: FactorGroup;
  a: TensorMeta;
  b: TensorMeta;
  alpha?: TensorMeta;
  kind: LayerSpec['kind'];
  rank: number;
  dIn: number;
  dOut: number;
}

/** The result of a family's key parse, before any tensor data is read. */
export interface FamilyParse {
  family: Family;
  groups: FactorGroup[];
  /** Tensors carried verbatim that the family knows (DoRA magnitudes, modules_to_save, lora_B.bias...). */
  passthrough: string[];
  /** Tensors no rule of the family recognized: carried verbatim too, with a warning. */
  unrecognized: string[];
  warnings: string[];
  /** Harmless facts (tensors of a known kind kept verbatim): info lines, not warnings. */
  notes?: string[];
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Escapes a literal for use inside a RegExp (and inside a Python `re` pattern: same metacharacters). */
export function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Adds a group's factor key, refusing a second tensor for the same slot (two adapters, two key styles). */
export function setFactor(groups: Map<string, FactorGroup>, base: Omit<FactorGroup, 'keyA' | 'keyB' | 'keyAlpha'>,
  slot: 'keyA' | 'keyB' | 'keyAlpha', key: string): void {
  let g = groups.get(base.name);
  if (!g) {
    g = { ...base };
    groups.set(base.name, g);
  }
  const prev = g[slot];
  if (prev !== undefined && prev !== key) {
    throw new FormatError(
      `two tensors map to the same ${slot === 'keyA' ? 'A factor' : slot === 'keyB' ? 'B factor' : 'alpha'} of layer ` +
      `'${base.name}': '${prev}' and '${key}' (more than one adapter or key style for one module is not supported)`);
  }
  g[slot] = key;
}

/**
 * Pairs every group's factors and checks their shapes (names and shapes only: no data read).
 * Groups with only an alpha are not layers: their alpha goes to passthrough with a warning.
 */
export function pairGroups(parse: FamilyParse, byName: Map<string, TensorMeta>): PairedGroup[] {
  const out: PairedGroup[] = [];
  const orphanAlphas: string[] = [];
  for (const g of parse.groups) {
    if (g.keyA === undefined && g.keyB === undefined) {
      if (g.keyAlpha !== undefined) orphanAlphas.push(g.keyAlpha);
      continue;
    }
    if (g.keyA === undefined || g.keyB === undefined) {
      const have = (g.keyA ?? g.keyB) as string;
      throw new PairingError(
        `layer '${g.name}' has its ${g.keyA === undefined ? 'B (up)' : 'A (down)'} factor '${have}' but no ` +
        `${g.keyA === undefined ? 'A (down)' : 'B (up)'} factor: unpaired LoRA factors cannot be compressed`);
    }
    const a = byName.get(g.keyA) as TensorMeta;
    const b = byName.get(g.keyB) as TensorMeta;
    const fit = checkPair(g.name, a, b, g.embedding);
    let alpha: TensorMeta | undefined;
    if (g.keyAlpha !== undefined) {
      alpha = byName.get(g.keyAlpha) as TensorMeta;
      if (numel(alpha.shape) !== 1) {
        throw new FormatError(
          `alpha tensor '${alpha.name}' has shape [${alpha.shape.join(', ')}]; an alpha must hold one number`);
      }
    }
    out.push({ group: g, a, b, alpha, ...fit });
  }
  if (orphanAlphas.length > 0) {
    parse.passthrough.push(...orphanAlphas);
    parse.warnings.push(
      `${orphanAlphas.length} alpha tensor(s) with no LoRA factors beside them, kept verbatim: ${exampleList(orphanAlphas)}`);
  }
  return out;
}

/** Reads an alpha tensor; kohya rule: missing or 0 means alpha = rank (sd-scripts networks/lora.py LoRAModule.__init__). */
export async function readAlpha(p: PairedGroup, readScalar: (name: string) => Promise<number>):
  Promise<{ stored?: number; effective: number }> {
  if (!p.alpha) return { effective: p.rank };
  const v = await readScalar(p.alpha.name);
  if (!Number.isFinite(v)) throw new NumericError(`alpha tensor '${p.alpha.name}' is ${v}`);
  return { stored: v, effective: v === 0 ? p.rank : v };
}

/** `alpha` undefined: the source states none (the family default applies; the NOLA document stores null). */
export function toLayerSpec(p: PairedGroup, alpha: number | undefined, scale: number, alphaStored?: number): LayerSpec {
  const spec: LayerSpec = {
    name: p.group.name,
    kind: p.kind,
    keyA: p.a.name,
    keyB: p.b.name,
    dtypeA: p.a.dtype,
    dtypeB: p.b.dtype,
    shapeA: [...p.a.shape],
    shapeB: [...p.b.shape],
    rank: p.rank,
    dIn: p.dIn,
    dOut: p.dOut,
    ...(alpha !== undefined ? { alpha } : {}),
    scale,
  };
  if (p.alpha) {
    spec.keyAlpha = p.alpha.name;
    spec.dtypeAlpha = p.alpha.dtype;
    spec.alphaStored = alphaStored;
  }
  if (p.group.component !== '') spec.component = p.group.component;
  spec.modulePath = p.group.modulePath;
  return spec;
}

// ---------------------------------------------------------------------------------------------
// PEFT LoraConfig semantics (peft src/peft/tuners/lora/config.py, layer.py, utils/other.py)

export interface LoraConfigView {
  r: number;
  loraAlpha: number;
  useRslora: boolean;
  rankPattern: Record<string, number>;
  alphaPattern: Record<string, number>;
}

/** A config value as the user wrote it: JSON for most, but 1e400 parses to Infinity, which JSON.stringify shows as null. */
function shown(x: unknown): string {
  return typeof x === 'number' ? `${x} (not a finite number)` : JSON.stringify(x);
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * An empty object with no prototype, for keys that come from a file (pattern keys, module paths,
 * metadata keys): on a plain object `o['__proto__'] = x` sets its prototype instead of a key, and
 * `'constructor' in o` is true before anything is stored.
 */
export function dict<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

function numberPattern(v: unknown, field: string, where: string): Record<string, number> {
  if (v === undefined || v === null) return dict();
  if (!isRecord(v)) throw new FormatError(`${where}: ${field} must be an object of pattern -> number`);
  const out = dict<number>();
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw new FormatError(`${where}: ${field}['${k}'] must be a number, found ${shown(x)}`);
    }
    out[k] = x;
  }
  const keys = Object.keys(out);
  const index = keys.find(isArrayIndexKey);
  if (index !== undefined && keys.length > 1) {
    throw new FormatError(`${where}: ${field} key '${index}' is an array index, which JSON readers in JavaScript list before ` +
      `every other key, so its place among the keys (PEFT takes the first that matches) cannot be kept; ` +
      `write it as '(${index})', the same pattern`);
  }
  return out;
}

/**
 * A canonical array index ("0", "17"; no sign, no leading zero, below 2^32 − 1): the keys a
 * JavaScript object lists first, in ascending order, whatever their order in the JSON text.
 */
function isArrayIndexKey(k: string): boolean {
  return /^(0|[1-9][0-9]*)$/.test(k) && Number(k) < 2 ** 32 - 1;
}

/**
 * A pattern key as nola writes it beside others: an array index ("0") as "(0)", the same pattern
 * under PEFT's `(.*\.)?(KEY)$`, which JSON order cannot move ahead of the keys before it.
 */
export function orderSafePatternKey(k: string): string {
  return isArrayIndexKey(k) ? `(${k})` : k;
}

/**
 * Reads the fields of a PEFT LoraConfig that decide each layer's rank and scale. Missing fields take
 * LoraConfig's defaults (r=8, lora_alpha=8, use_rslora=False, empty patterns), as PEFT does when it
 * builds the config from the JSON.
 */
export function readLoraConfig(cfg: unknown, where: string): LoraConfigView {
  if (!isRecord(cfg)) throw new FormatError(`${where} is not a JSON object`);
  const num = (field: string, dflt: number): number => {
    const v = cfg[field];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new FormatError(`${where}: ${field} must be a number, found ${shown(v)}`);
    }
    return v;
  };
  return {
    r: num('r', 8),
    loraAlpha: num('lora_alpha', 8),
    useRslora: cfg.use_rslora === true,
    rankPattern: numberPattern(cfg.rank_pattern, 'rank_pattern', where),
    alphaPattern: numberPattern(cfg.alpha_pattern, 'alpha_pattern', where),
  };
}

const patternCache = new Map<string, CompiledPattern>();

/**
 * PEFT's get_pattern_key (peft/utils/other.py): the first pattern key, in insertion order, for which
 * `re.match(rf"(.*\.)?({key})$", module_path)` matches. The key is a regular expression from a file,
 * so it is matched by the linear-time matcher of pattern.ts (never a backtracking engine), and a key
 * outside that matcher's subset is refused.
 */
export function matchPatternKey(patterns: Record<string, number>, modulePath: string, where: string): string | undefined {
  for (const key of Object.keys(patterns)) {
    let re = patternCache.get(key);
    if (!re) {
      try {
        re = compilePeftKey(key);
      } catch (e) {
        if (!(e instanceof PatternError)) throw e;
        throw new FormatError(`${where}: pattern key ${JSON.stringify(key)} is not supported: ${e.message} (nola matches literals, ., [classes], \\d \\w \\s, escapes, groups, |, * + ? {m,n}, ^ $)`);
      }
      if (patternCache.size > 10_000) patternCache.clear();
      patternCache.set(key, re);
    }
    if (re.matches(modulePath)) return key;
  }
  return undefined;
}

/** The rank and alpha PEFT gives a module, from r/lora_alpha and rank_pattern/alpha_pattern. */
export function resolveRankAlpha(cfg: LoraConfigView, modulePath: string, where: string): { r: number; alpha: number } {
  const rk = matchPatternKey(cfg.rankPattern, modulePath, where);
  const ak = matchPatternKey(cfg.alphaPattern, modulePath, where);
  return {
    r: rk === undefined ? cfg.r : cfg.rankPattern[rk],
    alpha: ak === undefined ? cfg.loraAlpha : cfg.alphaPattern[ak],
  };
}

/** PEFT LoraLayer.update_layer: scaling = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora. */
export function peftScaling(alpha: number, r: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}

/**
 * Rank and scale of one layer under a PEFT-style config. The rank the config gives the module must be
 * the rank of the tensors: PEFT would build the module with that rank and fail to load them.
 */
export function scaleFromConfig(cfg: LoraConfigView, p: PairedGroup, where: string): { alpha: number; scale: number } {
  const { r, alpha } = resolveRankAlpha(cfg, p.group.modulePath, where);
  if (r !== p.rank) {
    throw new PairingError(
      `layer '${p.group.name}': ${where} gives module '${p.group.modulePath}' rank ${r}, but its factors ` +
      `'${p.a.name}' [${p.a.shape.join(', ')}] and '${p.b.name}' [${p.b.shape.join(', ')}] have rank ${p.rank}`);
  }
  return { alpha, scale: peftScaling(alpha, r, cfg.useRslora) };
}

/** Layers sorted by name, so a plan does not depend on the order of the file's header. */
export function sortByName<T extends { name: string }>(xs: T[]): T[] {
  return xs.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
}

export function isPlainObject(x: unknown): x is Record<string, unknown> {
  return isRecord(x);
}

export type { DType };
