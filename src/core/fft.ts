/**
 * Complex FFT of any length, in place on split real/imaginary Float64Arrays, O(n log n) for all n.
 *
 *   powers of two      iterative radix-2
 *   small lengths      direct DFT from a table of the n roots of unity (n ≤ DIRECT_MAX)
 *   composite lengths  one Cooley–Tukey split n = n1·n2 (power-of-two part × odd part, or the
 *                      smallest prime factor × the rest), each side planned recursively
 *   large primes       Bluestein's chirp-z over a power-of-two convolution
 *
 * LoRA factor lengths are rank × width, e.g. 8·768 = 3·2^11 or 16·11008 = 43·2^12, so the split
 * keeps them within a small constant of a power-of-two transform; Bluestein is the fallback.
 * Plans (twiddles, bit reversal, chirps) are cached per length because the same factor shapes
 * recur across every layer of a checkpoint. Angles are reduced as exact integers mod n before
 * calling cos/sin, so twiddles stay accurate at any length.
 *
 * A split runs as a "four-step" FFT over batches: every sub-plan transforms many interleaved
 * columns at once (rows of `count` contiguous values), so the inner loops run over contiguous
 * memory instead of gathering strided columns one by one. Each column still sees exactly the
 * same floating-point operations in the same order as a one-column transform, so the output is
 * bit-identical to the column-by-column formulation (test/core/fft-reference.ts).
 */

import { dftKernel, radix2Kernel } from './kernels/fft-wasm.js';

export interface FftPlan {
  readonly n: number;
  /** X_k = Σ_j x_j e^{-2πi jk/n}, in place on re[0..n), im[0..n). */
  forward(re: Float64Array, im: Float64Array): void;
  /** x_j = (1/n) Σ_k X_k e^{+2πi jk/n}, in place. */
  inverse(re: Float64Array, im: Float64Array): void;
}

/** Above this, a prime length goes through Bluestein instead of the direct O(n²) DFT. */
const DIRECT_MAX = 48;

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

function smallestPrimeFactor(n: number): number {
  if (n % 2 === 0) return 2;
  for (let p = 3; p * p <= n; p += 2) if (n % p === 0) return p;
  return n;
}

/** cos and sin of 2π t / n for t < count. */
function rootsOfUnity(n: number, count: number): { cos: Float64Array; sin: Float64Array } {
  const cos = new Float64Array(count);
  const sin = new Float64Array(count);
  for (let t = 0; t < count; t++) {
    const a = (2 * Math.PI * t) / n;
    cos[t] = Math.cos(a);
    sin[t] = Math.sin(a);
  }
  return { cos, sin };
}

abstract class Plan implements FftPlan {
  constructor(readonly n: number) {}

  /**
   * Forward DFT of `count` interleaved columns in place: element j of column c is at
   * off + j·count + c. Bit-identical, column by column, to forward() on that column alone.
   */
  abstract batch(re: Float64Array, im: Float64Array, off: number, count: number): void;

  forward(re: Float64Array, im: Float64Array): void {
    this.batch(re, im, 0, 1);
  }

  /** IDFT(x) = conj(DFT(conj(x))) / n */
  inverse(re: Float64Array, im: Float64Array): void {
    const n = this.n;
    for (let i = 0; i < n; i++) im[i] = -im[i];
    this.forward(re, im);
    const s = 1 / n;
    for (let i = 0; i < n; i++) {
      re[i] *= s;
      im[i] = -im[i] * s;
    }
  }
}

/** A scratch pair that grows to the largest size asked for and is reused. */
class Scratch {
  re = new Float64Array(0);
  im = new Float64Array(0);
  get(size: number): void {
    if (this.re.length < size) {
      this.re = new Float64Array(size);
      this.im = new Float64Array(size);
    }
  }
}

class Radix2Plan extends Plan {
  private readonly rev: Uint32Array;
  /** Per-stage twiddles, stage `size` at [size/2 - 1, size - 1): cos and -sin of 2π j/size. */
  private readonly twCos: Float64Array;
  private readonly twSin: Float64Array;
  private readonly twNegSin: Float64Array;

