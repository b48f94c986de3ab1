/**
 * diffusers LoRA files (pytorch_lora_weights.safetensors and the trainers that copy its keys).
 *
 * Key styles, each with the module path nola names the layer by (diffusers utils/state_dict_utils.py
 * UNET_TO_DIFFUSERS / DIFFUSERS_OLD_TO_PEFT give the module each old style patches; ComfyUI
 * comfy/weight_adapter/lora.py LoRAAdapter.load lists the same suffixes):
 *   attention processors  unet.<block>.attn1.processor.to_k_lora.down.weight   -> unet.<block>.attn1.to_k
 *                         (to_out_lora -> to_out.0 in the UNet; text encoder to_q_lora -> q_proj ...)
 *   diffusers 0.2x        unet.<module>.lora.down.weight / .lora.up.weight
 *   lora_linear_layer     text_encoder.<module>.lora_linear_layer.down.weight / .up.weight
 *   PEFT style            unet. / transformer. / text_encoder. / text_encoder_2. / diffusion_model. <module>.lora_A.weight / .lora_B.weight
 *                         (ai-toolkit Flux: transformer.single_transformer_blocks.0.proj_out.lora_A.weight)
 *   bare PEFT (mochi)     <module>.lora_A / .lora_B
 * Alpha: a `<stem>.alpha` tensor when present (scale = alpha / rank, as the Flux loader's network_alphas
 * become PEFT lora_alpha); else the `lora_adapter_metadata` JSON in `__metadata__` (diffusers
 * loaders/lora_base.py: a LoraConfig dict, saved flat by save_lora_adapter or with "<component>." key
 * prefixes by _save_lora_weights/_pack_dict_with_prefix), read with PEFT's rules; else alpha = rank.
 */
import { assertJsonDepth } from '../io/json-depth.js';
import { FormatError } from '../errors.js';
import type { LayerPlan, LayerSpec } from './layer.js';
import {
  type DescribeInput, type FactorGroup, type FamilyParse, type LoraConfigView, type PairedGroup, type TensorMeta,
  dict, isPlainObject, pairGroups, readAlpha, readLoraConfig, scaleFromConfig, setFactor, sortByName, toLayerSpec,
} from './common.js';
import { exampleList } from './refuse.js';

/** Pipeline components whose name diffusers puts in front of the module path (plus ComfyUI's diffusion_model). */
export const DIFFUSERS_COMPONENTS = [
  'unet', 'transformer', 'transformer_2', 'text_encoder', 'text_encoder_2', 'text_encoder_3', 'prior', 'decoder', 'diffusion_model',
] as const;

export const LORA_ADAPTER_METADATA_KEY = 'lora_adapter_metadata';

type Style = 'processor' | 'dot-lora' | 'lora_linear_layer' | 'peft' | 'peft-bare' | 'kohya-suffix';

interface Rule { style: Style; re: RegExp; a: string }

/** Order matters: the first rule that matches a key wins. */
const RULES: Rule[] = [
  { style: 'processor', re: /^(.*)_lora\.(down|up)\.weight$/, a: 'down' },
  { style: 'dot-lora', re: /^(.*)\.lora\.(down|up)\.weight$/, a: 'down' },
  { style: 'lora_linear_layer', re: /^(.*)\.lora_linear_layer\.(down|up)\.weight$/, a: 'down' },
  { style: 'peft', re: /^(.*)\.(lora_A|lora_B)(?:\.[^.]+)?\.weight$/, a: 'lora_A' },
  { style: 'peft-bare', re: /^(.*)\.(lora_A|lora_B)$/, a: 'lora_A' },
  { style: 'kohya-suffix', re: /^(.*\..*)\.(lora_down|lora_up)\.weight$/, a: 'lora_down' },
];
const ALPHA = /^(.*)\.alpha$/;
const DORA = /^(.*)\.(lora_magnitude_vector|dora_scale)(?:\.weight)?$/;
const LORA_BIAS = /^(.*)\.lora_B\.bias$/;

