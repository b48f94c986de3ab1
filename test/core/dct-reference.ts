/** The dct.ts of before issue #10 over the reference FFT: what src/core/dct.ts must reproduce bit for bit. */
import { type FftPlan, getFftPlan } from './fft-reference.js';

interface DctPlan {
  readonly n: number;
  /** n even: FFT of length n/2 (real packing); n odd: FFT of length n. */
  readonly fft: FftPlan;
  /** cos, sin of πk/(2n), k ≤ n/2 (even n) or k < n (odd n). */
  readonly wCos: Float64Array;
  readonly wSin: Float64Array;
  /** even n only: cos, sin of 2πk/n, k < n/2 (the real-FFT split twiddles). */
  readonly rCos: Float64Array;
  readonly rSin: Float64Array;
  /** Makhoul-ordered samples; length n + 2 so dct3 can also keep V_0..V_h in it. */
  readonly v: Float64Array;
  readonly re: Float64Array;
  readonly im: Float64Array;
}

const MAX_CACHED_PLANS = 64;
const dctPlans = new Map<number, DctPlan>();

function angles(count: number, numerator: number, denominator: number): [Float64Array, Float64Array] {
  const c = new Float64Array(count);
  const s = new Float64Array(count);
  for (let k = 0; k < count; k++) {
    const a = (numerator * Math.PI * k) / denominator;
    c[k] = Math.cos(a);
    s[k] = Math.sin(a);
  }
  return [c, s];
}

function getDctPlan(n: number): DctPlan {
  let plan = dctPlans.get(n);
  if (plan !== undefined) return plan;
  if (!Number.isInteger(n) || n < 1 || n > 0x7fffffff) {
    throw new RangeError(`DCT length must be a positive integer below 2^31, got ${n}`);
  }
  const even = n % 2 === 0;
  const h = n >> 1;
  const [wCos, wSin] = angles(even ? h + 1 : n, 1, 2 * n);
  const [rCos, rSin] = even ? angles(h, 2, n) : [new Float64Array(0), new Float64Array(0)];
  const m = even ? h : n;
  plan = {
    n, fft: getFftPlan(m), wCos, wSin, rCos, rSin,
    v: new Float64Array(n + 2), re: new Float64Array(m), im: new Float64Array(m),
  };
  if (dctPlans.size >= MAX_CACHED_PLANS) dctPlans.delete(dctPlans.keys().next().value as number);
  dctPlans.set(n, plan);
  return plan;
}

/** out[0..n) = orthonormal DCT-II of x[0..n). x may alias out (the input is copied first). */
export function dct2(x: ArrayLike<number>, out: Float64Array, n: number = x.length): void {
  const plan = getDctPlan(n);
  const { v, re, im, wCos, wSin } = plan;
  for (let j = 0; j < (n + 1) >> 1; j++) v[j] = x[2 * j];
  for (let j = 0; j < n >> 1; j++) v[n - 1 - j] = x[2 * j + 1];
  const s0 = Math.sqrt(1 / n);
  const s = Math.sqrt(2 / n);
  if (n % 2 === 1) {
    re.set(v.subarray(0, n));
    im.fill(0);
    plan.fft.forward(re, im);
    out[0] = s0 * re[0];
    for (let k = 1; k < n; k++) out[k] = s * (re[k] * wCos[k] + im[k] * wSin[k]);
    return;
  }
  const h = n >> 1;
  const { rCos, rSin } = plan;
  for (let j = 0; j < h; j++) {
    re[j] = v[2 * j];
    im[j] = v[2 * j + 1];
  }
  plan.fft.forward(re, im);
  // Unpack V_k for k = 0..h from Z: E_k = (Z_k + conj Z_{h-k})/2, O_k = (Z_k - conj Z_{h-k})/(2i),
  // V_k = E_k + e^{-2πik/n} O_k (V_h = E_0 - O_0). Then W_k V_k = Y_k - i Y_{n-k}.
  for (let k = 0; k <= h; k++) {
    const a = k === h ? 0 : k;
    const b = k === 0 ? 0 : h - k;
    const zr = re[a], zi = im[a], cr = re[b], ci = -im[b];
    const er = (zr + cr) / 2, ei = (zi + ci) / 2;
    const or_ = (zi - ci) / 2, oi = -(zr - cr) / 2;
    let vr: number, vi: number;
    if (k === h) {
      vr = er - or_;
      vi = ei - oi;
    } else {
      const tr = rCos[k], ti = -rSin[k];
      vr = er + or_ * tr - oi * ti;
      vi = ei + or_ * ti + oi * tr;
    }
    const wr = wCos[k], wi = -wSin[k];
    const yr = vr * wr - vi * wi;
    const yi = vr * wi + vi * wr;
    if (k === 0) {
      out[0] = s0 * yr;
    } else {
      out[k] = s * yr;
      if (k < h) out[n - k] = -s * yi;
    }
  }
}

