/**
 * Plain TypeScript kernels: the fallback where WebAssembly SIMD is unavailable, and the reference
 * the WebAssembly module is tested against bit for bit (same operations, same order).
 */
import { GEN_M1, GEN_M2 } from '../constants.js';
import type { UniformKernels } from './types.js';

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
};