function splitComponent(stem: string): { component: string; module: string } {
  const dot = stem.indexOf('.');
  if (dot > 0) {
    const head = stem.slice(0, dot);
    if ((DIFFUSERS_COMPONENTS as readonly string[]).includes(head)) return { component: head, module: stem.slice(dot + 1) };
  }
  return { component: '', module: stem };
}

/** True when the key starts with a diffusers pipeline component (unet., text_encoder., transformer....). */
export function hasDiffusersComponent(key: string): boolean {
  return splitComponent(key).component !== '';
}

const TE_OLD: Record<string, string> = { to_q: 'q_proj', to_k: 'k_proj', to_v: 'v_proj', to_out: 'out_proj' };

/**
 * Module path an attention-processor key patches: `.processor.` dropped, then in the UNet `to_out` is
 * `to_out.0` (UNET_TO_DIFFUSERS), in a text encoder `to_q` is `q_proj` and so on (DIFFUSERS_OLD_TO_PEFT).
 */
function processorModule(stem: string, component: string): string {
  const s = stem.replace(/\.processor\./g, '.');
  const m = /^(.*)\.(to_q|to_k|to_v|to_out)$/.exec(s);
  if (!m) return s;
  if (component.startsWith('text_encoder')) return `${m[1]}.${TE_OLD[m[2]]}`;
  return m[2] === 'to_out' ? `${m[1]}.to_out.0` : s;
}

/** Number of keys in a diffusers-only style, or PEFT style under a diffusers component prefix: used by detection. */
export function countDiffusersKeys(names: readonly string[]): number {
  let n = 0;
  for (const name of names) {
    const rule = RULES.find((r) => r.re.test(name));
    if (!rule) continue;
    if (rule.style === 'peft' || rule.style === 'peft-bare' || rule.style === 'kohya-suffix') {
      const stem = (rule.re.exec(name) as RegExpExecArray)[1];
      if (splitComponent(stem).component !== '') n++;
    } else {
      n++;
    }
  }
  return n;
}

export function parseDiffusersKeys(tensors: readonly TensorMeta[]): FamilyParse {
  const groups = new Map<string, FactorGroup>();
  const alphaKeys = new Map<string, string>(); // raw stem -> key
  const stemToName = new Map<string, string>();
  const passthrough: string[] = [];
  const unrecognized: string[] = [];
  const dora: string[] = [];
  const biases: string[] = [];
  for (const t of tensors) {
    if (DORA.test(t.name)) { dora.push(t.name); continue; }
    if (LORA_BIAS.test(t.name)) { biases.push(t.name); continue; }
    let matched = false;
    for (const rule of RULES) {
      const m = rule.re.exec(t.name);
      if (!m) continue;
      const stem = m[1];
      const { component, module } = splitComponent(stem);
      const modulePath = rule.style === 'processor' ? processorModule(module, component) : module;
      const name = component ? `${component}.${modulePath}` : modulePath;
      stemToName.set(stem, name);
      setFactor(groups, { name, modulePath, component, embedding: false }, m[2] === rule.a ? 'keyA' : 'keyB', t.name);
      matched = true;
      break;
    }
    if (matched) continue;
    const am = ALPHA.exec(t.name);
    if (am) { alphaKeys.set(am[1], t.name); continue; }
    unrecognized.push(t.name);
  }
  // An alpha belongs to the layer whose key stem (or canonical name) it extends.
  const byName = new Map([...groups.values()].map((g) => [g.name, g]));
  for (const [stem, key] of alphaKeys) {
    const name = stemToName.get(stem) ?? stem;
    const g = byName.get(name);
    if (g) {
      setFactor(groups, g, 'keyAlpha', key);
    } else {
      const { component, module } = splitComponent(stem);
      setFactor(groups, { name: stem, modulePath: module, component, embedding: false }, 'keyAlpha', key);
    }
  }
  const warnings: string[] = [];
  if (dora.length > 0) {
    passthrough.push(...dora);
    warnings.push(
      `DoRA: ${dora.length} magnitude tensors kept verbatim; a DoRA update also depends on the base model's weights, ` +
      `which nola does not have, so DoRA fidelity is not guaranteed (e.g. ${exampleList(dora)})`);
  }
  const notes: string[] = [];
  if (biases.length > 0) {
    passthrough.push(...biases);
    notes.push(`lora_bias: ${biases.length} lora_B.bias tensors kept verbatim (e.g. ${exampleList(biases)})`);
  }
  return { family: 'diffusers', groups: [...groups.values()], passthrough, unrecognized, warnings, notes };
}

