/**
 * Sources as a fuzz target: generated adapters of the three families whose module names, configs and
 * metadata a hostile or careless writer could produce (names that are Object.prototype members,
 * non-ASCII, dots and dashes; r / lora_alpha / patterns of every JSON type; kohya alpha 0 or negative;
 * lora_adapter_metadata flat or per component), in F32, F16, BF16 or F64, with kohya's component
 * prefixes and diffusers' pipeline components, 3x3 convolutions, PEFT embeddings, DoRA magnitudes,
 * lora_B biases and modules_to_save, kohya network args and hashes, diffusers alphas, compressed through the public API at a random
 * setting and loaded back with every `to`. A case passes when each step either works or refuses with
 * a NolaError; anything else (a TypeError, an "internal:" error) is a failure. Each loaded LoRA is
 * also digested (tensor names, dtypes, SHA-256 of the bytes, metadata, config text) so a second
 * reader can be compared with nola on the same files (python/nola_reader, in source-fuzz.test.ts
 * and `npm run fuzz -- --target sources`).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { compress, load, NolaError, type CompressOptions, type Family } from '../../src/index.js';
import { encodeFloats, type EncodableDType } from '../../src/io/safetensors/dtypes.js';
import { writeSafetensors } from '../../src/io/safetensors/writer.js';
import type { Random } from '../io/fuzz-core.js';

const NAMES = ['q_proj', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'a.b', 'x-y', 'ü', '0', 'lora', 'lora_A', 'weight'];
const VALUES: unknown[] = [8, 4, 2, 1, 0, -1, 0.5, 16, 3, 1e308, '8', null, true, [], {}];
const SETTINGS: CompressOptions[] = [{}, { maxError: 0.3 }, { rank: 1 }, { ratio: 4 }];
export const TOS: readonly (Family | undefined)[] = [undefined, 'peft', 'kohya', 'diffusers'];

/** What a reader gives for one `to`: the LoRA's digest, or the refusal's message. */
export type LoadDigest =
  | { tensors: [string, string, string][]; metadata: Record<string, string> | null; config: string | null }
  | { error: string };

export interface SourceCase { family: Family; input: string; setting: CompressOptions }