  constructor(n: number) {
    super(n);
    const bits = Math.round(Math.log2(n));
    this.rev = new Uint32Array(n);
    for (let i = 1; i < n; i++) this.rev[i] = (this.rev[i >> 1] >> 1) | ((i & 1) << (bits - 1));
    const { cos, sin } = rootsOfUnity(n, n >> 1);
    // The same table entries the stage loops index as cos[j·(n/size)], laid out contiguously.
    this.twCos = new Float64Array(Math.max(n - 1, 0));
    this.twSin = new Float64Array(Math.max(n - 1, 0));
    this.twNegSin = new Float64Array(Math.max(n - 1, 0));
    for (let size = 2; size <= n; size <<= 1) {
      const half = size >> 1;
      const step = n / size;
      for (let j = 0; j < half; j++) {
        this.twCos[half - 1 + j] = cos[j * step];
        this.twSin[half - 1 + j] = sin[j * step];
        this.twNegSin[half - 1 + j] = -1 * sin[j * step];
      }
    }
  }

  override forward(re: Float64Array, im: Float64Array): void {
    this.run(re, im, this.twNegSin);
  }

  override inverse(re: Float64Array, im: Float64Array): void {
    this.run(re, im, this.twSin);
    const s = 1 / this.n;
    for (let i = 0; i < this.n; i++) {
      re[i] *= s;
      im[i] *= s;
    }
  }

  batch(re: Float64Array, im: Float64Array, off: number, count: number): void {
    if (count === 1 && off === 0) {
      this.run(re, im, this.twNegSin);
      return;
    }
    const wasm = count >= 2 && this.n >= 4 ? radix2Kernel() : null;
    if (wasm !== null) {
      wasm.batch(re, im, off, count, this.n, this.rev, this.twCos, this.twNegSin);
      return;
    }
    const n = this.n;
    const rev = this.rev;
    for (let i = 0; i < n; i++) {
      const j = rev[i];
      if (j > i) {
        const a = off + i * count, b = off + j * count;
        for (let c = 0; c < count; c++) {
          let t = re[a + c]; re[a + c] = re[b + c]; re[b + c] = t;
          t = im[a + c]; im[a + c] = im[b + c]; im[b + c] = t;
        }
      }
    }
    this.stages(re, im, off, count);
  }

  /** The butterflies (after the bit reversal) of `count` interleaved columns. */
  private stages(re: Float64Array, im: Float64Array, off: number, count: number): void {
    const n = this.n;
    const twCos = this.twCos;
    const twSin = this.twNegSin;
    for (let size = 2; size <= n; size <<= 1) {
      const half = size >> 1;
      const hc = half * count;
      for (let start = 0; start < n; start += size) {
        for (let j = 0; j < half; j++) {
          const wr = twCos[half - 1 + j];
          const wi = twSin[half - 1 + j];
          const a0 = off + (start + j) * count;
          const a1 = a0 + count;
          for (let a = a0; a < a1; a++) {
            const b = a + hc;
            const xr = re[b] * wr - im[b] * wi;
            const xi = re[b] * wi + im[b] * wr;
            re[b] = re[a] - xr;
            im[b] = im[a] - xi;
            re[a] += xr;
            im[a] += xi;
          }
        }
      }
    }
  }

  /** One transform over re[0..n), im[0..n); `sinT` is -sin (forward) or sin (inverse). */
  private run(re: Float64Array, im: Float64Array, sinT: Float64Array): void {
    const n = this.n;
    const wasm = n >= 4 ? radix2Kernel() : null;
    if (wasm !== null) {
      wasm.single(re, im, n, this.rev, this.twCos, sinT);
      return;
    }
    const rev = this.rev;
    for (let i = 0; i < n; i++) {
      const j = rev[i];
      if (j > i) {
        let t = re[i]; re[i] = re[j]; re[j] = t;
        t = im[i]; im[i] = im[j]; im[j] = t;
      }
    }
    const twCos = this.twCos;
    for (let size = 2; size <= n; size <<= 1) {
      const half = size >> 1;
      const base = half - 1;
      if (half < 8) {
        // Few twiddles: hoist each one over every block.
        for (let j = 0; j < half; j++) {
          const wr = twCos[base + j];
          const wi = sinT[base + j];
          for (let a = j; a < n; a += size) {
            const b = a + half;
            const xr = re[b] * wr - im[b] * wi;
            const xi = re[b] * wi + im[b] * wr;
            re[b] = re[a] - xr;
            im[b] = im[a] - xi;
            re[a] += xr;
            im[a] += xi;
          }
        }
        continue;
      }
      for (let start = 0; start < n; start += size) {
        for (let j = 0; j < half; j++) {
          const wr = twCos[base + j];
          const wi = sinT[base + j];
          const a = start + j;
          const b = a + half;
          const xr = re[b] * wr - im[b] * wi;
          const xi = re[b] * wi + im[b] * wr;
          re[b] = re[a] - xr;
          im[b] = im[a] - xi;
          re[a] += xr;
          im[a] += xi;
        }
      }
    }
  }
}

