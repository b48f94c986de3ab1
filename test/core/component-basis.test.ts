/**
 * The orthogonal-components basis (docs/FORMAT.md "Component basis"): orthonormal (Gram = I, the
 * defining property), component i lands in A's row i and B's column i only, and its values agree
 * with the independent numpy reader (scripts/reference/nola_ref.py, numpy FFT DCT) where python3
 * with numpy is present.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { createComponentBasis } from '../../src/core/component-basis.js';
import { createBasis } from '../../src/core/compress-layer.js';
import { REPO } from '../cli/cli-helpers.js';

test('component basis: orthonormal for both layouts', () => {
  for (const layout of ['rows', 'cols'] as const) {
    const b = createComponentBasis(123, 3, 7, layout);
    const cols: Float64Array[] = [];
    for (let i = 0; i < b.k; i++) {
      const c = new Float64Array(b.k); c[i] = 1;
      const v = new Float64Array(b.n); b.synthesize(c, v); cols.push(v);
    }
    for (let i = 0; i < b.k; i++) for (let j = 0; j < b.k; j++) {
      let dot = 0;
      for (let t = 0; t < b.n; t++) dot += cols[i][t] * cols[j][t];
      assert.ok(Math.abs(dot - (i === j ? 1 : 0)) < 1e-12, `${layout} <b${i}, b${j}> = ${dot}`);
    }
    // analysis inverts synthesis
    const c = Float64Array.from({ length: b.k }, (_, i) => Math.sin(i + 1));
    const v = new Float64Array(b.n), back = new Float64Array(b.k);
    b.synthesize(c, v); b.analyze(v, back);
    for (let i = 0; i < b.k; i++) assert.ok(Math.abs(back[i] - c[i]) < 1e-12);
  }
});

test('component basis: component i is A row i and B column i', () => {
  const rank = 4, d = 9;
  for (const factor of ['A', 'B'] as const) {
    const b = createBasis('orthogonal-components', 77, rank * d, factor, rank, d);
    for (let i = 0; i < rank; i++) {
      const c = new Float64Array(rank * d);
      for (let j = 0; j < d; j++) c[i * d + j] = j + 1;
      const v = new Float64Array(rank * d); b.synthesize(c, v);
      for (let t = 0; t < v.length; t++) {
        const comp = factor === 'A' ? Math.floor(t / d) : t % rank; // A: rank × d row-major; B: d × rank
        if (comp !== i) assert.ok(v[t] === 0, `${factor} component ${i} leaked into entry ${t}`); // ±0
      }
    }
  }
  assert.throws(() => createBasis('orthogonal-components', 1, 10, 'A', 4, 9), /full span/);
});

const numpy = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

test('component basis agrees with the numpy reader', (t) => {
  if (!numpy) return t.skip('python3 with numpy is not available');
  const rank = 3, dIn = 11, dOut = 6, seedA = 4242, seedB = 99;
  const ca = Array.from({ length: rank * dIn }, (_, i) => Math.cos(i)), cb = Array.from({ length: rank * dOut }, (_, i) => 1 / (i + 1));
  const script = `import sys, json; sys.path.insert(0, ${JSON.stringify(path.join(REPO, 'scripts', 'reference'))})
import numpy as np
from nola_ref import synthesize_factor
a = synthesize_factor('orthogonal-components', ${seedA}, ${rank * dIn}, ${rank}, ${dIn}, 'A', np.array(${JSON.stringify(ca)}))
b = synthesize_factor('orthogonal-components', ${seedB}, ${rank * dOut}, ${rank}, ${dOut}, 'B', np.array(${JSON.stringify(cb)}))
print(json.dumps([a.ravel().tolist(), b.ravel().tolist()]))`;
  const r = spawnSync('python3', ['-c', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const [refA, refB] = JSON.parse(r.stdout) as [number[], number[]];
  const a = new Float64Array(rank * dIn), b = new Float64Array(dOut * rank);
  createBasis('orthogonal-components', seedA, rank * dIn, 'A', rank, dIn).synthesize(ca, a);
  createBasis('orthogonal-components', seedB, rank * dOut, 'B', rank, dOut).synthesize(cb, b);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - refA[i]) < 1e-12, `A[${i}] ${a[i]} vs ${refA[i]}`);
  for (let i = 0; i < b.length; i++) assert.ok(Math.abs(b[i] - refB[i]) < 1e-12, `B[${i}] ${b[i]} vs ${refB[i]}`);
});
