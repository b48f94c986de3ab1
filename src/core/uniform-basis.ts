/**
 * The paper's basis: b_i = k^(-1/2) · U_i with U_i[j] = value(seed, i, j) of lowbias32-v1,
 * j the row-major flat index in the factor. Values are regenerated inside the multiply-accumulate
 * kernels (src/core/kernels: WebAssembly SIMD, or plain TypeScript), one hash per entry, so memory
 * stays O(n) however many coefficients there are. Without the WebAssembly kernels, small bases are
 * materialized once instead (the TypeScript loop over a cached basis beats regenerating it).
 *
 * Arithmetic (identical on every path, so results never depend on which one ran): synthesis adds
 * the float64 terms c_i·b_i[j] for i ascending, exactly as the definition; analysis, which only
 * feeds the solvers, sums v_ij·x_j in four float64 lanes by j mod 4 combined as (s0 + s1) + (s2 + s3)
 * or, where k ≤ n/4, in float32 within 1024-column chunks and float64 across them: within ~3e-7 of
 * the exact inner products relative to their norm, and 1.45x faster (docs/PERFORMANCE.md).
 */
import type { Basis } from './basis.js';
import { colKeys, rowKey } from './generator.js';
import { GEN_M1, GEN_M2, GEN_VALUE_SCALE } from './constants.js';
import { uniformKernels, type UniformKernels } from './kernels/index.js';
import { ANALYZE_CHUNK } from './kernels/ts-kernels.js';

/** Bases with at most this many entries (k·n) are cached when only the TypeScript kernels run: 8 Mi entries = 32 MiB. */
export const UNIFORM_CACHE_ENTRIES = 8 * 1024 * 1024;

/** Makes a basis on a compute device (src/backends), or returns undefined to keep the CPU kernels. */
export type DeviceBasisFactory = (seed: number, k: number, n: number) => Basis | undefined;
let deviceFactory: DeviceBasisFactory | undefined;

/**
 * Routes new uniform bases of this thread through a device backend until reset with undefined.
 * Set by the compress pipeline for --device gpu only (bases made for expand stay on the CPU).
 */
export function setUniformBasisDevice(f: DeviceBasisFactory | undefined): void {
  deviceFactory = f;
}

export function createUniformBasis(seed: number, k: number, n: number, cacheEntries = UNIFORM_CACHE_ENTRIES): Basis & { kernels: string } {
  if (!(k >= 1 && n >= 1)) throw new RangeError(`basis needs k >= 1 and n >= 1, got k=${k} n=${n}`);
  const onDevice = deviceFactory?.(seed, k, n);
  if (onDevice !== undefined) return { ...onDevice, kernels: 'device' };
  const norm = 1 / Math.sqrt(k);
  const keys = colKeys(n);
  const rowKeys = new Int32Array(k);
  for (let i = 0; i < k; i++) rowKeys[i] = rowKey(seed >>> 0, i);
  const kernels: UniformKernels = uniformKernels();
  const cache = kernels.name === 'ts' && k * n <= cacheEntries ? materialize(rowKeys, keys) : undefined;
  const lanes = new Float64Array(4 * k);
  // Float32 analysis only where the basis spans a small part of the factor space (k ≤ n/4): there the
  // fit's error stays far above float32's ~1e-7 noise, which it cannot see. Near full span the fit
  // can approach zero error and needs the float64 analysis.
  const f32 = 4 * k <= n;

  // The fit often synthesizes the same coefficients twice in a row (a factor after its solve, then
  // the next solve's starting point): remember the last result and copy it instead of a pass.
  let lastC: Float64Array | undefined, lastOut: Float64Array | undefined;
  function synthesize(c: ArrayLike<number>, out: Float64Array): void {
    if (lastC !== undefined && lastOut !== undefined && sameValues(lastC, c)) {
      out.set(lastOut);
      return;
    }
    synthesizeFresh(c, out);
    lastC = Float64Array.from(c as ArrayLike<number>);
    (lastOut ??= new Float64Array(n)).set(out);
  }

  function synthesizeFresh(c: ArrayLike<number>, out: Float64Array): void {
    out.fill(0);
    // Zero coefficients add nothing (and one-hot vectors are common in dense solves): skip them.
    let m = 0;
    const rk = new Int32Array(k), cs = new Float64Array(k), rows = new Int32Array(k);
    for (let i = 0; i < k; i++) {
      const ci = c[i] * norm;
      if (ci === 0) continue;
      rk[m] = rowKeys[i];
      cs[m] = ci * GEN_VALUE_SCALE;
      rows[m++] = i;
    }
    if (cache === undefined) {
      kernels.synth(rk.subarray(0, m), cs.subarray(0, m), keys, out);
      return;
    }
    for (let t = 0; t < m; t++) {
      const ci = cs[t], off = rows[t] * n;
      for (let j = 0; j < n; j++) out[j] += ci * cache[off + j];
    }
  }

  function analyze(xv: ArrayLike<number>, out: Float64Array): void {
    lanes.fill(0);
    if (cache === undefined) (f32 ? kernels.analyzeF32 : kernels.analyze).call(kernels, rowKeys, keys, xv, lanes);
    else analyzeCached(cache, k, n, xv, lanes, f32);
    for (let i = 0; i < k; i++) out[i] = ((lanes[4 * i] + lanes[4 * i + 1]) + (lanes[4 * i + 2] + lanes[4 * i + 3])) * norm * GEN_VALUE_SCALE;
  }

  return { family: 'uniform', k, n, orthonormal: false, synthesize, analyze, kernels: cache === undefined ? kernels.name : 'ts-cached' };
}

