/**
 * The fft.ts of before issue #10, kept verbatim (imports aside) as the reference the restructured
 * src/core/fft.ts must reproduce bit for bit (test/core/fft.test.ts).
 */
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
  abstract forward(re: Float64Array, im: Float64Array): void;
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

class Radix2Plan extends Plan {
  private readonly rev: Uint32Array;
  private readonly cos: Float64Array;
  private readonly sin: Float64Array;

  constructor(n: number) {
    super(n);
    const bits = Math.round(Math.log2(n));
    this.rev = new Uint32Array(n);
    for (let i = 1; i < n; i++) this.rev[i] = (this.rev[i >> 1] >> 1) | ((i & 1) << (bits - 1));
    ({ cos: this.cos, sin: this.sin } = rootsOfUnity(n, n >> 1));
  }

  forward(re: Float64Array, im: Float64Array): void {
    this.run(re, im, -1);
  }

  override inverse(re: Float64Array, im: Float64Array): void {
    this.run(re, im, 1);
    const s = 1 / this.n;
    for (let i = 0; i < this.n; i++) {
      re[i] *= s;
      im[i] *= s;
    }
  }

  private run(re: Float64Array, im: Float64Array, sign: number): void {
    const n = this.n;
    const rev = this.rev;
    for (let i = 0; i < n; i++) {
      const j = rev[i];
      if (j > i) {
        let t = re[i]; re[i] = re[j]; re[j] = t;
        t = im[i]; im[i] = im[j]; im[j] = t;
      }
    }
    const cos = this.cos;
    const sin = this.sin;
    for (let size = 2; size <= n; size <<= 1) {
      const half = size >> 1;
      const step = n / size;
      for (let start = 0; start < n; start += size) {
        for (let j = 0, t = 0; j < half; j++, t += step) {
          const wr = cos[t];
          const wi = sign * sin[t];
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
  private readonly outRe: Float64Array;
  private readonly outIm: Float64Array;

  constructor(n: number) {
    super(n);
    ({ cos: this.cos, sin: this.sin } = rootsOfUnity(n, n));
    this.outRe = new Float64Array(n);
    this.outIm = new Float64Array(n);
  }

  forward(re: Float64Array, im: Float64Array): void {
    const { n, cos, sin, outRe, outIm } = this;
    for (let k = 0; k < n; k++) {
      let sr = 0;
      let si = 0;
      // t = jk mod n, advanced by k each step
      for (let j = 0, t = 0; j < n; j++) {
        // x_j · e^{-2πi t/n}
        sr += re[j] * cos[t] + im[j] * sin[t];
        si += im[j] * cos[t] - re[j] * sin[t];
        t += k;
        if (t >= n) t -= n;
      }
      outRe[k] = sr;
      outIm[k] = si;
    }
    re.set(outRe);
    im.set(outIm);
  }
}

/**
 * One Cooley–Tukey step, n = n1·n2, input index j = j1·n2 + j2, output index k = k1 + n1·k2:
 *   X[k1 + n1 k2] = Σ_{j2} e^{-2πi j2 k2/n2} · e^{-2πi j2 k1/n} · Σ_{j1} x[j1 n2 + j2] e^{-2πi j1 k1/n1}
 */
class SplitPlan extends Plan {
  private readonly inner1: FftPlan;
  private readonly inner2: FftPlan;
  /** e^{-2πi j2 k1 / n} at [j2·n1 + k1], angle reduced mod n exactly. */
  private readonly twRe: Float64Array;
  private readonly twIm: Float64Array;
  private readonly workRe: Float64Array;
  private readonly workIm: Float64Array;
  private readonly colRe: Float64Array;
  private readonly colIm: Float64Array;

  constructor(n: number, private readonly n1: number, private readonly n2: number) {
    super(n);
    this.inner1 = getFftPlan(n1);
    this.inner2 = getFftPlan(n2);
    this.twRe = new Float64Array(n);
    this.twIm = new Float64Array(n);
    for (let j2 = 0; j2 < n2; j2++) {
      for (let k1 = 0; k1 < n1; k1++) {
        const a = (2 * Math.PI * ((j2 * k1) % n)) / n;
        this.twRe[j2 * n1 + k1] = Math.cos(a);
        this.twIm[j2 * n1 + k1] = -Math.sin(a);
      }
    }
    this.workRe = new Float64Array(n);
    this.workIm = new Float64Array(n);
    const m = Math.max(n1, n2);
    this.colRe = new Float64Array(m);
    this.colIm = new Float64Array(m);
  }

  forward(re: Float64Array, im: Float64Array): void {
    const { n1, n2, inner1, inner2, twRe, twIm, workRe, workIm, colRe, colIm } = this;
    for (let j2 = 0; j2 < n2; j2++) {
      for (let j1 = 0; j1 < n1; j1++) {
        colRe[j1] = re[j1 * n2 + j2];
        colIm[j1] = im[j1 * n2 + j2];
      }
      inner1.forward(colRe, colIm);
      const base = j2 * n1;
      for (let k1 = 0; k1 < n1; k1++) {
        const wr = twRe[base + k1];
        const wi = twIm[base + k1];
        workRe[base + k1] = colRe[k1] * wr - colIm[k1] * wi;
        workIm[base + k1] = colRe[k1] * wi + colIm[k1] * wr;
      }
    }
    for (let k1 = 0; k1 < n1; k1++) {
      for (let j2 = 0; j2 < n2; j2++) {
        colRe[j2] = workRe[j2 * n1 + k1];
        colIm[j2] = workIm[j2 * n1 + k1];
      }
      inner2.forward(colRe, colIm);
      for (let k2 = 0; k2 < n2; k2++) {
        re[k1 + n1 * k2] = colRe[k2];
        im[k1 + n1 * k2] = colIm[k2];
      }
    }
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

  constructor(n: number) {
    super(n);
    let m = 1;
    while (m < 2 * n - 1) m <<= 1;
    this.inner = getFftPlan(m);
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

  forward(re: Float64Array, im: Float64Array): void {
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

function createPlan(n: number): FftPlan {
  if (isPowerOfTwo(n)) return new Radix2Plan(n);
  const twos = n & -n;
  if (twos > 1) return new SplitPlan(n, twos, n / twos);
  const p = smallestPrimeFactor(n);
  if (p < n) return new SplitPlan(n, p, n / p);
  return n <= DIRECT_MAX ? new DirectPlan(n) : new BluesteinPlan(n);
}

/** Plans are small next to the factors they transform; a few dozen recent lengths is plenty. */
const MAX_CACHED_PLANS = 64;
const planCache = new Map<number, FftPlan>();

/** The cached plan for length n (any positive integer below 2^31). */
export function getFftPlan(n: number): FftPlan {
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
