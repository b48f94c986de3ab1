/**
 * Locating and opening a LoRA: a .safetensors path or a folder holding one, plus a sibling
 * adapter_config.json. Returns the open reader and the canonical layer plan.
 */
import { stat, readdir } from 'node:fs/promises';
import { readRegularText } from '../io/read-text.js';
import { assertJsonDepth } from '../io/json-depth.js';
import { MAX_CONFIG_BYTES } from './limits.js';
import path from 'node:path';
import { openSafetensors, type SafetensorsFile } from '../io/safetensors/index.js';
import { describeLora } from '../formats/index.js';
import type { Family, LayerPlan, LayerSpec } from '../formats/layer.js';
import { FormatError, IoError, NolaError, NumericError } from '../errors.js';
import { mat, type Mat } from '../core/matrix.js';
import { NOLA_METADATA_KEY } from '../core/constants.js';
import { assertFactorFits } from './limits.js';

const PREFERRED_NAMES = ['adapter_model.safetensors', 'pytorch_lora_weights.safetensors'];

export async function resolveLoraPath(input: string): Promise<string> {
  const st = await stat(input).catch((e: NodeJS.ErrnoException) => {
    throw new IoError(`${input}: ${e.code === 'ENOENT' ? 'no such file or folder' : e.message}`);
  });
  if (!st.isDirectory()) return input;
  const entries = await readdir(input);
  for (const name of PREFERRED_NAMES) if (entries.includes(name)) return path.join(input, name);
  const candidates = entries.filter((e) => e.endsWith('.safetensors') && !e.endsWith('.nola.safetensors'));
  if (candidates.length === 1) return path.join(input, candidates[0]);
  if (entries.some((e) => e.endsWith('.bin'))) {
    throw new FormatError(`${input}: holds a PyTorch .bin checkpoint but no .safetensors file; convert it first (safetensors.torch.save_file)`);
  }
  throw new FormatError(
    candidates.length === 0
      ? `${input}: no .safetensors file in this folder`
      : `${input}: several .safetensors files (${candidates.slice(0, 3).join(', ')}); name one`,
  );
}

/** adapter_config.json beside the file, parsed, or null when there is none. */
export async function readSiblingConfig(file: string): Promise<unknown> {
  const configPath = path.join(path.dirname(file), 'adapter_config.json');
  const text = await readRegularText(configPath, MAX_CONFIG_BYTES);
  if (text === null) return null;
  assertJsonDepth(text, configPath);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FormatError(`${configPath}: invalid JSON (${(e as Error).message})`);
  }
}

export interface OpenLora {
  file: string;
  reader: SafetensorsFile;
  config: unknown;
  plan: LayerPlan;
}

export async function openLora(input: string, family?: Family): Promise<OpenLora> {
  const file = await resolveLoraPath(input);
  const reader = await openSafetensors(file);
  try {
    if (reader.metadata !== null && Object.prototype.hasOwnProperty.call(reader.metadata, NOLA_METADATA_KEY)) {
      throw new FormatError(`${file}: this is a NOLA file (already compressed); 'nola expand' turns it back into a LoRA`);
    }
    const config = await readSiblingConfig(file);
    const readScalar = async (name: string): Promise<number> => {
      const v = await reader.readFloat64(name);
      if (v.length !== 1) throw new FormatError(`${file}: "${name}" should hold one number, has ${v.length}`);
      return v[0];
    };
    const plan = await describeLora({ tensors: [...reader.tensors], metadata: reader.metadata, config, readScalar, family })
      .catch((e: unknown) => {
        // The format modules judge tensor names, not files: say which file they were looking at.
        if (e instanceof NolaError && !e.message.startsWith(`${file}: `)) e.message = `${file}: ${e.message}`;
        throw e;
      });
    return { file, reader, config, plan };
  } catch (e) {
    await reader.close();
    throw e;
  }
}

/** Read a layer's factors as A0 (rank×d_in) and B0 (d_out×rank), refusing NaN/Inf. */
export async function readFactors(lora: OpenLora, spec: LayerSpec): Promise<{ a0: Mat; b0: Mat }> {
  assertFactorFits(lora.file, spec.name, 'A', spec.rank, spec.dIn);
  assertFactorFits(lora.file, spec.name, 'B', spec.dOut, spec.rank);
  const a = await lora.reader.readFloat64(spec.keyA);
  const b = await lora.reader.readFloat64(spec.keyB);
  for (const [key, data] of [[spec.keyA, a], [spec.keyB, b]] as const) {
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) {
        throw new NumericError(`${lora.file}: "${key}" holds ${Number.isNaN(data[i]) ? 'NaN' : 'Inf'} at index ${i}; a LoRA factor must be finite (the file is broken: retrain or re-export it)`);
      }
    }
  }
  return { a0: mat(spec.rank, spec.dIn, a), b0: mat(spec.dOut, spec.rank, b) };
}
