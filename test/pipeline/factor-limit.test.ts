/**
 * Issue 5 item 6 and issue 14 on the LoRA side: a factor over the per-factor limit (2^24 values by default,
 * less where the working set of a fit would not fit in a quarter of memory; src/pipeline/limits.ts) is refused by compress and inspect before a byte of it is read,
 * with one IoError line naming the file and the layer. The file is real but sparse: a header claiming
 * an A factor of 1 x N F16 values with N just over the bound, and a data section of zeros that takes
 * no disk space (ftruncate).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, closeSync, ftruncateSync, readdirSync, writeSync } from 'node:fs';
import path from 'node:path';
import { IoError } from '../../src/errors.js';
import { resolveStrategy } from '../../src/cli/options.js';
import { compress } from '../../src/pipeline/compress.js';
import { inspect } from '../../src/pipeline/inspect.js';
import { maxFactorBytes } from '../../src/pipeline/limits.js';
import { buildFile, makeTempDir } from '../io/helpers.js';

let tmp: { dir: string; cleanup: () => void };
before(() => { tmp = makeTempDir('nola-limit-'); });
after(() => tmp.cleanup());

test('compress and inspect refuse a factor over the memory bound, naming the layer, before reading it', async () => {
  const n = Math.floor(maxFactorBytes() / 8) + 1; // 8 bytes per value as float64: one value over the bound
  const aBytes = 2 * n;
  const header = JSON.stringify({
    'base_model.model.huge.lora_A.weight': { dtype: 'F16', shape: [1, n], data_offsets: [0, aBytes] },
    'base_model.model.huge.lora_B.weight': { dtype: 'F16', shape: [4, 1], data_offsets: [aBytes, aBytes + 8] },
  });
  const file = path.join(tmp.dir, 'huge.safetensors');
  const head = buildFile(header);
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, head);
    ftruncateSync(fd, head.length + aBytes + 8);
  } finally {
    closeSync(fd);
  }
  const message = new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: layer "huge" factor A is 1 x ${n} values \\([\\d.]+ [GM]iB as float64\\), ` +
    `more than the limit of ${n - 1} values per factor \\([\\d.]+ [GM]iB; --max-factor-values raises it up to what this machine's memory allows\\)$`);
  const out = path.join(tmp.dir, 'huge.nola.safetensors');
  const started = Date.now();
  await assert.rejects(compress({ input: file, output: out, settings: { strategy: resolveStrategy({}), seed: 0, fit: {} } }),
    (e) => e instanceof IoError && message.test(e.message));
  await assert.rejects(inspect(file), (e) => e instanceof IoError && message.test(e.message));
  // Refused up front: reading (let alone converting) a factor this size would take far longer.
  assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
  assert.deepEqual(readdirSync(tmp.dir), ['huge.safetensors']);
});
