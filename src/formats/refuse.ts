/**
 * Refusals: layouts nola does not handle, said in one line that names what was found and shows up to
 * three example keys. Every check here works from tensor names, shapes, `__metadata__` and the adapter
 * config only, so a refused file is refused before any tensor data is read and nothing is written.
 *
 * Key markers follow the loaders that define them: ComfyUI comfy/weight_adapter/{loha,lokr,glora,oft,boft}.py
 * and comfy/lora.py (LoHa `hada_w1_a`..., LoKr `lokr_w1`..., GLoRA `a1.weight`..., OFT `oft_blocks`/`oft_diag`,
 * full diffs `.diff`/`.diff_b`, `.set_weight`), LyCORIS's own module names (Tucker `lora_mid`, norms
 * `w_norm`/`b_norm`, IA3 `on_input`), and PEFT's tuner parameter names (`ia3_l`, `oft_r`, `boft_R`...).
 */
import { FormatError, PairingError } from '../errors.js';
import type { LayerKind } from './layer.js';

interface Named { name: string }
interface Shaped { name: string; dtype: string; shape: readonly number[] }

/** Up to `n` keys, quoted, comma-separated, with "(+k more)" when there are more. */
export function exampleList(keys: readonly string[], n = 3): string {
  const shown = keys.slice(0, n).map((k) => `'${k}'`).join(', ');
  return keys.length > n ? `${shown} (+${keys.length - n} more)` : shown;
}

interface Marker {
  what: string;
  /** True when the tensor name belongs to this layout. */
  test: (name: string) => boolean;
}

const lastSegments = (name: string): string[] => name.split('.');

/** Non-LoRA adapter algorithms, tested on the last segment(s) of each key. */
const UNSUPPORTED: Marker[] = [
  { what: 'LyCORIS LoKr (Kronecker product)', test: (n) => /\.lokr_(w1|w2|w1_a|w1_b|w2_a|w2_b|t1|t2)$/.test(n) },
  { what: 'LyCORIS LoHa (Hadamard product)', test: (n) => /\.hada_(w1_a|w1_b|w2_a|w2_b|t1|t2)$/.test(n) },
  { what: 'LyCORIS Tucker/CP decomposition (lora_mid)', test: (n) => /\.lora_mid\.weight$/.test(n) },
  { what: 'OFT/BOFT (orthogonal finetuning)', test: (n) => lastSegments(n).some((s) => /^(oft_blocks|oft_diag|oft_r|oft_R|oft_s|boft_R|boft_s)$/.test(s)) },
  { what: 'LyCORIS full weight diff', test: (n) => /\.(diff|diff_b|set_weight)$/.test(n) },
  { what: 'LyCORIS norm finetuning', test: (n) => /\.(w_norm|b_norm)$/.test(n) },
  { what: '(IA)^3', test: (n) => /\.on_input$/.test(n) || lastSegments(n).includes('ia3_l') },
];

/** GLoRA needs a1/a2/b1/b2 beside each other: a lone `a1.weight` may be an ordinary module named a1. */
function gloraKeys(names: readonly string[]): string[] {
  const re = /^(.*)\.(a1|a2|b1|b2)\.weight$/;
  const parts = new Map<string, Set<string>>();
  for (const n of names) {
    const m = re.exec(n);
    if (!m) continue;
    let s = parts.get(m[1]);
    if (!s) parts.set(m[1], (s = new Set()));
    s.add(m[2]);
  }
  const stems = new Set([...parts].filter(([, s]) => s.has('a1') && s.has('b1')).map(([k]) => k));
  return names.filter((n) => {
    const m = re.exec(n);
    return m !== null && stems.has(m[1]);
  });
}

/** The legacy cloneofsimo/lora layout: `unet:0:up`, `text_encoder:12:down` (lora_diffusion save_safeloras). */
const CLONEOFSIMO = /^[A-Za-z_][A-Za-z0-9_]*:\d+:(up|down)$/;

/**
 * Throws FormatError for a file in a layout nola refuses: LyCORIS algorithms other than plain LoRA,
 * PEFT adapter types other than LORA, and the legacy cloneofsimo key layout.
 */
