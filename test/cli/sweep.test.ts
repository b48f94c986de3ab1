/** compress --sweep: the trade-off table and picture, measured on a generated fixture. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runNola } from './cli-helpers.js';
import { generateFixtures } from '../../fixtures/generate.js';

test('--sweep: bounds hold, sizes grow as bounds tighten, nothing but the SVG is written', { timeout: 120_000 }, async () => {
  const work = mkdtempSync(path.join(tmpdir(), 'nola-sweep-'));
  try {
    await generateFixtures(work);
    const svg = path.join(work, 'out', 'sweep.svg');
    const before = readdirSync(path.join(work, 'tiny-peft')).sort();
    const r = await runNola(['compress', path.join(work, 'tiny-peft'), '--sweep', '--json', '--svg', svg]);
    assert.equal(r.code, 7, 'the SVG folder does not exist: an I/O error (exit 7) before any work');
    const ok = await runNola(['compress', path.join(work, 'tiny-peft'), '--sweep', '--json', '--svg', path.join(work, 'sweep.svg')]);
    assert.equal(ok.code, 0, ok.stderr);
    const result = JSON.parse(ok.stdout) as { points: Array<{ setting: string; method: string; target: string; bytes: number; maxError: number; energyWeightedError: number }> };
    const bounded = result.points.filter((p) => p.method === 'nola' && p.target === 'max-error');
    assert.ok(bounded.length >= 5);
    for (const p of bounded) assert.ok(p.maxError <= Number(p.setting.split(' ')[1]) + 1e-12, `${p.setting}: worst ${p.maxError}`);
    const sorted = [...bounded].sort((a, b) => Number(a.setting.split(' ')[1]) - Number(b.setting.split(' ')[1]));
    for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i].bytes <= sorted[i - 1].bytes, 'a looser bound never costs more bytes');
    assert.ok(result.points.some((p) => p.method === 'paper'), 'the paper preset point is included by default');
    const picture = readFileSync(path.join(work, 'sweep.svg'), 'utf8');
    assert.match(picture, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.equal((picture.match(/<circle /g) ?? []).length, result.points.length);
    assert.deepEqual(readdirSync(path.join(work, 'tiny-peft')).sort(), before, 'no NOLA file written');
    assert.ok(!existsSync(path.join(work, 'tiny-peft', 'adapter_model.nola.safetensors')));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