/** Writes one generated adapter under `dir` (a PEFT folder, else one .safetensors file); null when its names collide. */
export async function makeSourceCase(rng: Random, dir: string): Promise<SourceCase | null> {
  const family = rng.pick(['peft', 'kohya', 'diffusers'] as const);
  const tensors: { name: string; dtype: EncodableDType; shape: number[]; data: Float32Array }[] = [];
  const modules: string[] = [];
  const ranks: number[] = [];
  const oneRank = rng.chance(0.6) ? rng.pick([1, 2, 4]) : 0; // most adapters use one rank for every module
  const dtype = rng.pick(['F32', 'F32', 'F16', 'BF16', 'F64'] as const);
  // Where the keys put the module: kohya's component prefixes, diffusers' pipeline components.
  const kohyaPrefix = rng.pick(['lora_unet_', 'lora_unet_', 'lora_te_', 'lora_te1_', 'lora_te2_', 'lora_transformer_']);
  const component = rng.pick(['unet', 'unet', 'text_encoder', 'text_encoder_2', 'transformer']);
  const values = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.u32() / 2 ** 32 - 0.5);
  for (let m = 1 + rng.int(3); m > 0; m--) {
    const mod = `${rng.pick(NAMES)}.${rng.pick(NAMES)}`;
    const r = oneRank || rng.pick([1, 2, 4]), dIn = rng.pick([8, 16]), dOut = rng.pick([8, 16]);
    // A 3x3 convolution now and then (down [r, in, 3, 3], up [out, r, 1, 1]), as kohya's LoCon writes it.
    const conv = family !== 'peft' && rng.chance(0.2);
    const [down, up] = family === 'peft' ? [`base_model.model.${mod}.lora_A.weight`, `base_model.model.${mod}.lora_B.weight`]
      : family === 'kohya' ? [`${kohyaPrefix}${mod.replace(/\./g, '_')}.lora_down.weight`, `${kohyaPrefix}${mod.replace(/\./g, '_')}.lora_up.weight`]
        : [`${component}.${mod}.lora.down.weight`, `${component}.${mod}.lora.up.weight`];
    modules.push(mod);
    ranks.push(r);
    const downShape = conv ? [r, dIn, 3, 3] : [r, dIn], upShape = conv ? [dOut, r, 1, 1] : [dOut, r];
    tensors.push({ name: down, dtype, shape: downShape, data: values(r * dIn * (conv ? 9 : 1)) }, { name: up, dtype, shape: upShape, data: values(dOut * r) });
    if (family === 'kohya' && rng.chance(0.7)) {
      tensors.push({ name: down.replace(/\.lora_down\.weight$/, '.alpha'), dtype: rng.pick(['F32', dtype]), shape: [], data: Float32Array.of(rng.pick([1, 2, 0, -1, 4])) });
    }
    // PEFT's verbatim extras: DoRA's magnitude vector, lora_bias's B bias.
    if (family === 'peft' && rng.chance(0.2)) tensors.push({ name: `base_model.model.${mod}.lora_magnitude_vector`, dtype, shape: [dOut], data: values(dOut) });
    if (family === 'peft' && rng.chance(0.1)) tensors.push({ name: `base_model.model.${mod}.lora_B.bias`, dtype, shape: [dOut], data: values(dOut) });
    // diffusers files that carry kohya-style alphas beside the factors.
    if (family === 'diffusers' && rng.chance(0.2)) tensors.push({ name: `${component}.${mod}.alpha`, dtype: 'F32', shape: [], data: Float32Array.of(rng.pick([1, 2, 4, 0])) });
  }
  // PEFT: an embedding LoRA (A [r, num_embeddings], B [dim, r]) now and then, and a modules_to_save copy.
  if (family === 'peft' && rng.chance(0.15)) {
    const r = oneRank || 2;
    modules.push('embed_tokens');
    ranks.push(r);
    tensors.push({ name: 'base_model.model.embed_tokens.lora_embedding_A', dtype, shape: [r, 24], data: values(r * 24) },
      { name: 'base_model.model.embed_tokens.lora_embedding_B', dtype, shape: [16, r], data: values(16 * r) });
  }
  const modulesToSave = family === 'peft' && rng.chance(0.15);
  if (modulesToSave) tensors.push({ name: 'base_model.model.classifier.modules_to_save.default.weight', dtype, shape: [2, 8], data: values(16) });
  if (new Set(tensors.map((t) => t.name)).size !== tensors.length) return null;
  const json = (x: unknown): unknown => JSON.parse(JSON.stringify(x)); // as a file gives it: "__proto__" an ordinary key
  // A valid value (the module's rank, a usable alpha) more often than not, so the success path is reached too.
  const rankValue = (i: number): unknown => (rng.chance(0.7) ? ranks[i] : rng.pick(VALUES));
  const alphaValue = (): unknown => (rng.chance(0.7) ? rng.pick([1, 4, 8, 16, 0.5]) : rng.pick(VALUES));
  const pattern = (value: (i: number) => unknown): unknown => {
    const i = rng.int(modules.length);
    return JSON.parse(`{${JSON.stringify(modules[i].split('.').pop())}: ${JSON.stringify(value(i))}}`);
  };
  let metadata: Record<string, string> | null = null;
  if (family === 'kohya' && rng.chance(0.6)) {
    metadata = JSON.parse(`{"ss_network_dim": ${JSON.stringify(String(rng.pick(VALUES)))}, "ss_network_alpha": ${JSON.stringify(String(rng.pick(VALUES)))}, ${JSON.stringify(rng.pick(NAMES))}: "x"}`) as Record<string, string>;
    // sd-scripts' network args (conv_dim / conv_alpha for LoCon) and hashes, which expand rewrites.
    if (rng.chance(0.4)) metadata.ss_network_args = rng.pick(['{"conv_dim": "4", "conv_alpha": "1"}', '{"conv_dim": 2}', '{}', 'not json', '{"algo": "locon"}']);
    if (rng.chance(0.3)) metadata.sshs_model_hash = '0'.repeat(64);
    if (rng.chance(0.3)) metadata.sshs_legacy_hash = 'e3b0c442';
  } else if (family === 'diffusers' && rng.chance(0.6)) {
    const cfg: string[] = [];
    for (let i = 0; i < 3; i++) {
      const key = rng.pick(['r', 'lora_alpha', 'rank_pattern', 'alpha_pattern', 'use_rslora', rng.pick(NAMES)]);
      const value = key === 'rank_pattern' && rng.chance(0.7) ? pattern(rankValue)
        : key === 'alpha_pattern' && rng.chance(0.7) ? pattern(alphaValue)
          : key === 'r' ? rankValue(0) : key === 'lora_alpha' ? alphaValue() : rng.pick(VALUES);
      cfg.push(`${JSON.stringify(rng.chance(0.5) ? `unet.${key}` : key)}: ${JSON.stringify(value)}`);
    }
    metadata = { lora_adapter_metadata: `{${cfg.join(', ')}}` };
  }
  const specs = tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape }));
  const produce = (_: unknown, i: number): Uint8Array => encodeFloats(tensors[i].data, tensors[i].dtype);
  const setting = rng.pick(SETTINGS);
  await mkdir(dir, { recursive: true });
  if (family !== 'peft') {
    const input = path.join(dir, 'in.safetensors');
    await writeSafetensors(input, specs, metadata, produce);
    return { family, input, setting };
  }
  const input = path.join(dir, 'adapter');
  await mkdir(input, { recursive: true });
  await writeSafetensors(path.join(input, 'adapter_model.safetensors'), specs, null, produce);
  const config: Record<string, unknown> = { peft_type: 'LORA', r: rankValue(0), lora_alpha: alphaValue(), target_modules: modules };
  if (rng.chance(0.6)) config.rank_pattern = pattern(rankValue);
  if (rng.chance(0.6)) config.alpha_pattern = pattern(alphaValue);
  if (rng.chance(0.3)) config.use_rslora = rng.pick([true, true, false, 'yes', 1]);
  if (modulesToSave) config.modules_to_save = ['classifier'];
  await writeFile(path.join(input, 'adapter_config.json'), JSON.stringify(json(config)));
  return { family, input, setting };
}

