import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mat, matmulNT, matmulTN, qrThin, type Mat } from '../../src/core/matrix.js';
import * as ref from './matrix-reference.js';

// Issue #10 blocked matmulTN/matmulNT and fused the Gram–Schmidt passes of qrThin, promising the
// same bits: the pre-#10 matrix.ts (matrix-reference.ts) is the reference, compared with Object.is.

function randomMat(rows: number, cols: number, seed: number, zeros = false): Mat {
  let s = seed >>> 0;
  const m = mat(rows, cols);
  for (let i = 0; i < m.data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    m.data[i] = zeros && s % 7 === 0 ? 0 : s / 2 ** 32 - 0.5;
  }
  return m;
}

function assertSame(a: Mat, b: Mat, what: string): void {
  assert.equal(a.rows, b.rows);
  assert.equal(a.cols, b.cols);
  for (let i = 0; i < a.data.length; i++) if (!Object.is(a.data[i], b.data[i])) assert.fail(`${what}: entry ${i} ${a.data[i]} vs ${b.data[i]}`);
}

test('matmulTN and matmulNT are bit-identical to the pre-#10 loops (with and without zero entries)', () => {
  for (const [m, p, q] of [[1, 1, 1], [3, 2, 5], [7, 16, 16], [4099, 16, 13], [1030, 5, 3], [11008, 16, 16]]) {
    for (const zeros of [false, true]) {
      const a = randomMat(m, p, m + p, zeros), b = randomMat(m, q, m * q, zeros);
      assertSame(matmulTN(a, b), ref.matmulTN(a, b), `TN ${m}x${p}x${q}`);
      const c = randomMat(p, m, 3 * m, zeros), d = randomMat(q, m, 5 * q, zeros);
      assertSame(matmulNT(c, d), ref.matmulNT(c, d), `NT ${p}x${q}x${m}`);
    }
  }
});

test('qrThin is bit-identical to the pre-#10 CGS2, including rank-deficient and zero columns', () => {
  for (const [m, p] of [[1, 1], [5, 3], [4096, 16], [1024, 7], [300, 32]]) {
    const a = randomMat(m, p, m ^ p);
    const x = qrThin(a), y = ref.qrThin(a);
    assertSame(x.q, y.q, `Q ${m}x${p}`);
    assertSame(x.r, y.r, `R ${m}x${p}`);
  }
  // Column 2 = column 0 + column 1, column 3 = 0: the deflation branch.
  const a = randomMat(200, 5, 9);
  for (let i = 0; i < 200; i++) {
    a.data[i * 5 + 2] = a.data[i * 5] + a.data[i * 5 + 1];
    a.data[i * 5 + 3] = 0;
  }
  const x = qrThin(a), y = ref.qrThin(a);
  assertSame(x.q, y.q, 'Q deficient');
  assertSame(x.r, y.r, 'R deficient');
});
