/** LoRA file families (PEFT, kohya, diffusers) <-> the canonical layer description; detection; refusals; expand plans. */
export type { Family, LayerKind, LayerPlan, LayerSpec } from './layer.js';
export type { DescribeInput, FactorGroup, FamilyParse, TensorMeta } from './common.js';
export { describeLora, detectFamily, FAMILIES } from './detect.js';
export { checkPair, exampleList, refuseNoLayers, refuseUnsupported } from './refuse.js';
export { KOHYA_PREFIXES } from './kohya.js';
export { PEFT_PREFIX } from './peft.js';
export { DIFFUSERS_COMPONENTS, LORA_ADAPTER_METADATA_KEY, parseAdapterMetadata } from './diffusers.js';
export type {
  ConfigLayer, KohyaHashPlan, OutputLayer, OutputPlan, OutputSource, OutputTensor, PlanOutputArgs, TensorLike,
} from './expand-plan.js';
export {
  adjustLoraConfig, kohyaHashFinalizer, LEGACY_HASH_OF_SMALL_FILE, moduleOf, planOutput, pythonFloatString, representable, scalarBytes,
} from './expand-plan.js';