export interface SourceOutcome {
  /** 'refused' when compress refused the source (a NolaError); 'ok' when it wrote `nola`. */
  result: 'ok' | 'refused';
  /** The NOLA file compress wrote (result 'ok'). */
  nola?: string;
  /** Per `to` (String(to)): nola's load of that file. */
  loads?: Record<string, LoadDigest>;
}

/** Compresses the case to `nolaPath` and loads it with every `to`; throws only what is not a NolaError. */
export async function runSourceCase(c: SourceCase, nolaPath: string): Promise<SourceOutcome> {
  const tmp = `${nolaPath}.writing.nola`;
  try {
    await compress(c.input, { ...c.setting, output: tmp, force: true, threads: 1 });
  } catch (e) {
    if (e instanceof NolaError) return { result: 'refused' };
    throw e;
  }
  await rename(tmp, nolaPath);
  const loads: Record<string, LoadDigest> = {};
  for (const to of TOS) {
    try {
      const l = await load(nolaPath, { to, threads: 1 });
      loads[String(to)] = {
        tensors: l.tensors.map((t) => [t.name, t.dtype, createHash('sha256').update(t.bytes).digest('hex')]),
        metadata: l.metadata,
        config: l.config === null ? null : JSON.stringify(l.config, null, 2),
      };
    } catch (e) {
      if (!(e instanceof NolaError)) throw e;
      loads[String(to)] = { error: e.message };
    }
  }
  return { result: 'ok', nola: nolaPath, loads };
}

/** python/nola_reader's loads of `files` (run from `repo`), by one python3 run: per file, per String(to), the same shape as SourceOutcome.loads. */
export function pythonLoads(files: readonly string[], repo: string): Record<string, Record<string, LoadDigest>> {
  const r = spawnSync('python3', ['-c', PYTHON_DIGEST, ...files], {
    encoding: 'utf8', env: { ...process.env, PYTHONPATH: path.join(repo, 'python') }, maxBuffer: 1 << 28,
  });
  if (r.status !== 0) throw new Error(`python3 failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, Record<string, LoadDigest>>;
}

const PYTHON_DIGEST = `
import sys, json, hashlib
from nola_reader import load
out = {}
for path in sys.argv[1:]:
    d = {}
    for to in (None, 'peft', 'kohya', 'diffusers'):
        try:
            l = load(path, to=to)
            d['undefined' if to is None else to] = {
                'tensors': [[n, l.dtypes[n], hashlib.sha256(l.bytes(n)).hexdigest()] for n in l.tensors],
                'metadata': l.metadata, 'config': l.config_text}
        except Exception as e:
            d['undefined' if to is None else to] = {'error': type(e).__name__ + ': ' + str(e)}
    out[path] = d
print(json.dumps(out))
`;

/** Where nola's and the Python reader's digests of one file differ (empty when they agree); refusals agree when Python's message ends with nola's. */
export function digestDifferences(nolaLoads: Record<string, LoadDigest>, pyLoads: Record<string, LoadDigest>): string[] {
  const out: string[] = [];
  for (const to of TOS.map(String)) {
    const a = nolaLoads[to], b = pyLoads[to];
    const same = 'error' in a
      ? b !== undefined && 'error' in b && b.error.endsWith(a.error.replace(/^[^:]*: /, ''))
      : JSON.stringify(a) === JSON.stringify(b);
    if (!same) out.push(`to=${to}: nola ${JSON.stringify(a).slice(0, 300)} / python ${JSON.stringify(b).slice(0, 300)}`);
  }
  return out;
}
