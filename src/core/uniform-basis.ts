/**
 * The paper's basis: b_i = k^(-1/2) · U_i with U_i[j] = value(seed, i, j) of lowbias32-v1,
 * j the row-major flat index in the factor. Small bases are materialized once (float32, the
 * values are exact in float32); large ones are regenerated row by row inside the
 * multiply-accumulate loop, so memory stays O(n) however many coefficients there are.
 */
import type { Basis } from './basis.js';
import { colKeys, rowKey } from './generator.js';
import { GEN_M1, GEN_M2, GEN_VALUE_SCALE } from './constants.js';

/** Bases with at most this many entries (k·n) are cached in memory: 8 Mi entries = 32 MiB. */
export const UNIFORM_CACHE_ENTRIES = 8 * 1024 * 1024;

export function createUniformBasis(seed: number, k: number, n: number, cacheEntries = UNIFORM_CACHE_ENTRIES): Basis {
  if (!(k >= 1 && n >= 1)) throw new RangeError(`basis needs k >= 1 and n >= 1, got k=${k} n=${n}`);
  const norm = 1 / Math.sqrt(k);
  const keys = colKeys(n);
  const rowKeys = new Int32Array(k);
  for (let i = 0; i < k; i++) rowKeys[i] = rowKey(seed >>> 0, i);
  let cache: Float32Array | undefined;
  if (k * n <= cacheEntries) {
    cache = new Float32Array(k * n);
    for (let i = 0; i < k; i++) {
      const rk = rowKeys[i], off = i * n;
      for (let j = 0; j < n; j++) {
        let x = rk ^ keys[j];
        x ^= x >>> 16; x = Math.imul(x, GEN_M1); x ^= x >>> 15; x = Math.imul(x, GEN_M2); x ^= x >>> 15;
        cache[off + j] = (x >> 8) * GEN_VALUE_SCALE;
      }
    }
  }

  function synthesize(c: ArrayLike<number>, out: Float64Array): void {
    out.fill(0);
    for (let i = 0; i < k; i++) {
      const ci = c[i] * norm;
      if (ci === 0) continue;
      if (cache !== undefined) {
        const off = i * n;
        for (let j = 0; j < n; j++) out[j] += ci * cache[off + j];
      } else {
        const rk = rowKeys[i];
        const cs = ci * GEN_VALUE_SCALE;
        for (let j = 0; j < n; j++) {
          let x = rk ^ keys[j];
          x ^= x >>> 16; x = Math.imul(x, GEN_M1); x ^= x >>> 15; x = Math.imul(x, GEN_M2); x ^= x >>> 15;
          out[j] += cs * (x >> 8);
        }
      }
    }
  }

  function analyze(xv: ArrayLike<number>, out: Float64Array): void {
    for (let i = 0; i < k; i++) {
      let s = 0;
      if (cache !== undefined) {
        const off = i * n;
        for (let j = 0; j < n; j++) s += cache[off + j] * xv[j];
        out[i] = s * norm;
      } else {
        const rk = rowKeys[i];
        for (let j = 0; j < n; j++) {
          let x = rk ^ keys[j];
          x ^= x >>> 16; x = Math.imul(x, GEN_M1); x ^= x >>> 15; x = Math.imul(x, GEN_M2); x ^= x >>> 15;
          s += (x >> 8) * xv[j];
        }
        out[i] = s * norm * GEN_VALUE_SCALE;
      }
    }
  }

  return { family: 'uniform', k, n, orthonormal: false, synthesize, analyze };
}
