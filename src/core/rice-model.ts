/**
 * Rate and distortion of a rice block in closed form, for the search (STYLE: the search calls
 * estimates, the codec encodes the winner once). At full span of a random orthonormal basis a
 * factor's coefficients are a random rotation of the factor: for the sizes nola codes (n ≥ a few
 * hundred) they are close to i.i.d. N(0, σ²) with σ² = ‖factor‖²/n. For such a source and a uniform
 * quantizer of step Δ (levels round(x/Δ), zigzagged, Rice-coded with the best k) this module gives
 * the expected bits per value and the expected squared error per value, from the Gaussian's cell
 * probabilities and partial moments; no values are quantized and no bytes produced.
 *
 * The search only needs the model to rank settings and to land near the bound; every setting it
 * keeps is then stored and measured (src/pipeline/layer-strategy.ts), so a model error costs a
 * correction step, never a broken bound.
 */
import { MAX_RICE_K, RICE_HEADER_BYTES } from './rice.js';

export interface RiceEstimate {
  /** Expected bits per value of the best Rice parameter, header excluded. */
  bitsPerValue: number;
  /** That parameter. */
  k: number;
  /** Expected squared quantization error per value. */
  mse: number;
}

/** Above this σ/Δ the cells are fine enough for the high-rate forms (Δ²/12, Gaussian tails ignored). */
const FINE = 64;

/**
 * Expected Rice cost and rounding error of N(0, sigma²) at step `step` (both > 0). Both depend on
 * u = σ/Δ alone (the error scales with Δ²), so the search's many calls read a table over log u,
 * interpolated linearly (in log for the error), built once per thread. Below the table (u < 1e-3:
 * nothing but zeros) the sums are evaluated directly; above it (u > 64: over 8 bits per value) the
 * high-rate doubling rule extends it, so even absurd steps the search's bisection may probe cost O(1).
 */
export function gaussianRiceEstimate(sigma: number, step: number): RiceEstimate {
  if (!(sigma > 0)) return { bitsPerValue: 1, k: 0, mse: 0 }; // every level 0: one unary bit each
  const u = sigma / step;
  if (u > TABLE_MAX) {
    // Fine steps: halving the step doubles every level, which adds one remainder bit (k + 1) and
    // leaves the quotients alone, up to cell effects that vanish at this resolution; the error is Δ²/12.
    const j = Math.ceil(Math.log2(u / TABLE_MAX));
    const base = gaussianRiceEstimate(sigma, step * 2 ** j);
    return { bitsPerValue: base.bitsPerValue + j, k: Math.min(MAX_RICE_K, base.k + j), mse: (step * step) / 12 };
  }
  if (!(u >= TABLE_MIN)) return exactGaussianRiceEstimate(sigma, step);
  const t = (table ??= buildTable());
  const x = Math.log(u / TABLE_MIN) / TABLE_H;
  const i = Math.min(TABLE_N - 2, Math.floor(x)), f = x - i;
  return {
    bitsPerValue: t.bits[i] + f * (t.bits[i + 1] - t.bits[i]),
    k: t.k[f < 0.5 ? i : i + 1],
    mse: step * step * Math.exp(t.logMse[i] + f * (t.logMse[i + 1] - t.logMse[i])),
  };
}

const TABLE_MIN = 1e-3, TABLE_MAX = 64, TABLE_N = 4096;
const TABLE_H = Math.log(TABLE_MAX / TABLE_MIN) / (TABLE_N - 1);
let table: { bits: Float64Array; k: Uint8Array; logMse: Float64Array } | undefined;

function buildTable(): { bits: Float64Array; k: Uint8Array; logMse: Float64Array } {
  const bits = new Float64Array(TABLE_N), k = new Uint8Array(TABLE_N), logMse = new Float64Array(TABLE_N);
  for (let i = 0; i < TABLE_N; i++) {
    const e = exactGaussianRiceEstimate(TABLE_MIN * Math.exp(i * TABLE_H), 1);
    bits[i] = e.bitsPerValue;
    k[i] = e.k;
    logMse[i] = Math.log(e.mse);
  }
  return { bits, k, logMse };
}

