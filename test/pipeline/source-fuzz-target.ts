/**
 * Sources as a fuzz target: generated adapters of the three families whose module names, configs and
 * metadata a hostile or careless writer could produce (names that are Object.prototype members,
 * non-ASCII, dots and dashes; r / lora_alpha / patterns of every JSON type; kohya alpha 0 or negative;
 * lora_adapter_metadata flat or per component), compressed through the public API at a random
 * setting and loaded back with every `to`. A case passes when each step either works or refuses with
 * a NolaError; anything else (a TypeError, an "internal:" error) is a failure. Each loaded LoRA is
 * also digested (tensor names, dtypes, SHA-256 of the bytes, metadata, config text) so a second
 * reader can be compared with nola on the same files (python/nola_reader, in source-fuzz.test.ts
 * and `npm run fuzz -- --target sources`).
 */
import { createHash } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { compress, load, NolaError, type CompressOptions, type Family } from '../../src/index.js';
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
  const tensors: { name: string; shape: number[]; data: Float32Array }[] = [];
  const modules: string[] = [];
  for (let m = 1 + rng.int(3); m > 0; m--) {
    const mod = `${rng.pick(NAMES)}.${rng.pick(NAMES)}`;
    modules.push(mod);
    const r = rng.pick([1, 2, 4]), dIn = rng.pick([8, 16]), dOut = rng.pick([8, 16]);
    const values = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.u32() / 2 ** 32 - 0.5);
    const [down, up] = family === 'peft' ? [`base_model.model.${mod}.lora_A.weight`, `base_model.model.${mod}.lora_B.weight`]
      : family === 'kohya' ? [`lora_unet_${mod.replace(/\./g, '_')}.lora_down.weight`, `lora_unet_${mod.replace(/\./g, '_')}.lora_up.weight`]
        : [`unet.${mod}.lora.down.weight`, `unet.${mod}.lora.up.weight`];
    tensors.push({ name: down, shape: [r, dIn], data: values(r * dIn) }, { name: up, shape: [dOut, r], data: values(dOut * r) });
    if (family === 'kohya' && rng.chance(0.7)) {
      tensors.push({ name: down.replace(/\.lora_down\.weight$/, '.alpha'), shape: [], data: Float32Array.of(rng.pick([1, 2, 0, -1, 4])) });
    }
  }
  if (new Set(tensors.map((t) => t.name)).size !== tensors.length) return null;
  const json = (x: unknown): unknown => JSON.parse(JSON.stringify(x)); // as a file gives it: "__proto__" an ordinary key
  const pattern = (): unknown => JSON.parse(`{${JSON.stringify(rng.pick(modules).split('.').pop())}: ${JSON.stringify(rng.pick(VALUES))}}`);
  let metadata: Record<string, string> | null = null;
  if (family === 'kohya' && rng.chance(0.6)) {
    metadata = JSON.parse(`{"ss_network_dim": ${JSON.stringify(String(rng.pick(VALUES)))}, "ss_network_alpha": ${JSON.stringify(String(rng.pick(VALUES)))}, ${JSON.stringify(rng.pick(NAMES))}: "x"}`) as Record<string, string>;
  } else if (family === 'diffusers' && rng.chance(0.6)) {
    const cfg: string[] = [];
    for (let i = 0; i < 3; i++) {
      const key = rng.pick(['r', 'lora_alpha', 'rank_pattern', 'alpha_pattern', 'use_rslora', rng.pick(NAMES)]);
      const value = key.endsWith('_pattern') && rng.chance(0.7) ? pattern() : rng.pick(VALUES);
      cfg.push(`${JSON.stringify(rng.chance(0.5) ? `unet.${key}` : key)}: ${JSON.stringify(value)}`);
    }
    metadata = { lora_adapter_metadata: `{${cfg.join(', ')}}` };
  }
  const specs = tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: t.shape }));
  const produce = (_: unknown, i: number): Float32Array => tensors[i].data;
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
  const config: Record<string, unknown> = { peft_type: 'LORA', r: rng.pick(VALUES), lora_alpha: rng.pick(VALUES), target_modules: modules };
  if (rng.chance(0.6)) config.rank_pattern = pattern();
  if (rng.chance(0.6)) config.alpha_pattern = pattern();
  if (rng.chance(0.3)) config.use_rslora = rng.pick([true, false, 'yes', 1]);
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

/** python/nola_reader's digests of the same files, in the same shape (String(to) keys), by one python3 run. */
export const PYTHON_DIGEST = `
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
