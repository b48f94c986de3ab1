/**
 * Synthetic LLaMA-like PEFT adapters for benchmarks and tests: modules (q,k,v,o by default) of
 * `layers` decoder blocks at width d and rank r, written with the project's own safetensors
 * writer. A ~ N(0, 1/d) like a trained down-projection; B has decaying column scales so the
 * update has a spread spectrum, as trained adapters do. Deterministic in `seed`.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { writeSafetensors } from '../src/io/index.js';
import type { TensorSpec } from '../src/io/safetensors/types.js';

export interface SyntheticAdapter {
  layers: number;
  d: number;
  rank: number;
  modules?: string[];
  seed?: number;
}

function gaussian(seed: number): () => number {
  let s = seed >>> 0;
  const u = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 2 ** 32;
  };
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

/** Writes adapter_model.safetensors and adapter_config.json into `dir`; returns the folder. */
export async function writeSyntheticAdapter(dir: string, a: SyntheticAdapter): Promise<string> {
  const modules = a.modules ?? ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
  const { d, rank: r } = a;
  await mkdir(dir, { recursive: true });
  const specs: TensorSpec[] = [];
  for (let l = 0; l < a.layers; l++) {
    for (const m of modules) {
      const stem = `base_model.model.model.layers.${l}.self_attn.${m}`;
      specs.push({ name: `${stem}.lora_A.weight`, dtype: 'F32', shape: [r, d] });
      specs.push({ name: `${stem}.lora_B.weight`, dtype: 'F32', shape: [d, r] });
    }
  }
  const seed = a.seed ?? 1;
  await writeSafetensors(path.join(dir, 'adapter_model.safetensors'), specs, null, (spec, index) => {
    const rnd = gaussian(seed * 7919 + index);
    const out = new Float32Array(spec.shape[0] * spec.shape[1]);
    if (spec.name.endsWith('lora_A.weight')) {
      const sd = 1 / Math.sqrt(d);
      for (let i = 0; i < out.length; i++) out[i] = rnd() * sd;
    } else {
      for (let i = 0; i < out.length; i++) out[i] = rnd() * 0.01 * 0.8 ** (i % r);
    }
    return out;
  }, { force: true });
  const config = {
    peft_type: 'LORA', task_type: 'CAUSAL_LM', base_model_name_or_path: 'synthetic-llama',
    r, lora_alpha: 2 * r, lora_dropout: 0, bias: 'none', target_modules: modules,
  };
  await writeFile(path.join(dir, 'adapter_config.json'), JSON.stringify(config, null, 2));
  return dir;
}
