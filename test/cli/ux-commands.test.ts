/**
 * Issue 13 item 6 through the CLI: verify says "made from a different LoRA" in one line, prints the
 * errors it measured, and checks an expanded LoRA against its source; `nola compare A B` gives per-layer
 * errors (closed-form cases built here: B scaled by 1.1 → 0.1; dropping a singular value 4 of (3, 4) →
 * 4/5), equal to what compress measured on the expanded file; inspect sorts layers naturally and
 * names convolution kernels (out×in×3×3).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { EXIT } from '../../src/errors.js';
import { buildFile, f32Bytes, headerJson, type HeaderEntry } from '../io/helpers.js';
import { runNola } from './cli-helpers.js';
import { lines, makeWorkspace, type Workspace } from './ux-helpers.js';

let ws: Workspace;
let kohya = '';
before(async () => {
  ws = await makeWorkspace('nola-ux-commands-');
  kohya = path.join(ws.fixtures, 'kohya-sd15.safetensors');
});
after(() => ws.cleanup());

/** A kohya file from (name → [down values, down shape, up values, up shape]) in F32, alpha = rank (no alpha tensor). */
function writeKohya(file: string, layers: Record<string, [number[], number[], number[], number[]]>): void {
  const entries: Record<string, HeaderEntry> = {};
  const chunks: Uint8Array[] = [];
  let off = 0;
  for (const [stem, [down, downShape, up, upShape]] of Object.entries(layers)) {
    for (const [key, values, shape] of [[`${stem}.lora_down.weight`, down, downShape], [`${stem}.lora_up.weight`, up, upShape]] as const) {
      const bytes = f32Bytes([...values]);
      entries[key] = { dtype: 'F32', shape: [...shape], data_offsets: [off, off + bytes.length] };
      chunks.push(bytes);
      off += bytes.length;
    }
  }
  writeFileSync(file, buildFile(headerJson(entries), Buffer.concat(chunks)));
}

const CONV: [number[], number[], number[], number[]] = [Array.from({ length: 18 }, (_, i) => (i % 5) - 2), [1, 2, 3, 3], [1, -2, 3, 0.5], [4, 1, 1, 1]];
const A2 = [1, 0, 0, 0, 1, 0];

test('compare: closed-form errors per layer, in natural order, with different ranks; inspect names conv kernels', async () => {
  const a = path.join(ws.dir, 'a.safetensors'), b = path.join(ws.dir, 'b.safetensors');
  writeKohya(a, {
    lora_unet_blk_10_proj: [A2, [2, 3], [3, 0, 0, 4], [2, 2]],
    lora_unet_blk_2_proj: [A2, [2, 3], [1, 2, 3, 4], [2, 2]],
    lora_unet_conv_in: CONV,
  });
  writeKohya(b, {
    lora_unet_blk_10_proj: [[1, 0, 0], [1, 3], [3, 0], [2, 1]], // rank 1: drops the singular value 4 of (3, 4)
    lora_unet_blk_2_proj: [A2, [2, 3], [1.1, 2.2, 3.3, 4.4], [2, 2]], // ΔW_b = 1.1·ΔW_a
    lora_unet_conv_in: CONV,
  });
  const r = await runNola(['compare', a, b, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout) as { layers: Array<{ name: string; error: number; rankA: number; rankB: number }>; maxError: number };
  assert.deepEqual(res.layers.map((l) => l.name), ['lora_unet_blk_2_proj', 'lora_unet_blk_10_proj', 'lora_unet_conv_in']);
  const err = Object.fromEntries(res.layers.map((l) => [l.name, l.error]));
  assert.ok(Math.abs(err.lora_unet_blk_2_proj - 0.1) < 1e-6, String(err.lora_unet_blk_2_proj));
  assert.ok(Math.abs(err.lora_unet_blk_10_proj - 0.8) < 1e-6, String(err.lora_unet_blk_10_proj));
  assert.ok(err.lora_unet_conv_in < 1e-7);
  assert.deepEqual(res.layers.map((l) => [l.rankA, l.rankB]), [[2, 2], [2, 1], [1, 1]]);
  const text = await runNola(['compare', a, b]);
  assert.match(text.stdout, /0\.8000 \| 2×3 \| r2\/r1 {2}lora_unet_blk_10_proj/);
  const ins = await runNola(['inspect', a, '--layers']);
  assert.equal(ins.code, 0, ins.stderr);
  const order = ins.stdout.split('\n').filter((l) => /lora_unet_/.test(l)).map((l) => l.trim().split(/\s+/).pop());
  assert.deepEqual(order, ['lora_unet_blk_2_proj', 'lora_unet_blk_10_proj', 'lora_unet_conv_in']);
  assert.match(ins.stdout, /^ {4}4×2×3×3 r1 .* lora_unet_conv_in$/m);
  assert.match(ins.stdout, /^ {4}2×3 r2 .* lora_unet_blk_2_proj$/m);
});

test('verify: measured errors on success; one line for a different source; an expanded LoRA against its source', async () => {
  const nola = path.join(ws.dir, 'k.nola');
  const c = await runNola(['compress', kohya, '-o', nola, '--json']);
  assert.equal(c.code, 0, c.stderr);
  const report = JSON.parse(c.stdout) as { totals: { maxError: number }; layers: Array<{ name: string; deliveredError: number }> };
  const ok = await runNola(['verify', nola, kohya]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`measured errors: worst layer ${report.totals.maxError.toFixed(4)} `));
  assert.match(ok.stdout, /verify: ok/);

  const other = path.join(ws.fixtures, 'kohya-sdxl-bf16.safetensors');
  const bad = await runNola(['verify', nola, other]);
  assert.equal(bad.code, EXIT.numeric);
  assert.equal(lines(bad.stderr).length, 1, bad.stderr);
  assert.match(bad.stderr, /^nola: error: .*k\.nola was made from a different LoRA than .*kohya-sdxl-bf16\.safetensors/);
  assert.doesNotMatch(bad.stdout, /FAIL/);

  const expanded = path.join(ws.dir, 'k.expanded.safetensors');
  assert.equal((await runNola(['expand', nola])).code, 0);
  const ve = await runNola(['verify', expanded, kohya]);
  assert.equal(ve.code, 0, ve.stderr);
  assert.match(ve.stdout, /verify: ok \(every layer within 0\.1\)/);
  const tight = await runNola(['verify', expanded, kohya, '--max-error', '0.01']);
  assert.equal(tight.code, EXIT.numeric);
  assert.match(tight.stdout, /verify: FAILED \(6 layers above 0\.01\)/);

  // compare measures on the files what compress computed in memory for the expanded LoRA.
  const cmp = JSON.parse((await runNola(['compare', kohya, expanded, '--json'])).stdout) as { layers: Array<{ name: string; error: number }> };
  for (const l of report.layers) {
    const m = cmp.layers.find((x) => x.name === l.name)!;
    assert.ok(Math.abs(m.error - l.deliveredError) < 1e-4, `${l.name}: compare ${m.error}, compress ${l.deliveredError}`);
  }
});
