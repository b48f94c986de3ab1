/**
 * PEFT LoRA adapters (adapter_model.safetensors + adapter_config.json).
 *
 * Keys, as peft/utils/save_and_load.py get_peft_model_state_dict writes them (adapter name removed):
 *   base_model.model.<module>.lora_A.weight / .lora_B.weight      linear and conv (A [r, in, k...], B [out, r, 1...])
 *   base_model.model.<module>.lora_embedding_A / .lora_embedding_B embedding (A [r, num_embeddings], B [dim, r])
 *   <module>.lora_magnitude_vector                                 DoRA magnitude (older files: ...lora_magnitude_vector.weight)
 *   <module>.lora_B.bias                                           lora_bias=True
 *   <module>.<param> for modules_to_save                           full copies of trained modules
 * Files in the wild also keep an adapter name segment (`.lora_A.default.weight`); both are read.
 *
 * Scale (peft/tuners/lora/layer.py LoraLayer.update_layer): lora_alpha / r, or lora_alpha / sqrt(r) with
 * use_rslora; per-module r and alpha come from rank_pattern / alpha_pattern (peft/utils/other.py
 * get_pattern_key: first key, in order, with re.match(rf"(.*\.)?({key})$", module_path)).
 */
import type { LayerPlan, LayerSpec } from './layer.js';
import {
  type DescribeInput, type FactorGroup, type FamilyParse, type LoraConfigView, type TensorMeta,
  pairGroups, readLoraConfig, scaleFromConfig, setFactor, sortByName, toLayerSpec,
} from './common.js';
import { exampleList } from './refuse.js';

export const PEFT_PREFIX = 'base_model.model.';

const FACTOR = /^(.*)\.(lora_A|lora_B)(?:\.([^.]+))?\.weight$/;
const EMBEDDING = /^(.*)\.(lora_embedding_A|lora_embedding_B)(?:\.([^.]+))?$/;
const DORA = /^(.*)\.lora_magnitude_vector(?:\.[^.]+)?$/;
const LORA_BIAS = /^(.*)\.lora_B(?:\.[^.]+)?\.bias$/;

const stripPrefix = (s: string): string => (s.startsWith(PEFT_PREFIX) ? s.slice(PEFT_PREFIX.length) : s);

/** Keys that carry PEFT's prefix and a LoRA factor: used by detection. */
export function countPeftKeys(names: readonly string[]): number {
  return names.filter((n) => n.startsWith(PEFT_PREFIX) && (FACTOR.test(n) || EMBEDDING.test(n))).length;
}

/** Keys with a PEFT-style factor suffix, whatever their prefix. */
export function isPeftStyleFactor(name: string): boolean {
  return FACTOR.test(name) || EMBEDDING.test(name);
}

/** PEFT's modules_to_save check (peft/utils/other.py _set_trainable): the module name ends with an entry. */
function modulesToSave(config: unknown): string[] {
  if (typeof config !== 'object' || config === null) return [];
  const m = (config as Record<string, unknown>).modules_to_save;
  return Array.isArray(m) ? m.filter((x): x is string => typeof x === 'string') : [];
}

export function parsePeftKeys(tensors: readonly TensorMeta[], config: unknown | null): FamilyParse {
  const groups = new Map<string, FactorGroup>();
  const passthrough: string[] = [];
  const unrecognized: string[] = [];
  const dora: string[] = [];
  const biases: string[] = [];
  const saved: string[] = [];
  const toSave = modulesToSave(config);
  const base = (stem: string, embedding: boolean) => {
    const path = stripPrefix(stem);
    return { name: path, modulePath: path, component: '', embedding };
  };
  for (const t of tensors) {
    let m = DORA.exec(t.name);
    if (m) {
      dora.push(t.name);
      continue;
    }
    m = LORA_BIAS.exec(t.name);
    if (m) {
      biases.push(t.name);
      continue;
    }
    m = FACTOR.exec(t.name);
    if (m) {
      setFactor(groups, base(m[1], false), m[2] === 'lora_A' ? 'keyA' : 'keyB', t.name);
      continue;
    }
    m = EMBEDDING.exec(t.name);
    if (m) {
      setFactor(groups, base(m[1], true), m[2] === 'lora_embedding_A' ? 'keyA' : 'keyB', t.name);
      continue;
    }
    const module = stripPrefix(t.name).replace(/\.[^.]+$/, '');
    if (toSave.some((s) => module.endsWith(s))) saved.push(t.name);
    else unrecognized.push(t.name);
  }
  const warnings: string[] = [];
  if (dora.length > 0) {
    passthrough.push(...dora);
    warnings.push(
      `DoRA: ${dora.length} lora_magnitude_vector tensors kept verbatim; a DoRA update also depends on the base ` +
      `model's weights, which nola does not have, so DoRA fidelity is not guaranteed (e.g. ${exampleList(dora)})`);
  }
  if (biases.length > 0) {
    passthrough.push(...biases);
    warnings.push(`lora_bias: ${biases.length} lora_B.bias tensors kept verbatim (e.g. ${exampleList(biases)})`);
  }
  if (saved.length > 0) {
    passthrough.push(...saved);
    warnings.push(`modules_to_save: ${saved.length} full tensors kept verbatim (e.g. ${exampleList(saved)})`);
  }
  return { family: 'peft', groups: [...groups.values()], passthrough, unrecognized, warnings };
}

export async function describePeft(input: DescribeInput, parse: FamilyParse, byName: Map<string, TensorMeta>): Promise<LayerPlan> {
  const paired = pairGroups(parse, byName);
  const warnings = [...parse.warnings];
  let cfg: LoraConfigView | null = null;
  if (input.config !== null && input.config !== undefined) {
    cfg = readLoraConfig(input.config, 'adapter_config.json');
  } else {
    warnings.push('PEFT adapter without adapter_config.json: lora_alpha unknown, taking alpha = r (scale 1) for every layer');
  }
  const layers: LayerSpec[] = [];
  for (const p of paired) {
    if (cfg) {
      const { alpha, scale } = scaleFromConfig(cfg, p, 'adapter_config.json');
      layers.push(toLayerSpec(p, alpha, scale));
    } else {
      layers.push(toLayerSpec(p, undefined, 1));
    }
  }
  const prefixless = paired.filter((p) => !p.a.name.startsWith(PEFT_PREFIX)).map((p) => p.a.name);
  if (prefixless.length > 0) {
    warnings.push(`${prefixless.length} PEFT-style layers without the 'base_model.model.' prefix, module paths taken as written: ${exampleList(prefixless)}`);
  }
  return { family: 'peft', layers: sortByName(layers), passthrough: [...parse.passthrough, ...parse.unrecognized], warnings };
}
