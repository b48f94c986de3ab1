/**
 * kohya sd-scripts / A1111 / ComfyUI LoRA files: `<stem>.lora_down.weight` (A), `<stem>.lora_up.weight` (B)
 * and an optional 0-d `<stem>.alpha`, where the stem is the module path with dots flattened to underscores
 * behind a component prefix: `lora_unet_`, `lora_te_` (SD1/2 text encoder), `lora_te1_`/`lora_te2_` (SDXL),
 * `lora_te3_` (SD3/Flux T5), `lora_transformer_` (OneTrainer; ComfyUI comfy/lora.py model_lora_keys_unet
 * maps "lora_transformer_{}" for it). Scale follows sd-scripts networks/lora.py LoRAModule.__init__:
 * alpha missing or 0 means alpha = rank, and scale = alpha / rank (lora_dim, the rank of the factors).
 */
import type { LayerPlan, LayerSpec } from './layer.js';
import {
  type DescribeInput, type FactorGroup, type FamilyParse, type TensorMeta,
  pairGroups, readAlpha, setFactor, sortByName, toLayerSpec,
} from './common.js';
import { exampleList } from './refuse.js';

export const KOHYA_PREFIXES = ['lora_unet_', 'lora_te_', 'lora_te1_', 'lora_te2_', 'lora_te3_', 'lora_transformer_'] as const;

const FACTOR = /^([^.]+)\.(lora_down|lora_up)\.weight$/;
const ALPHA = /^([^.]+)\.alpha$/;
const DORA = /^([^.]+)\.dora_scale$/;

/** Number of keys that look like kohya factors (stem without dots): used by detection. */
export function countKohyaKeys(names: readonly string[]): number {
  return names.filter((n) => FACTOR.test(n)).length;
}

export function isKohyaPrefixed(stem: string): boolean {
  return KOHYA_PREFIXES.some((p) => stem.startsWith(p));
}

export function parseKohyaKeys(tensors: readonly TensorMeta[]): FamilyParse {
  const groups = new Map<string, FactorGroup>();
  const passthrough: string[] = [];
  const unrecognized: string[] = [];
  const dora: string[] = [];
  const base = (stem: string) => ({ name: stem, modulePath: stem, component: '', embedding: false });
  for (const t of tensors) {
    let m = FACTOR.exec(t.name);
    if (m) {
      setFactor(groups, base(m[1]), m[2] === 'lora_down' ? 'keyA' : 'keyB', t.name);
      continue;
    }
    m = ALPHA.exec(t.name);
    if (m) {
      setFactor(groups, base(m[1]), 'keyAlpha', t.name);
      continue;
    }
    if (DORA.test(t.name)) {
      dora.push(t.name);
      continue;
    }
    unrecognized.push(t.name);
  }
  const warnings: string[] = [];
  if (dora.length > 0) {
    passthrough.push(...dora);
    warnings.push(
      `DoRA: ${dora.length} dora_scale tensors kept verbatim; a DoRA update also depends on the base model's ` +
      `weights, which nola does not have, so its fidelity is measured on the low-rank part only (e.g. ${exampleList(dora)})`);
  }
  const unprefixed = [...groups.keys()].filter((s) => !isKohyaPrefixed(s));
  if (unprefixed.length > 0) {
    warnings.push(`${unprefixed.length} kohya-style layers have a prefix other than ${KOHYA_PREFIXES.join(', ')}: ${exampleList(unprefixed)}`);
  }
  return { family: 'kohya', groups: [...groups.values()], passthrough, unrecognized, warnings };
}

/** The ss_* training metadata worth a line in the report. */
function metadataNote(metadata: Record<string, string> | null): string | undefined {
  if (!metadata) return undefined;
  const keys = ['ss_network_module', 'ss_network_dim', 'ss_network_alpha', 'ss_network_args', 'ss_base_model_version', 'ss_sd_model_name'];
  const parts = keys.filter((k) => metadata[k] !== undefined).map((k) => `${k}=${metadata[k]}`);
  const hashes = ['sshs_model_hash', 'sshs_legacy_hash'].filter((k) => metadata[k] !== undefined);
  if (hashes.length > 0) parts.push(`${hashes.join(', ')} present (recomputed on expand)`);
  return parts.length > 0 ? `kohya metadata: ${parts.join(', ')}` : undefined;
}

export async function describeKohya(input: DescribeInput, parse: FamilyParse, byName: Map<string, TensorMeta>): Promise<LayerPlan> {
  const paired = pairGroups(parse, byName);
  const layers: LayerSpec[] = [];
  for (const p of paired) {
    const { stored, effective } = await readAlpha(p, input.readScalar);
    layers.push(toLayerSpec(p, effective, effective / p.rank, stored));
  }
  const note = metadataNote(input.metadata);
  return { family: 'kohya', layers: sortByName(layers), passthrough: [...parse.passthrough, ...parse.unrecognized], warnings: [...parse.warnings], notes: [...(note ? [note] : []), ...(parse.notes ?? [])] };
}
