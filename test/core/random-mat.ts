/** Deterministic test matrices: entries uniform in [-0.5, 0.5) from a 32-bit LCG (Numerical Recipes constants). */
import { mat, type Mat } from '../../src/core/matrix.js';

export function randomMat(rows: number, cols: number, seed: number): Mat {
  let s = seed >>> 0;
  const m = mat(rows, cols);
  for (let i = 0; i < m.data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    m.data[i] = s / 2 ** 32 - 0.5;
  }
  return m;
}