class DirectPlan extends Plan {
  private readonly cos: Float64Array;
  private readonly sin: Float64Array;
  private readonly out = new Scratch();

  /** cos, sin of 2π (jk mod n)/n at [k·n + j]: the entries the j loop reads, in order. */
  private readonly tCos: Float64Array;
  private readonly tSin: Float64Array;

  constructor(n: number) {
    super(n);
    ({ cos: this.cos, sin: this.sin } = rootsOfUnity(n, n));
    this.tCos = new Float64Array(n * n);
    this.tSin = new Float64Array(n * n);
    for (let k = 0; k < n; k++) {
      for (let j = 0, t = 0; j < n; j++) {
        this.tCos[k * n + j] = this.cos[t];
        this.tSin[k * n + j] = this.sin[t];
        t += k;
        if (t >= n) t -= n;
      }
    }
  }

  batch(re: Float64Array, im: Float64Array, off: number, count: number): void {
    const { n, cos, sin } = this;
    const size = n * count;
    this.out.get(size);
    const outRe = this.out.re;
    const outIm = this.out.im;
    if (count === 1) {
      for (let k = 0; k < n; k++) {
        let sr = 0;
        let si = 0;
        // t = jk mod n, advanced by k each step
        for (let j = 0, t = 0; j < n; j++) {
          // x_j · e^{-2πi t/n}
          const xr = re[off + j], xi = im[off + j];
          sr += xr * cos[t] + xi * sin[t];
          si += xi * cos[t] - xr * sin[t];
          t += k;
          if (t >= n) t -= n;
        }
        outRe[k] = sr;
        outIm[k] = si;
      }
    } else {
      // Column by column, four outputs k at a time with their sums in registers; each sum still
      // runs over j ascending with the same terms as above. The WebAssembly kernel does the same
      // operations on column pairs; an odd last column, or no WebAssembly, takes the loop below.
      const { tCos, tSin } = this;
      const wasm = dftKernel();
      let q0 = 0;
      if (wasm !== null) {
        wasm(re, im, off, count, n, tCos, tSin, outRe, outIm);
        q0 = count & ~1;
      }
      for (let q = q0; q < count; q++) {
        const x0 = off + q;
        let k = 0;
        for (; k + 4 <= n; k += 4) {
          let r0 = 0, i0 = 0, r1 = 0, i1 = 0, r2 = 0, i2 = 0, r3 = 0, i3 = 0;
          const t0 = k * n, t1 = t0 + n, t2 = t1 + n, t3 = t2 + n;
          for (let j = 0; j < n; j++) {
            const xr = re[x0 + j * count], xi = im[x0 + j * count];
            let c = tCos[t0 + j], s = tSin[t0 + j];
            r0 += xr * c + xi * s;
            i0 += xi * c - xr * s;
            c = tCos[t1 + j]; s = tSin[t1 + j];
            r1 += xr * c + xi * s;
            i1 += xi * c - xr * s;
            c = tCos[t2 + j]; s = tSin[t2 + j];
            r2 += xr * c + xi * s;
            i2 += xi * c - xr * s;
            c = tCos[t3 + j]; s = tSin[t3 + j];
            r3 += xr * c + xi * s;
            i3 += xi * c - xr * s;
          }
          outRe[k * count + q] = r0; outIm[k * count + q] = i0;
          outRe[(k + 1) * count + q] = r1; outIm[(k + 1) * count + q] = i1;
          outRe[(k + 2) * count + q] = r2; outIm[(k + 2) * count + q] = i2;
          outRe[(k + 3) * count + q] = r3; outIm[(k + 3) * count + q] = i3;
        }
        for (; k < n; k++) {
          let sr = 0, si = 0;
          const t0 = k * n;
          for (let j = 0; j < n; j++) {
            const xr = re[x0 + j * count], xi = im[x0 + j * count];
            const c = tCos[t0 + j], s = tSin[t0 + j];
            sr += xr * c + xi * s;
            si += xi * c - xr * s;
          }
          outRe[k * count + q] = sr; outIm[k * count + q] = si;
        }
      }
    }
    re.set(outRe.subarray(0, size), off);
    im.set(outIm.subarray(0, size), off);
  }
}

