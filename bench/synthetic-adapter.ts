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

/**
 * A LLaMA-shaped PEFT adapter as issue #10 describes it: BF16, rank r, all seven linear modules of
 * every decoder block, A ~ N(0, 1/d_in), B ~ N(0, 0.003²) with column i scaled by 0.8^i.
 *   7b:  32 blocks, hidden 4096, k/v 4096, ffn 11008 (40 M parameters at r = 16)
 *   70b: 80 blocks, hidden 8192, k/v 1024, ffn 28672 (207 M parameters at r = 16)
 */
export interface LlamaShape {
  blocks: number;
  hidden: number;
  kv: number;
  ffn: number;
  rank: number;
  seed?: number;
}

export const LLAMA_7B: Omit<LlamaShape, 'rank'> = { blocks: 32, hidden: 4096, kv: 4096, ffn: 11008 };
export const LLAMA_70B: Omit<LlamaShape, 'rank'> = { blocks: 80, hidden: 8192, kv: 1024, ffn: 28672 };

/** Module name, group and (d_in, d_out) of each linear layer of a LLaMA decoder block. */
function llamaModules(s: LlamaShape): Array<[string, string, number, number]> {
  return [
    ['q_proj', 'self_attn', s.hidden, s.hidden], ['k_proj', 'self_attn', s.hidden, s.kv],
    ['v_proj', 'self_attn', s.hidden, s.kv], ['o_proj', 'self_attn', s.hidden, s.hidden],
    ['gate_proj', 'mlp', s.hidden, s.ffn], ['up_proj', 'mlp', s.hidden, s.ffn], ['down_proj', 'mlp', s.ffn, s.hidden],
  ];
}

/** Writes a LLaMA-shaped BF16 PEFT adapter (see LlamaShape) into `dir`; deterministic in `seed`. */
export async function writeLlamaAdapter(dir: string, s: LlamaShape): Promise<string> {
  const r = s.rank;
  const mods = llamaModules(s);
  await mkdir(dir, { recursive: true });
  const specs: TensorSpec[] = [];
  const dIn: number[] = [];
  for (let l = 0; l < s.blocks; l++) {
    for (const [m, group, din, dout] of mods) {
      const stem = `base_model.model.model.layers.${l}.${group}.${m}`;
      specs.push({ name: `${stem}.lora_A.weight`, dtype: 'BF16', shape: [r, din] });
      specs.push({ name: `${stem}.lora_B.weight`, dtype: 'BF16', shape: [dout, r] });
      dIn.push(din, din);
    }
  }
  const seed = s.seed ?? 1;
  const colScale = Float64Array.from({ length: r }, (_, i) => 0.003 * 0.8 ** i);
  await writeSafetensors(path.join(dir, 'adapter_model.safetensors'), specs, null, (spec, index) => {
    const rnd = gaussian(seed * 7919 + index);
    const out = new Float32Array(spec.shape[0] * spec.shape[1]);
    if (spec.name.endsWith('lora_A.weight')) {
      const sd = 1 / Math.sqrt(dIn[index]);
      for (let i = 0; i < out.length; i++) out[i] = rnd() * sd;
    } else {
      for (let i = 0; i < out.length; i++) out[i] = rnd() * colScale[i % r];
    }
    return out;
  }, { force: true });
  const config = {
    peft_type: 'LORA', task_type: 'CAUSAL_LM', base_model_name_or_path: 'synthetic-llama',
    r, lora_alpha: 2 * r, lora_dropout: 0, bias: 'none', target_modules: mods.map((m) => m[0]),
  };
  await writeFile(path.join(dir, 'adapter_config.json'), JSON.stringify(config, null, 2));
  return dir;
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

/** The attention layers of the SD-1.5 UNet (16 transformer blocks, self- and cross-attention) as [name, d_in, d_out]. */
export function sd15Layers(): Array<[string, number, number]> {
  const blocks: Array<[string, number]> = [];
  for (const [b, d] of [[0, 320], [1, 640], [2, 1280]] as const) for (const a of [0, 1]) blocks.push([`down_blocks.${b}.attentions.${a}`, d]);
  blocks.push(['mid_block.attentions.0', 1280]);
  for (const [b, d] of [[1, 1280], [2, 640], [3, 320]] as const) for (const a of [0, 1, 2]) blocks.push([`up_blocks.${b}.attentions.${a}`, d]);
  const out: Array<[string, number, number]> = [];
  for (const [stem, d] of blocks) {
    const t = `unet.${stem}.transformer_blocks.0`;
    for (const m of ['to_q', 'to_k', 'to_v', 'to_out.0']) out.push([`${t}.attn1.${m}`, d, d]);
    for (const m of ['to_q', 'to_k', 'to_v', 'to_out.0']) out.push([`${t}.attn2.${m}`, m === 'to_k' || m === 'to_v' ? 768 : d, d]);
  }
  return out;
}

export function tinyLayers(): Array<[string, number, number]> {
  return [0, 1].flatMap((i) => ['to_q', 'to_v'].map((m): [string, number, number] => [`unet.down_blocks.0.attentions.${i}.transformer_blocks.0.attn1.${m}`, 64, 64]));
}

/** One diffusers-style LoRA (`….lora.down.weight` / `….lora.up.weight`, F32, rank 4), values seeded by `seed`. */
export async function writeDiffusersAdapter(file: string, layers: Array<[string, number, number]>, seed: number): Promise<void> {
  const rank = 4;
  const specs: TensorSpec[] = layers.flatMap(([name, dIn, dOut]) => [
    { name: `${name}.lora.down.weight`, dtype: 'F32', shape: [rank, dIn] },
    { name: `${name}.lora.up.weight`, dtype: 'F32', shape: [dOut, rank] },
  ]);
  await writeSafetensors(file, specs, { format: 'pt' }, (spec, index) => {
    let s = (seed * 2654435761 + index * 40503) >>> 0;
    const u = (): number => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return (s + 0.5) / 2 ** 32; };
    const n = spec.shape[0] * spec.shape[1];
    const v = new Float32Array(n);
    const down = spec.name.endsWith('down.weight');
    for (let i = 0; i < n; i++) {
      const g = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
      // A decaying spectrum, as trained adapters have: row k of down (column k of up) scaled by 0.6^k.
      const k = down ? Math.floor(i / spec.shape[1]) : i % rank;
      v[i] = g * 0.6 ** k * (down ? 1 / Math.sqrt(spec.shape[1]) : 0.01);
    }
    return v;
  }, { force: true });
}