/** The lora_adapter_metadata JSON, split into a flat config and per-component configs. */
export interface AdapterMetadata {
  flat: Record<string, unknown> | null;
  components: Map<string, Record<string, unknown>>;
}

export function parseAdapterMetadata(metadata: Record<string, string> | null): AdapterMetadata | null {
  const raw = metadata?.[LORA_ADAPTER_METADATA_KEY];
  if (raw === undefined) return null;
  let parsed: unknown;
  assertJsonDepth(raw, `__metadata__.${LORA_ADAPTER_METADATA_KEY}`);
  try {
    parsed = JSON.parse(raw);
  } catch (e) {
    throw new FormatError(`__metadata__.${LORA_ADAPTER_METADATA_KEY} is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(parsed)) throw new FormatError(`__metadata__.${LORA_ADAPTER_METADATA_KEY} is not a JSON object`);
  const flat = dict<unknown>();
  const components = new Map<string, Record<string, unknown>>();
  for (const [k, v] of Object.entries(parsed)) {
    const dot = k.indexOf('.');
    const head = dot > 0 ? k.slice(0, dot) : '';
    if (head && (DIFFUSERS_COMPONENTS as readonly string[]).includes(head)) {
      let c = components.get(head);
      if (!c) components.set(head, (c = dict()));
      c[k.slice(dot + 1)] = v;
    } else {
      flat[k] = v;
    }
  }
  return { flat: Object.keys(flat).length > 0 ? flat : null, components };
}

/** The config that applies to a component: its own prefixed entries, else the flat ones. */
export function componentConfig(meta: AdapterMetadata, component: string): Record<string, unknown> | null {
  return meta.components.get(component) ?? meta.flat;
}

export async function describeDiffusers(input: DescribeInput, parse: FamilyParse, byName: Map<string, TensorMeta>): Promise<LayerPlan> {
  const paired = pairGroups(parse, byName);
  const warnings = [...parse.warnings];
  const meta = parseAdapterMetadata(input.metadata);
  const views = new Map<string, LoraConfigView | null>();
  const viewFor = (p: PairedGroup): LoraConfigView | null => {
    if (!meta) return null;
    const c = p.group.component;
    if (!views.has(c)) {
      const cfg = componentConfig(meta, c);
      views.set(c, cfg ? readLoraConfig(cfg, `${LORA_ADAPTER_METADATA_KEY}${c ? ` (${c})` : ''}`) : null);
    }
    return views.get(c) ?? null;
  };
  const layers: LayerSpec[] = [];
  const defaulted: string[] = [];
  let alphaAndMeta = false;
  for (const p of paired) {
    const view = viewFor(p);
    if (p.alpha) {
      if (view) alphaAndMeta = true;
      const { stored, effective } = await readAlpha(p, input.readScalar);
      layers.push(toLayerSpec(p, effective, effective / p.rank, stored));
    } else if (view) {
      const { alpha, scale } = scaleFromConfig(view, p, `${LORA_ADAPTER_METADATA_KEY}${p.group.component ? ` (${p.group.component})` : ''}`);
      layers.push(toLayerSpec(p, alpha, scale));
    } else {
      defaulted.push(p.group.name);
      layers.push(toLayerSpec(p, undefined, 1));
    }
  }
  if (alphaAndMeta) warnings.push(`both .alpha tensors and ${LORA_ADAPTER_METADATA_KEY} present: the .alpha tensors decide the scale`);
  if (meta && defaulted.length > 0) {
    warnings.push(`${defaulted.length} layers have no entry in ${LORA_ADAPTER_METADATA_KEY}: alpha = rank (scale 1), e.g. ${exampleList(defaulted)}`);
  }
  return { family: 'diffusers', layers: sortByName(layers), passthrough: [...parse.passthrough, ...parse.unrecognized], warnings, notes: parse.notes ?? [] };
}
