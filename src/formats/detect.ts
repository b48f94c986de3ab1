/**
 * describeLora: from a file's tensor list (+ `__metadata__`, + a sibling adapter_config.json) to the
 * canonical LayerPlan. Order of work: refusals (names/shapes only), family detection or the `--format`
 * override, the family's key parse, pairing and shape checks, and only then the alpha reads. Every tensor
 * ends up in a layer or in passthrough; unrecognized ones are named in a warning.
 */
import { FormatError } from '../errors.js';
import type { Family, LayerPlan } from './layer.js';
import type { DescribeInput, FamilyParse, TensorMeta } from './common.js';
import { isPlainObject } from './common.js';
import {
  countDiffusersKeys, describeDiffusers, hasDiffusersComponent, LORA_ADAPTER_METADATA_KEY, parseDiffusersKeys,
} from './diffusers.js';
import { countKohyaKeys, describeKohya, parseKohyaKeys } from './kohya.js';
import { countPeftKeys, describePeft, isPeftStyleFactor, parsePeftKeys, PEFT_PREFIX } from './peft.js';
import { exampleList, refuseNoLayers, refuseUnsupported } from './refuse.js';

export type { DescribeInput } from './common.js';

export const FAMILIES: readonly Family[] = ['peft', 'kohya', 'diffusers'];

function looksLikePeftConfig(config: unknown): boolean {
  return isPlainObject(config) && (typeof config.peft_type === 'string' || 'lora_alpha' in config || 'r' in config);
}

/**
 * Picks the family from key names: the one that claims most factor keys. Keys with PEFT's `lora_A`
 * suffix but neither PEFT's `base_model.model.` prefix nor a diffusers component prefix go to diffusers
 * when the file has lora_adapter_metadata (diffusers' save_lora_adapter writes them unprefixed), else
 * to PEFT; an adapter_config.json beside the file makes PEFT win ties.
 */
export function detectFamily(tensors: readonly TensorMeta[], metadata: Record<string, string> | null, config: unknown | null): Family | null {
  const names = tensors.map((t) => t.name);
  const kohya = countKohyaKeys(names);
  const peftPrefixed = countPeftKeys(names);
  const diffusers = countDiffusersKeys(names);
  const unclaimed = names.filter((n) => isPeftStyleFactor(n) && !n.startsWith(PEFT_PREFIX) && !hasDiffusersComponent(n)).length;
  const hasAdapterMeta = metadata?.[LORA_ADAPTER_METADATA_KEY] !== undefined;
  const peftConfig = looksLikePeftConfig(config);
  let peft = peftPrefixed;
  let diff = diffusers;
  if (hasAdapterMeta && !peftConfig) diff += unclaimed;
  else peft += unclaimed;
  const scores: Array<[Family, number]> = [['kohya', kohya], ['peft', peft], ['diffusers', diff]];
  const best = Math.max(...scores.map(([, s]) => s));
  if (best === 0) return null;
  const winners = scores.filter(([, s]) => s === best).map(([f]) => f);
  if (winners.length > 1 && peftConfig && winners.includes('peft')) return 'peft';
  return winners[0];
}

function parseFor(family: Family, tensors: readonly TensorMeta[], config: unknown | null): FamilyParse {
  switch (family) {
    case 'kohya': return parseKohyaKeys(tensors);
    case 'peft': return parsePeftKeys(tensors, config);
    case 'diffusers': return parseDiffusersKeys(tensors);
  }
}

export async function describeLora(input: DescribeInput): Promise<LayerPlan> {
  const { tensors, metadata, config } = input;
  if (input.family !== undefined && !FAMILIES.includes(input.family)) {
    throw new FormatError(`unknown LoRA family '${String(input.family)}' (known: ${FAMILIES.join(', ')})`);
  }
  refuseUnsupported(tensors, metadata, config);

  const byName = new Map<string, TensorMeta>();
  for (const t of tensors) {
    if (byName.has(t.name)) throw new FormatError(`tensor '${t.name}' appears twice in the header`);
    byName.set(t.name, t);
  }

  const family = input.family ?? detectFamily(tensors, metadata, config);
  if (family === null) refuseNoLayers(tensors);
  const parse = parseFor(family, tensors, config);
  if (!parse.groups.some((g) => g.keyA !== undefined || g.keyB !== undefined)) {
    refuseNoLayers(tensors, input.family);
  }

  let plan: LayerPlan;
  switch (family) {
    case 'kohya': plan = await describeKohya(input, parse, byName); break;
    case 'peft': plan = await describePeft(input, parse, byName); break;
    case 'diffusers': plan = await describeDiffusers(input, parse, byName); break;
  }
  if (plan.layers.length === 0) refuseNoLayers(tensors, input.family);
  if (parse.unrecognized.length > 0) {
    plan.warnings.push(
      `${parse.unrecognized.length} tensors not recognized as ${family} LoRA factors, kept verbatim: ${exampleList(parse.unrecognized)}`);
  }
  assertAccounted(tensors, plan);
  return plan;
}

/** The "never silently drop a tensor" rule, checked rather than trusted. */
function assertAccounted(tensors: readonly TensorMeta[], plan: LayerPlan): void {
  const seen = new Set<string>(plan.passthrough);
  for (const l of plan.layers) {
    seen.add(l.keyA);
    seen.add(l.keyB);
    if (l.keyAlpha !== undefined) seen.add(l.keyAlpha);
  }
  const missing = tensors.filter((t) => !seen.has(t.name)).map((t) => t.name);
  if (missing.length > 0) throw new Error(`internal: tensors neither in a layer nor in passthrough: ${exampleList(missing)}`);
  const names = new Set<string>();
  for (const l of plan.layers) {
    if (names.has(l.name)) throw new FormatError(`two layers map to the same module '${l.name}'`);
    names.add(l.name);
  }
}