/**
 * One Cooley–Tukey step, n = n1·n2, input index j = j1·n2 + j2, output index k = k1 + n1·k2:
 *   X[k1 + n1 k2] = Σ_{j2} e^{-2πi j2 k2/n2} · e^{-2πi j2 k1/n} · Σ_{j1} x[j1 n2 + j2] e^{-2πi j1 k1/n1}
 * As four steps over `count` columns: n1-point transforms of the n2·count columns (j2, c) in place,
 * twiddle while transposing into [j2][k1][c], n2-point transforms of the n1·count columns (k1, c),
 * which leaves X at [k2][k1][c] = row k1 + n1·k2: the output layout.
 */
class SplitPlan extends Plan {
  private readonly inner1: Plan;
  private readonly inner2: Plan;
  /** e^{-2πi j2 k1 / n} at [j2·n1 + k1], angle reduced mod n exactly. */
  private readonly twRe: Float64Array;
  private readonly twIm: Float64Array;
  private readonly work = new Scratch();

  constructor(n: number, private readonly n1: number, private readonly n2: number) {
    super(n);
    this.inner1 = getPlan(n1);
    this.inner2 = getPlan(n2);
    this.twRe = new Float64Array(n);
    this.twIm = new Float64Array(n);
    for (let j2 = 0; j2 < n2; j2++) {
      for (let k1 = 0; k1 < n1; k1++) {
        const a = (2 * Math.PI * ((j2 * k1) % n)) / n;
        this.twRe[j2 * n1 + k1] = Math.cos(a);
        this.twIm[j2 * n1 + k1] = -Math.sin(a);
      }
    }
  }

  batch(re: Float64Array, im: Float64Array, off: number, count: number): void {
    const { n, n1, n2, twRe, twIm } = this;
    this.inner1.batch(re, im, off, n2 * count);
    this.work.get(n * count);
    const workRe = this.work.re;
    const workIm = this.work.im;
    // re[off + (k1·n2 + j2)·count + c] · w(j2, k1) → work[(j2·n1 + k1)·count + c]
    for (let k1 = 0; k1 < n1; k1++) {
      for (let j2 = 0; j2 < n2; j2++) {
        const wr = twRe[j2 * n1 + k1];
        const wi = twIm[j2 * n1 + k1];
        const src = off + (k1 * n2 + j2) * count;
        const dst = (j2 * n1 + k1) * count;
        for (let c = 0; c < count; c++) {
          const xr = re[src + c], xi = im[src + c];
          workRe[dst + c] = xr * wr - xi * wi;
          workIm[dst + c] = xr * wi + xi * wr;
        }
      }
    }
    this.inner2.batch(workRe, workIm, 0, n1 * count);
    re.set(workRe.subarray(0, n * count), off);
    im.set(workIm.subarray(0, n * count), off);
  }
}

/**
 * Bluestein: with w_j = e^{iπ j²/n}, X_k = conj(w_k) Σ_j (x_j conj(w_j)) w_{k-j}, a linear
 * convolution evaluated with power-of-two FFTs of length m ≥ 2n-1.
 */
class BluesteinPlan extends Plan {
  private readonly inner: FftPlan;
  private readonly wr: Float64Array;
  private readonly wi: Float64Array;
  /** FFT of the chirp w_j laid out circularly for j in (-n, n). */
  private readonly chirpRe: Float64Array;
  private readonly chirpIm: Float64Array;
  private readonly bufRe: Float64Array;
  private readonly bufIm: Float64Array;
  private readonly col = new Scratch();

