/**
 * The canonical layer description every LoRA family maps onto. The fitter and the
 * container only ever see this; format files (peft, kohya, diffusers) translate keys.
 *
 * Convention: the update is  ΔW = scale · B · A  with
 *   A: rank × dIn   (tensor keyA, shape shapeA; rank is axis 0, trailing axes flattened row-major)
 *   B: dOut × rank  (tensor keyB, shape shapeB; rank is axis 1, trailing axes are size 1 for convs)
 * Embedding LoRA (PEFT lora_embedding_A [r, num_embeddings], lora_embedding_B [dim, r]) fits the same form:
 * the product B·A is the transposed embedding update, and the fit does not care.
 */
import type { DType } from '../io/safetensors/dtypes.js';

export type Family = 'peft' | 'kohya' | 'diffusers';
export type LayerKind = 'linear' | 'conv' | 'embedding';

export interface LayerSpec {
  /** Module path, unique within a file, used for display and for seed derivation. */
  name: string;
  kind: LayerKind;
  keyA: string;
  keyB: string;
  /** kohya-style 0-d alpha tensor, when the file has one. */
  keyAlpha?: string;
  dtypeA: DType;
  dtypeB: DType;
  dtypeAlpha?: DType;
  shapeA: number[];
  shapeB: number[];
  rank: number;
  dIn: number;
  dOut: number;
  /** alpha as read from the file/config (undefined: the family's default). */
  alpha?: number;
  /** Effective scale s0 of the source update. */
  scale: number;
  /**
   * The alpha tensor's value exactly as stored, when there is one (kohya stores 0 to mean "alpha = rank";
   * `alpha` above holds the effective value). Lets an expand with the rank kept write the same number back.
   */
  alphaStored?: number;
  /** Diffusers pipeline component the keys name (unet, text_encoder, transformer...), when they name one. */
  component?: string;
  /**
   * Module path inside its model, as PEFT matches rank_pattern/alpha_pattern keys against it
   * (PEFT: without `base_model.model.`; diffusers: without the component prefix; kohya: the key stem).
   */
  modulePath?: string;
}

/** What a format adapter finds in a file. */
export interface LayerPlan {
  family: Family;
  layers: LayerSpec[];
  /** Tensors that are not LoRA factors (modules_to_save, DoRA magnitudes, biases, unknown extras): carried verbatim. */
  passthrough: string[];
  /** Human-readable notes for the report (DoRA present, unknown tensors kept...). */
  warnings: string[];
  /** Harmless facts worth an info line (kohya ss_* metadata kept), not warnings. */
  notes?: string[];
}
