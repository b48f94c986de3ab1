/**
 * Issue #2 (fit) and #4 (a): with the paper's uniform basis, nola's fit (ALS from a balanced-SVD
 * start, then joint gradient refinement) must reach at least the error of a dense least-squares ALS
 * with the same bases. The reference is scripts/reference/nola_ref.py `als`: numpy, explicit design
 * matrices, np.linalg.lstsq, 5 rounds, bases regenerated from the seeds stored in the NOLA file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPO, runNola } from '../cli/cli-helpers.js';
import { generateFixtures } from '../../fixtures/generate.js';

const numpy = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

test('paper preset fit is at least as good as dense ALS with the same bases (numpy reference)', { timeout: 240_000 }, async (t) => {
  if (!numpy) return t.skip('python3 with numpy not found');
  const work = mkdtempSync(path.join(tmpdir(), 'nola-fitref-'));
  try {
    await generateFixtures(work);
    const source = path.join(work, 'tiny-peft', 'adapter_model.safetensors');
    const nolaFile = path.join(work, 'x.nola.safetensors');
    // 64 coefficients per factor of 4×64 = 256 entries: a real subspace (k < n), as in the paper.
    const r = await runNola(['compress', source, '-o', nolaFile, '--basis', 'uniform', '--coeffs', '64', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const ref = spawnSync('python3', [path.join(REPO, 'scripts/reference/nola_ref.py'), 'als', nolaFile, source, '5'], { encoding: 'utf8', maxBuffer: 1 << 24 });
    assert.equal(ref.status, 0, ref.stderr);
    const rows = JSON.parse(ref.stdout) as Array<{ name: string; als: number; nola: number }>;
    assert.equal(rows.length, 4);
    for (const row of rows) {
      assert.ok(row.als > 0.05 && row.als < 1, `${row.name}: the reference should leave a real error, got ${row.als}`);
      // Issue #4 (a) allows 0.01; nola is expected to match or beat the reference outright.
      assert.ok(row.nola <= row.als + 1e-3, `${row.name}: nola ${row.nola} vs dense ALS ${row.als}`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
