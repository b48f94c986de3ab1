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

/** Deterministic N(0, 1) samples: Box–Muller over the same LCG. */
export function randomGaussian(n: number, seed: number): Float64Array {
  let s = seed >>> 0;
  const u = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 2 ** 32;
  };
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}