  constructor(n: number) {
    super(n);
    let m = 1;
    while (m < 2 * n - 1) m <<= 1;
    this.inner = getPlan(m);
    this.wr = new Float64Array(n);
    this.wi = new Float64Array(n);
    // j² mod 2n as an exact integer: e^{iπ j²/n} only depends on it.
    const twoN = 2 * n;
    let sq = 0;
    for (let j = 0; j < n; j++) {
      const a = (Math.PI * sq) / n;
      this.wr[j] = Math.cos(a);
      this.wi[j] = Math.sin(a);
      sq = (sq + 2 * j + 1) % twoN;
    }
    this.chirpRe = new Float64Array(m);
    this.chirpIm = new Float64Array(m);
    this.chirpRe[0] = this.wr[0];
    this.chirpIm[0] = this.wi[0];
    for (let j = 1; j < n; j++) {
      this.chirpRe[j] = this.chirpRe[m - j] = this.wr[j];
      this.chirpIm[j] = this.chirpIm[m - j] = this.wi[j];
    }
    this.inner.forward(this.chirpRe, this.chirpIm);
    this.bufRe = new Float64Array(m);
    this.bufIm = new Float64Array(m);
  }

  /** Column by column: Bluestein lengths are primes above DIRECT_MAX, rare in LoRA shapes. */
  batch(re: Float64Array, im: Float64Array, off: number, count: number): void {
    const n = this.n;
    if (count === 1 && off === 0) {
      this.one(re, im);
      return;
    }
    this.col.get(n);
    const cr = this.col.re, ci = this.col.im;
    for (let c = 0; c < count; c++) {
      for (let j = 0; j < n; j++) {
        cr[j] = re[off + j * count + c];
        ci[j] = im[off + j * count + c];
      }
      this.one(cr, ci);
      for (let j = 0; j < n; j++) {
        re[off + j * count + c] = cr[j];
        im[off + j * count + c] = ci[j];
      }
    }
  }

  private one(re: Float64Array, im: Float64Array): void {
    const { n, wr, wi, bufRe, bufIm, chirpRe, chirpIm } = this;
    const m = bufRe.length;
    for (let j = 0; j < n; j++) {
      bufRe[j] = re[j] * wr[j] + im[j] * wi[j];
      bufIm[j] = im[j] * wr[j] - re[j] * wi[j];
    }
    bufRe.fill(0, n);
    bufIm.fill(0, n);
    this.inner.forward(bufRe, bufIm);
    for (let i = 0; i < m; i++) {
      const r = bufRe[i] * chirpRe[i] - bufIm[i] * chirpIm[i];
      bufIm[i] = bufRe[i] * chirpIm[i] + bufIm[i] * chirpRe[i];
      bufRe[i] = r;
    }
    this.inner.inverse(bufRe, bufIm);
    for (let k = 0; k < n; k++) {
      re[k] = bufRe[k] * wr[k] + bufIm[k] * wi[k];
      im[k] = bufIm[k] * wr[k] - bufRe[k] * wi[k];
    }
  }
}

function createPlan(n: number): Plan {
  if (isPowerOfTwo(n)) return new Radix2Plan(n);
  const twos = n & -n;
  if (twos > 1) return new SplitPlan(n, twos, n / twos);
  const p = smallestPrimeFactor(n);
  if (p < n) return new SplitPlan(n, p, n / p);
  return n <= DIRECT_MAX ? new DirectPlan(n) : new BluesteinPlan(n);
}

/** Plans are small next to the factors they transform; a few dozen recent lengths is plenty. */
const MAX_CACHED_PLANS = 64;
const planCache = new Map<number, Plan>();

/** The cached plan for length n (any positive integer below 2^31). */
export function getFftPlan(n: number): FftPlan {
  return getPlan(n);
}

function getPlan(n: number): Plan {
  let plan = planCache.get(n);
  if (plan !== undefined) return plan;
  if (!Number.isInteger(n) || n < 1 || n > 0x7fffffff) {
    throw new RangeError(`FFT length must be a positive integer below 2^31, got ${n}`);
  }
  plan = createPlan(n);
  if (planCache.size >= MAX_CACHED_PLANS) planCache.delete(planCache.keys().next().value as number);
  planCache.set(n, plan);
  return plan;
}
