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

/** Expected Rice cost and rounding error of N(0, sigma²) at step `step` (both > 0). */
export function gaussianRiceEstimate(sigma: number, step: number): RiceEstimate {
  if (!(sigma > 0)) return { bitsPerValue: 1, k: 0, mse: 0 }; // every level 0: one unary bit each
  const u = sigma / step;
  // Cell probabilities of levels 0, ±1, ±2, … until the tail is negligible.
  const qMax = Math.ceil(9 * u) + 1;
  const mse = u > FINE ? (step * step) / 12 : cellMse(sigma, step, qMax);
  // P(|q| = j) for j = 0..qMax, then zigzag z = 2q (q ≥ 0) or −2q − 1 (q < 0).
  const pAbs = new Float64Array(qMax + 1);
  for (let j = 0; j <= qMax; j++) {
    const hi = normalCdf((j + 0.5) / u), lo = j === 0 ? 0.5 : normalCdf((j - 0.5) / u);
    pAbs[j] = 2 * (hi - lo); // both signs (for j = 0, lo is Φ(0) = ½)
  }
  let best: RiceEstimate = { bitsPerValue: Infinity, k: 0, mse };
  for (let k = 0; k <= MAX_RICE_K; k++) {
    const div = 2 ** k;
    let unary = 1;
    for (let j = 1; j <= qMax; j++) {
      // q = +j → z = 2j, q = −j → z = 2j − 1; each half of the mass.
      unary += 0.5 * pAbs[j] * (Math.floor((2 * j) / div) + Math.floor((2 * j - 1) / div));
    }
    const bits = k + unary;
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

/** E[(X − Δ·round(X/Δ))²] for X ~ N(0, σ²), summed over the cells |q| ≤ qMax (the rest is negligible). */
function cellMse(sigma: number, step: number, qMax: number): number {
  let acc = 0;
  for (let j = -qMax; j <= qMax; j++) {
    const a = ((j - 0.5) * step) / sigma, b = ((j + 0.5) * step) / sigma, c = (j * step) / sigma;
    // E[(Z − c)²; a < Z < b] for standard normal Z = E[Z²;·] − 2c·E[Z;·] + c²·P(·)
    const p = normalCdf(b) - normalCdf(a);
    const m1 = normalPdf(a) - normalPdf(b);
    const m2 = p + a * normalPdf(a) - b * normalPdf(b);
    acc += m2 - 2 * c * m1 + c * c * p;
  }
  return acc * sigma * sigma;
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
