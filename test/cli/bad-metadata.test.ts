/**
 * A diffusers LoRA whose lora_adapter_metadata is broken (not JSON, a rank that is not a number, an
 * alpha that overflows to -Infinity) is refused the same way by every command that reads LoRA files:
 * compress, inspect, and compress over a library (its record carries the same reason and class).
 * One `nola: error:` line naming the file and the field, exit 3 (format), nothing written. The
 * messages are written here from the metadata each file carries, not read back from nola.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeSafetensors } from '../../src/io/safetensors/writer.js';
import { EXIT } from '../../src/errors.js';
import { assertCleanRefusal, runNola } from './cli-helpers.js';

const dir = mkdtempSync(path.join(tmpdir(), 'nola-bad-metadata-'));
const stem = 'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q';
const CASES: Array<{ name: string; metadata: string; reason: string }> = [
  { name: 'not-json', metadata: '{not json', reason: '__metadata__.lora_adapter_metadata is not valid JSON' },
  { name: 'rank-a-word', metadata: JSON.stringify({ 'unet.r': 'eight', 'unet.lora_alpha': 4 }), reason: 'lora_adapter_metadata (unet): r must be a number, found "eight"' },
  // JSON.parse reads -1e400 as -Infinity, which JSON.stringify would show as null.
  { name: 'alpha-overflows', metadata: '{"unet.r": 4, "unet.lora_alpha": -1e400}', reason: 'lora_adapter_metadata (unet): lora_alpha must be a number, found -Infinity (not a finite number)' },
];

before(async () => {
  mkdirSync(path.join(dir, 'lib'));
  for (const c of CASES) {
    await writeSafetensors(path.join(dir, 'lib', `${c.name}.safetensors`), [
      { name: `${stem}.lora.down.weight`, dtype: 'F32', shape: [4, 64] },
      { name: `${stem}.lora.up.weight`, dtype: 'F32', shape: [64, 4] },
    ], { lora_adapter_metadata: c.metadata }, (s) => Float64Array.from({ length: s.shape[0] * s.shape[1] }, (_, i) => Math.sin(i + 1) / 100));
  }
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('broken lora_adapter_metadata: compress, inspect and a library run refuse it alike, exit 3, nothing written', async () => {
  for (const c of CASES) {
    const file = path.join(dir, 'lib', `${c.name}.safetensors`);
    const out = path.join(dir, `${c.name}.nola`);
    for (const args of [['compress', file, '-o', out], ['inspect', file]]) {
      const r = await runNola(args);
      assert.deepEqual(assertCleanRefusal(r, EXIT.format, file), []);
      assert.ok(r.stderr.includes(`${file}: ${c.reason}`), `nola ${args[0]}: ${r.stderr}`);
    }
  }
  const summary = path.join(dir, 'summary.jsonl');
  const run = await runNola(['compress', path.join(dir, 'lib'), '--out-dir', path.join(dir, 'out'), '--summary', summary, '-q']);
  assert.equal(run.code, EXIT.partial, run.stderr);
  const records = readFileSync(summary, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { input: string; status: string; reason: string; exit_code: number });
  assert.equal(records.length, CASES.length);
  for (const c of CASES) {
    const rec = records.find((x) => x.input.endsWith(`${c.name}.safetensors`));
    assert.equal(rec?.status, 'failed');
    assert.equal(rec?.exit_code, EXIT.format);
    assert.ok(rec?.reason.startsWith(c.reason), `${c.name}: ${rec?.reason}`);
  }
  assert.deepEqual(readdirSync(dir).sort(), ['lib', 'summary.jsonl'], 'no output and no output folder');
});
