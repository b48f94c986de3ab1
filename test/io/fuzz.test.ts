import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { formatSummary, makeCase, runFuzz } from './fuzz-core.js';
import { makeTempDir } from './helpers.js';
import { makeSafetensorsCheck, safetensorsSeeds } from './safetensors-fuzz-target.js';

let tmp: { dir: string; cleanup: () => void };
before(() => { tmp = makeTempDir('nola-fuzz-'); });
after(() => tmp.cleanup());

test('every seed file is valid and reads consistently', async () => {
  const check = makeSafetensorsCheck(path.join(tmp.dir, 'seed.safetensors'));
  for (const s of safetensorsSeeds()) assert.equal(await check(s), 'ok');
});

test('cases are deterministic in (seed, case index)', () => {
  const seeds = safetensorsSeeds();
  for (const i of [0, 17, 999]) {
    assert.deepEqual(makeCase(seeds, 7, i), makeCase(seeds, 7, i));
  }
  assert.notDeepEqual(makeCase(seeds, 7, 1).bytes, makeCase(seeds, 8, 1).bytes);
});

test('the check itself catches a reader that misbehaves (so a clean run means something)', async () => {
  // A check that throws a TypeError for one case must be reported as a failure with its case index.
  const seeds = safetensorsSeeds();
  const s = await runFuzz({ seeds, cases: 5, seed: 1, check: async () => { throw new TypeError('x is undefined'); } });
  assert.equal(s.failures.length, 5);
  assert.match(s.failures[0].error, /^TypeError: x is undefined/);
  const hang = await runFuzz({ seeds, cases: 1, seed: 1, timeoutMs: 20, check: () => new Promise(() => {}) });
  assert.match(hang.failures[0].error, /hang/);
});

test('an unhandled rejection during a case is reported as that case failing', async () => {
  // node:test fails any test that leaves an unhandled rejection, so this runs in a child process.
  const core = new URL('./fuzz-core.js', import.meta.url).href;
  const child = `
    const { runFuzz } = await import(${JSON.stringify(core)});
    const s = await runFuzz({ seeds: [new Uint8Array(8)], cases: 2, seed: 1,
      check: async () => { void Promise.reject(new RangeError('late')); return 'ok'; } });
    process.stdout.write(JSON.stringify(s.failures.map((f) => [f.caseIndex, f.error])));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', child], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [[0, 'unhandled rejection: RangeError: late'], [1, 'unhandled rejection: RangeError: late']]);
});

test('2000 mutated files: each opens and reads consistently or fails with a one-line FormatError', { timeout: 60_000 }, async () => {
  const seeds = safetensorsSeeds();
  const summary = await runFuzz({ seeds, cases: 2000, seed: 20240601, check: makeSafetensorsCheck(path.join(tmp.dir, 'case.safetensors')) });
  const detail = summary.failures.map((f) => `case ${f.caseIndex} [${f.mutations.join(',')}]: ${f.error}`).join('\n');
  assert.equal(summary.failures.length, 0, `${formatSummary('safetensors-reader', 20240601, summary)}\n${detail}`);
  // Both outcomes must actually occur, or the mutations are too timid / too destructive to test anything.
  assert.ok(summary.ok > 100 && summary.cleanErrors > 500, formatSummary('safetensors-reader', 20240601, summary));
});