export function refuseUnsupported(tensors: readonly Named[], metadata: Record<string, string> | null, config: unknown | null): void {
  const names = tensors.map((t) => t.name);

  const clone = names.filter((n) => CLONEOFSIMO.test(n));
  if (clone.length > 0) {
    throw new FormatError(
      `this key layout is not supported: legacy cloneofsimo/lora file (keys like 'unet:0:up' number the patched ` +
      `modules instead of naming them; ${clone.length} such keys, e.g. ${exampleList(clone)}); convert it to kohya or diffusers keys first`);
  }

  const found: string[] = [];
  const examples: string[] = [];
  for (const m of UNSUPPORTED) {
    const hits = names.filter(m.test);
    if (hits.length > 0) {
      found.push(`${m.what}: ${hits.length} tensors`);
      if (examples.length < 3) examples.push(...hits.slice(0, 3 - examples.length));
    }
  }
  const glora = gloraKeys(names);
  if (glora.length > 0) {
    found.push(`LyCORIS GLoRA: ${glora.length} tensors`);
    if (examples.length < 3) examples.push(...glora.slice(0, 3 - examples.length));
  }
  if (found.length > 0) {
    const module = metadata?.ss_network_module;
    const args = metadata?.ss_network_args;
    let algo = '';
    if (args) {
      try {
        const a = JSON.parse(args) as Record<string, unknown>;
        if (typeof a.algo === 'string') algo = `, algo=${a.algo}`;
      } catch { /* ss_network_args is free text in some trainers */ }
    }
    const trainer = module ? ` (ss_network_module=${module}${algo})` : '';
    throw new FormatError(
      `unsupported adapter${trainer}: found ${found.join('; ')}; nola compresses plain LoRA only (pairs of low-rank ` +
      `factors A/B, as LoRA and LyCORIS LoCon write them); e.g. ${exampleList(examples)}`);
  }

  if (typeof config === 'object' && config !== null && !Array.isArray(config)) {
    const t = (config as Record<string, unknown>).peft_type;
    if (typeof t === 'string' && t.toUpperCase() !== 'LORA') {
      throw new FormatError(
        `adapter_config.json has peft_type ${t}: nola compresses PEFT LORA adapters only (found tensors e.g. ${exampleList(names)})`);
    }
  }
}

/** Near misses worth naming when nothing is recognized (hand-converted keys are the usual cause). */
function nearMissHint(names: readonly string[]): string {
  const underscored = names.filter((n) => /_lora_(down|up)\.weight$/.test(n));
  if (underscored.length > 0) {
    return ` Keys end in '_lora_down.weight'/'_lora_up.weight' where kohya writes '.lora_down.weight'/'.lora_up.weight' ` +
      `(a hand-converted file?).`;
  }
  return '';
}

/** Throws FormatError for a file (or a `--format` choice) in which no LoRA layer was recognized. */
export function refuseNoLayers(tensors: readonly Named[], family?: string): never {
  const names = tensors.map((t) => t.name);
  if (names.length === 0) throw new FormatError('no LoRA layer recognized: the file holds no tensors');
  const scope = family ? `no ${family} LoRA layer recognized (--format ${family})` : 'no LoRA layer recognized';
  throw new FormatError(
    `${scope} among ${names.length} tensors; example keys: ${exampleList(names)}.${nearMissHint(names)} ` +
    `Known layouts: PEFT '<module>.lora_A.weight', kohya 'lora_unet_<module>.lora_down.weight', ` +
    `diffusers 'unet.<module>.lora.down.weight' and the like.`);
}

const dims = (s: readonly number[]): string => `[${s.join(', ')}]`;

/**
 * Checks that factors A (rank x dIn, trailing axes flattened) and B (dOut x rank, trailing axes 1) fit
 * together, from shapes only. Linear/embedding: A [r, in], B [out, r]. Conv (kohya networks/lora.py,
 * PEFT tuners/lora/layer.py Conv2d/Conv1d/Conv3d): A [r, in, k...], B [out, r, 1...] of the same rank.
 */
export function checkPair(name: string, a: Shaped, b: Shaped, embedding: boolean):
  { kind: LayerKind; rank: number; dIn: number; dOut: number } {
  const bad = (why: string): never => {
    throw new PairingError(
      `layer '${name}': factor shapes do not fit (${why}): A '${a.name}' ${dims(a.shape)}, B '${b.name}' ${dims(b.shape)}`);
  };
  if (a.shape.length < 2) bad('A needs at least 2 axes');
  if (b.shape.length < 2) bad('B needs at least 2 axes');
  if (a.shape.some((d) => !Number.isInteger(d) || d <= 0) || b.shape.some((d) => !Number.isInteger(d) || d <= 0)) {
    bad('every axis must be a positive length');
  }
  const rank = a.shape[0];
  if (b.shape[1] !== rank) {
    throw new PairingError(
      `layer '${name}': rank mismatch: A '${a.name}' ${dims(a.shape)} has rank ${rank} on axis 0, ` +
      `B '${b.name}' ${dims(b.shape)} has ${b.shape[1]} on axis 1`);
  }
  let kind: LayerKind = embedding ? 'embedding' : 'linear';
  if (a.shape.length > 2 || b.shape.length > 2) {
    if (embedding) bad('embedding factors are 2-D');
    if (a.shape.length !== b.shape.length) bad('a convolution\'s A and B have the same number of axes');
    if (b.shape.slice(2).some((d) => d !== 1)) bad('a convolution\'s B (up) is a 1x1 kernel');
    kind = 'conv';
  }
  let dIn = 1;
  for (const d of a.shape.slice(1)) dIn *= d;
  return { kind, rank, dIn, dOut: b.shape[0] };
}