/**
 * out[0..n) = orthonormal DCT-III of X[0..n), the inverse and transpose of dct2.
 * X may alias out (the input is read before out is written).
 */
export function dct3(X: ArrayLike<number>, out: Float64Array, n: number = X.length): void {
  const plan = getDctPlan(n);
  const { v, re, im, wCos, wSin } = plan;
  // Undo the orthonormal scaling: Y_k = X_k / s_k.
  const inv0 = Math.sqrt(n);
  const inv = Math.sqrt(n / 2);
  if (n % 2 === 1) {
    // V_k = e^{iπk/(2n)} (Y_k - i Y_{n-k}), Y_n = 0
    re[0] = X[0] * inv0;
    im[0] = 0;
    for (let k = 1; k < n; k++) {
      const p = X[k] * inv;
      const q = -X[n - k] * inv;
      re[k] = p * wCos[k] - q * wSin[k];
      im[k] = p * wSin[k] + q * wCos[k];
    }
    plan.fft.inverse(re, im);
    v.set(re.subarray(0, n));
  } else {
    const h = n >> 1;
    const { rCos, rSin } = plan;
    // V_k for k ≤ h, then V_{k+h} = conj V_{h-k}; E_k = (V_k + V_{k+h})/2,
    // O_k = e^{+2πik/n} (V_k - V_{k+h})/2, Z_k = E_k + i O_k, and IDFT_h(Z) = v_even + i v_odd.
    // v (length n + 2) holds V_0..V_h as scratch: real parts at [0, h], imaginary parts at h+1+k.
    const vr = v;
    const vOff = h + 1;
    const Vi = (k: number): number => vr[vOff + k];
    for (let k = 0; k <= h; k++) {
      const p = X[k] * (k === 0 ? inv0 : inv);
      const q = k === 0 ? 0 : -X[n - k] * inv;
      vr[k] = p * wCos[k] - q * wSin[k];
      vr[vOff + k] = p * wSin[k] + q * wCos[k];
    }
    for (let k = 0; k < h; k++) {
      const ar = vr[k], ai = Vi(k);
      const br = vr[h - k], bi = -Vi(h - k);
      const er = (ar + br) / 2, ei = (ai + bi) / 2;
      const dr = (ar - br) / 2, di = (ai - bi) / 2;
      const tr = rCos[k], ti = rSin[k];
      const or_ = dr * tr - di * ti, oi = dr * ti + di * tr;
      re[k] = er - oi;
      im[k] = ei + or_;
    }
    plan.fft.inverse(re, im);
    for (let j = 0; j < h; j++) {
      v[2 * j] = re[j];
      v[2 * j + 1] = im[j];
    }
  }
  for (let j = 0; j < (n + 1) >> 1; j++) out[2 * j] = v[j];
  for (let j = 0; j < n >> 1; j++) out[2 * j + 1] = v[n - 1 - j];
}