/** The sums themselves, without the table (see the module comment). */
export function exactGaussianRiceEstimate(sigma: number, step: number): RiceEstimate {
  const u = sigma / step;
  // Levels 0, ±1, ±2, … until the tail is negligible; Φ and φ at the cell edges (j + ½)/u.
  const qMax = Math.ceil(9 * u) + 1;
  const cdf = new Float64Array(qMax + 1), pdf = new Float64Array(qMax + 1);
  for (let j = 0; j <= qMax; j++) { cdf[j] = normalCdf((j + 0.5) / u); pdf[j] = normalPdf((j + 0.5) / u); }
  // P(|q| = j), both signs (for j = 0 the cell is (−½, ½)).
  const pAbs = new Float64Array(qMax + 1);
  pAbs[0] = 2 * cdf[0] - 1;
  for (let j = 1; j <= qMax; j++) pAbs[j] = 2 * (cdf[j] - cdf[j - 1]);
  const mse = u > FINE ? (step * step) / 12 : cellMse(u, cdf, pdf) * sigma * sigma;
  // Zigzag: q = +j → z = 2j, q = −j → z = 2j − 1, each with half of pAbs[j]. With the suffix sums
  // S[j] = Σ_{j' ≥ j} pAbs[j']/2, P(z ≥ t) = S[⌈t/2⌉] + S[⌈(t+1)/2⌉], and the expected quotient at
  // parameter k is E⌊z/2^k⌋ = Σ_{m ≥ 1} P(z ≥ m·2^k): every k costs O(qMax / 2^k).
  const suffix = new Float64Array(qMax + 2);
  for (let j = qMax; j >= 1; j--) suffix[j] = suffix[j + 1] + pAbs[j] / 2;
  const tail = (t: number): number => {
    const a = Math.ceil(t / 2), b = Math.ceil((t + 1) / 2);
    return (a <= qMax ? suffix[a] : 0) + (b <= qMax ? suffix[b] : 0);
  };
  let best: RiceEstimate = { bitsPerValue: Infinity, k: 0, mse };
  for (let k = 0; k <= MAX_RICE_K; k++) {
    const div = 2 ** k;
    let quotient = 0;
    for (let t = div; t <= 2 * qMax; t += div) quotient += tail(t);
    const bits = k + 1 + quotient;
    if (bits < best.bitsPerValue) best = { bitsPerValue: bits, k, mse };
    else if (div > 4 * qMax) break; // quotients are all 0 from here: cost grows by one bit per k
  }
  return best;
}

/** Expected bytes of a rice block of `count` values under the Gaussian model. */
export function gaussianRiceBytes(count: number, sigma: number, step: number): number {
  const e = gaussianRiceEstimate(sigma, step);
  return RICE_HEADER_BYTES + (count * e.bitsPerValue) / 8;
}

/**
 * E[(Z − round(Z·u)/u)²]·u² … in units of σ²: Σ over cells of E[(Z − c)²; a < Z < b] for standard
 * normal Z, cell j = ((j − ½)/u, (j + ½)/u) with centre c = j/u; E[Z²;·] − 2c·E[Z;·] + c²·P(·).
 * The cells ±j contribute alike.
 */
function cellMse(u: number, cdf: Float64Array, pdf: Float64Array): number {
  let acc = 0;
  for (let j = 0; j < cdf.length; j++) {
    const b = (j + 0.5) / u, c = j / u;
    const a = j === 0 ? -b : (j - 0.5) / u;
    const pa = j === 0 ? 1 - cdf[0] : cdf[j - 1], fa = j === 0 ? pdf[0] : pdf[j - 1];
    const p = cdf[j] - pa;
    const m1 = fa - pdf[j];
    const m2 = p + a * fa - b * pdf[j];
    acc += (j === 0 ? 1 : 2) * (m2 - 2 * c * m1 + c * c * p);
  }
  return acc;
}

/**
 * Entropy in bits per value of the levels round(x/Δ) of x ~ N(0, σ²): what an ideal entropy coder of
 * the same quantizer would spend, the yardstick the Rice code is measured against (bench/coder-headroom.ts).
 */
export function gaussianLevelEntropy(sigma: number, step: number): number {
  if (!(sigma > 0)) return 0;
  const t = step / sigma;
  let h = 0;
  const p0 = normalCdf(t / 2) - normalCdf(-t / 2);
  if (p0 > 0) h -= p0 * Math.log2(p0);
  for (let k = 1; ; k++) {
    const p = normalCdf((k + 0.5) * t) - normalCdf((k - 0.5) * t);
    if (p < 1e-18) break;
    h -= 2 * p * Math.log2(p);
  }
  return h;
}

function normalPdf(x: number): number {
  return Number.isFinite(x) ? Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI) : 0;
}

/** Φ(x) through erfc (W. J. Cody's rational approximations are overkill here: |error| < 1.2e-7 suffices for a model). */
function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

/** Complementary error function, Numerical Recipes' erfcc (fractional error < 1.2e-7). */
function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? r : 2 - r;
}
