/**
 * Plain TypeScript kernels: the fallback where WebAssembly SIMD is unavailable, and the reference
 * the WebAssembly module is tested against bit for bit (same operations, same order).
 */
import { GEN_M1, GEN_M2 } from '../constants.js';
import type { UniformKernels } from './types.js';

/** Columns per float32 partial sum of the analysis (the WebAssembly module's chunk). */
export const ANALYZE_CHUNK = 1024;

/** int32(lowbias32(rk ^ key)) >> 8. */
function v(rk: number, key: number): number {
  let x = rk ^ key;
  x ^= x >>> 16; x = Math.imul(x, GEN_M1); x ^= x >>> 15; x = Math.imul(x, GEN_M2); x ^= x >>> 15;
  return x >> 8;
}

export const tsKernels: UniformKernels = {
  name: 'ts',
  synth(rk, c, ck, out) {
    const k = rk.length, n = ck.length;
    for (let i = 0; i < k; i++) {
      const r = rk[i], ci = c[i];
      for (let j = 0; j < n; j++) {
        let x = r ^ ck[j];
        x ^= x >>> 16; x = Math.imul(x, GEN_M1); x ^= x >>> 15; x = Math.imul(x, GEN_M2); x ^= x >>> 15;
        out[j] += ci * (x >> 8);
      }
    }
  },
  analyze(rk, ck, x, lanes) {
    const k = rk.length, n = ck.length, n4 = n & ~3;
    for (let i = 0; i < k; i++) {
      const r = rk[i];
      let s0 = lanes[4 * i], s1 = lanes[4 * i + 1], s2 = lanes[4 * i + 2], s3 = lanes[4 * i + 3];
      let j = 0;
      for (; j < n4; j += 4) {
        s0 += v(r, ck[j]) * x[j];
        s1 += v(r, ck[j + 1]) * x[j + 1];
        s2 += v(r, ck[j + 2]) * x[j + 2];
        s3 += v(r, ck[j + 3]) * x[j + 3];
      }
      if (j < n) s0 += v(r, ck[j]) * x[j];
      if (j + 1 < n) s1 += v(r, ck[j + 1]) * x[j + 1];
      if (j + 2 < n) s2 += v(r, ck[j + 2]) * x[j + 2];
      lanes[4 * i] = s0; lanes[4 * i + 1] = s1; lanes[4 * i + 2] = s2; lanes[4 * i + 3] = s3;
    }
  },
  analyzeF32(rk, ck, x, lanes) {
    const k = rk.length, n = ck.length, f = Math.fround;
    const x32 = new Float32Array(n);
    x32.set(x as ArrayLike<number>);
    for (let j0 = 0; j0 < n; j0 += ANALYZE_CHUNK) {
      const jend = Math.min(n, j0 + ANALYZE_CHUNK);
      for (let i = 0; i < k; i++) {
        const r = rk[i];
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        let j = j0;
        for (; j + 4 <= jend; j += 4) {
          s0 = f(s0 + f(v(r, ck[j]) * x32[j]));
          s1 = f(s1 + f(v(r, ck[j + 1]) * x32[j + 1]));
          s2 = f(s2 + f(v(r, ck[j + 2]) * x32[j + 2]));
          s3 = f(s3 + f(v(r, ck[j + 3]) * x32[j + 3]));
        }
        if (j < jend) s0 = f(s0 + f(v(r, ck[j]) * x32[j]));
        if (j + 1 < jend) s1 = f(s1 + f(v(r, ck[j + 1]) * x32[j + 1]));
        if (j + 2 < jend) s2 = f(s2 + f(v(r, ck[j + 2]) * x32[j + 2]));
        lanes[4 * i] += s0; lanes[4 * i + 1] += s1; lanes[4 * i + 2] += s2; lanes[4 * i + 3] += s3;
      }
    }
  },
};
