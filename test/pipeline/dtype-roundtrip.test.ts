/**
 * Issue 14 item 3: what compress writes, nola reads. For every factor dtype compress accepts (F64, F32,
 * F16, BF16) a PEFT LoRA goes through compress, inspect, verify (against the source) and expand, and the
 * expanded file has the source's dtypes and shapes. Factors at the edge of F16's range (±65504) are either
 * refused by compress (exit 5, nothing written) or expand cleanly: never a file that expand then refuses.
 * The inputs are written here byte by byte (nola-file.ts `frame`), not by nola's writer.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { NolaError, EXIT } from '../../src/errors.js';
import { resolveStrategy } from '../../src/cli/options.js';
import { compress } from '../../src/pipeline/compress.js';
import { expand } from '../../src/pipeline/expand.js';
import { inspect } from '../../src/pipeline/inspect.js';
import { verify } from '../../src/pipeline/verify.js';
import { openSafetensors } from '../../src/io/safetensors/index.js';
import { encodeFloats, type EncodableDType } from '../../src/io/safetensors/dtypes.js';
import { makeTempDir } from '../io/helpers.js';
import { frame } from './nola-file.js';

let tmp: { dir: string; cleanup: () => void };
before(() => { tmp = makeTempDir('nola-dtype-'); });
after(() => tmp.cleanup());

const R = 4, D = 48;
/** A PEFT adapter folder with two layers of rank R in `dtype`; values from a fixed LCG, times `gain`. */
function writeLora(dir: string, dtype: EncodableDType, gain = 1, fill?: number): string {
  mkdirSync(dir, { recursive: true });
  let s = 12345;
  const rnd = (): number => { s = (Math.imul(1664525, s) + 1013904223) >>> 0; return s / 2 ** 32 - 0.5; };
  const tensors = [];
  for (const m of ['q', 'v']) {
    for (const [f, shape] of [['A', [R, D]], ['B', [D, R]]] as const) {
      const vals = new Float64Array(shape[0] * shape[1]).map(() => (fill ?? rnd()) * gain * (fill !== undefined && rnd() < 0 ? -1 : 1));
      tensors.push({ name: `base_model.model.layer.${m}.lora_${f}.weight`, dtype, shape: [...shape], data: encodeFloats(vals, dtype) });
    }
  }
  writeFileSync(path.join(dir, 'adapter_model.safetensors'), frame({ metadata: { format: 'pt' }, tensors }));
  writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: R, lora_alpha: 8 }));
  return path.join(dir, 'adapter_model.safetensors');
}

const settings = { strategy: resolveStrategy({}), seed: 0, fit: { refineIters: 3, alsRounds: 2 } };

for (const dtype of ['F64', 'F32', 'F16', 'BF16'] as const) {
  test(`round trip of ${dtype} factors: compress, inspect, verify, expand keep the dtype`, async () => {
    const dir = path.join(tmp.dir, dtype);
    const lora = writeLora(path.join(dir, 'src'), dtype);
    const nola = path.join(dir, 'x.nola.safetensors');
    await compress({ input: lora, output: nola, settings });
    assert.equal((await inspect(nola)).kind, 'nola');
    const v = await verify(nola, lora, 1e-3);
    assert.ok(v.ok && v.coefficients === 'match' && v.checksum === 'match', JSON.stringify(v));
    const out = await expand({ input: nola, output: path.join(dir, 'out') + '/' });
    const r = await openSafetensors(out.output);
    try {
      assert.deepEqual(r.tensors.map((t) => [t.name, t.dtype, t.shape]).sort(), [
        ['base_model.model.layer.q.lora_A.weight', dtype, [R, D]], ['base_model.model.layer.q.lora_B.weight', dtype, [D, R]],
        ['base_model.model.layer.v.lora_A.weight', dtype, [R, D]], ['base_model.model.layer.v.lora_B.weight', dtype, [D, R]],
      ]);
    } finally {
      await r.close();
    }
  });
}

// Regression: the closed-form rice search once probed σ/Δ ≈ 3e10 here and allocated 2.6e11 cells (RangeError, exit 1).
test('F16 factors at ±65504: compress refuses them (exit 5, nothing written) or its file expands', async () => {
  const dir = path.join(tmp.dir, 'edge');
  const lora = writeLora(path.join(dir, 'src'), 'F16', 1, 65504);
  const nola = path.join(dir, 'x.nola.safetensors');
  let refused: NolaError | null = null;
  try {
    await compress({ input: lora, output: nola, settings });
  } catch (e) {
    if (!(e instanceof NolaError)) throw e;
    refused = e;
  }
  if (refused !== null) {
    assert.equal(refused.exitCode, EXIT.numeric, refused.message);
    assert.match(refused.message, /synthesizes to values \(max \|x\| = .*\) that F16 cannot hold/);
    assert.deepEqual(readdirSync(dir), ['src']);
  } else {
    const out = await expand({ input: nola, output: path.join(dir, 'out') + '/' });
    assert.equal(out.layers, 2);
  }
});