/** Bitwise equality of coefficient vectors (Object.is: -0 and NaN are told apart and matched exactly). */
function sameValues(a: Float64Array, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

/** The basis values before their 2^-23 scale (integers below 2^23 in magnitude: exact in float32). */
function materialize(rowKeys: Int32Array, keys: Int32Array): Float32Array {
  const k = rowKeys.length, n = keys.length;
  const cache = new Float32Array(k * n);
  for (let i = 0; i < k; i++) {
    const rk = rowKeys[i], off = i * n;
    for (let j = 0; j < n; j++) {
      let x = rk ^ keys[j];
      x ^= x >>> 16; x = Math.imul(x, GEN_M1); x ^= x >>> 15; x = Math.imul(x, GEN_M2); x ^= x >>> 15;
      cache[off + j] = x >> 8;
    }
  }
  return cache;
}

/** The analysis kernels' arithmetic (analyze, or analyzeF32 when f32) over a cached basis. */
function analyzeCached(cache: Float32Array, k: number, n: number, x: ArrayLike<number>, lanes: Float64Array, f32: boolean): void {
  if (!f32) {
    const n4 = n & ~3;
    for (let i = 0; i < k; i++) {
      const off = i * n;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0, j = 0;
      for (; j < n4; j += 4) {
        s0 += cache[off + j] * x[j];
        s1 += cache[off + j + 1] * x[j + 1];
        s2 += cache[off + j + 2] * x[j + 2];
        s3 += cache[off + j + 3] * x[j + 3];
      }
      if (j < n) s0 += cache[off + j] * x[j];
      if (j + 1 < n) s1 += cache[off + j + 1] * x[j + 1];
      if (j + 2 < n) s2 += cache[off + j + 2] * x[j + 2];
      lanes[4 * i] = s0; lanes[4 * i + 1] = s1; lanes[4 * i + 2] = s2; lanes[4 * i + 3] = s3;
    }
    return;
  }
  const f = Math.fround;
  const x32 = new Float32Array(n);
  x32.set(x as ArrayLike<number>);
  for (let j0 = 0; j0 < n; j0 += ANALYZE_CHUNK) {
    const jend = Math.min(n, j0 + ANALYZE_CHUNK);
    for (let i = 0; i < k; i++) {
      const off = i * n;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0, j = j0;
      for (; j + 4 <= jend; j += 4) {
        s0 = f(s0 + f(cache[off + j] * x32[j]));
        s1 = f(s1 + f(cache[off + j + 1] * x32[j + 1]));
        s2 = f(s2 + f(cache[off + j + 2] * x32[j + 2]));
        s3 = f(s3 + f(cache[off + j + 3] * x32[j + 3]));
      }
      if (j < jend) s0 = f(s0 + f(cache[off + j] * x32[j]));
      if (j + 1 < jend) s1 = f(s1 + f(cache[off + j + 1] * x32[j + 1]));
      if (j + 2 < jend) s2 = f(s2 + f(cache[off + j + 2] * x32[j + 2]));
      lanes[4 * i] += s0; lanes[4 * i + 1] += s1; lanes[4 * i + 2] += s2; lanes[4 * i + 3] += s3;
    }
  }
}
