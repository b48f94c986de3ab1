/**
 * One layer, end to end in memory: fit the coefficients, store them in the requested precision
 * with error feedback, and measure the error of exactly what is stored. Pure: no I/O.
 *
 * Error feedback: after A's coefficients are rounded, B is re-solved by least squares against the
 * rounded A (B absorbs A's rounding error), and only then rounded itself. The reported error is
 * recomputed from the dequantized coefficients.
 */
import type { Basis, BasisFamily } from './basis.js';
import { createUniformBasis } from './uniform-basis.js';
import { createOrthogonalBasis } from './orthogonal-basis.js';
import { createComponentBasis } from './component-basis.js';
import { fitLayer, solveB, synthesizeFactor, targetSvd, type FitOptions, type FitProblem, type FitResult } from './fit.js';
import { relativeErrorToSvd, truncationError, type LowRankSvd } from './lowrank.js';
import { mat, type Mat } from './matrix.js';
import { quantize, dequantize, type QuantizedBlock, type QuantRequest, type QuantSpec } from './quantize.js';
import { roundToBf16, roundToF16 } from './half.js';

/** Precision the expanded LoRA will be written in; the delivered error includes its rounding. */
export type DeliveryPrecision = 'f64' | 'f32' | 'f16' | 'bf16';

export interface LayerSettings {
  rank: number;
  /** Coefficients for A (≤ rank·d_in) and for B (≤ d_out·rank). */
  k: number;
  l: number;
  basis: BasisFamily;
  quantA: QuantSpec;
  quantB: QuantSpec;
  seedA: number;
  seedB: number;
  fit?: Partial<FitOptions>;
}

/** Settings as asked for: a rice factor is asked for by its step ({ rice: step }) and stored as ["rice", count, bytes]. */
export type LayerRecipe = Omit<LayerSettings, 'quantA' | 'quantB'> & { quantA: QuantRequest; quantB: QuantRequest };

export interface LayerTarget {
  a0: Mat;
  b0: Mat;
  s0: number;
  /** SVD of s0·B0·A0, computed once per layer and shared by every candidate setting. */
  svd?: LowRankSvd;
  /** Precision of the expanded factors (the source dtypes); default f64 (no rounding). */
  deliverA?: DeliveryPrecision;
  deliverB?: DeliveryPrecision;
}

export interface CompressedLayer {
  settings: LayerSettings;
  blockA: QuantizedBlock;
  blockB: QuantizedBlock;
  /** Relative Frobenius error of the stored (dequantized) coefficients: the NOLA reconstruction. */
  error: number;
  /** Error of the expanded LoRA, after its factors are rounded to the delivery precision. */
  deliveredError: number;
  /** Error before rounding the coefficients (the fit alone). */
  fitError: number;
  /**
   * max |x| of each factor synthesized from the stored blocks, NaN if any entry is NaN: the values
   * expand rounds to the factors' dtypes, for compress's range check (LayerFitter.store synthesizes
   * them anyway to measure the error).
   */
  maxAbs: { a: number; b: number };
}

/** max |x| over `data`, NaN if any entry is NaN. */
export function maxAbsOf(data: Float64Array): number {
  let maxAbs = 0;
  for (let i = 0; i < data.length; i++) {
    const v = Math.abs(data[i]);
    if (Number.isNaN(v)) return NaN;
    if (v > maxAbs) maxAbs = v;
  }
  return maxAbs;
}

/** The basis of factor A (rank × d_in) or B (d_out × rank) with k coefficients. */
export function createBasis(family: BasisFamily, seed: number, k: number, factor: 'A' | 'B', rank: number, d: number): Basis {
  const n = rank * d;
  if (family === 'uniform') return createUniformBasis(seed, k, n);
  if (family === 'orthogonal') return createOrthogonalBasis(seed, k, n);
  // One rotation per component (A's rows, B's columns), always at full span.
  if (k !== n) throw new RangeError(`orthogonal-components basis: k = ${k} must be the full span ${n}`);
  return createComponentBasis(seed, rank, d, factor === 'A' ? 'rows' : 'cols');
}

export function roundForDelivery(m: Mat, p: DeliveryPrecision | undefined): Mat {
  if (p === undefined || p === 'f64') return m;
  const round = p === 'f32' ? Math.fround : p === 'f16' ? roundToF16 : roundToBf16;
  const out = { rows: m.rows, cols: m.cols, data: new Float64Array(m.data.length) };
  for (let i = 0; i < m.data.length; i++) out.data[i] = round(m.data[i]);
  return out;
}

/**
 * A fitted layer at one (rank, k, l, basis): rounds its coefficients to any pair of precisions on
 * demand, reusing the fit and, per precision of A, the re-solved B.
 */
export class LayerFitter {
  readonly fit: FitResult;
  private readonly problem: FitProblem;
  private readonly svd: LowRankSvd;
  private readonly refits = new Map<string, { blockA: QuantizedBlock; aStored: Mat; aMaxAbs: number; beta: Float64Array }>();

  constructor(private readonly target: LayerTarget, private readonly base: Omit<LayerSettings, 'quantA' | 'quantB'>) {
    const { a0, b0, s0 } = target;
    const { rank: r, k, l, basis } = base;
    const dIn = a0.cols, dOut = b0.rows;
    const svd = target.svd ?? targetSvd({ a0, b0, s0 });
    this.svd = svd;
    const basisA = createBasis(basis, base.seedA, k, 'A', r, dIn);
    const basisB = createBasis(basis, base.seedB, l, 'B', r, dOut);
    this.problem = { a0, b0, s0, scale: s0, rank: r, basisA, basisB };
    // At full span of an orthonormal basis the fit is exact up to the rank truncation: no
    // iterations can improve on the first projection.
    this.fit = fitLayer(this.problem, { ...base.fit, svd, stopAtError: truncationError(svd.sigma, r) });
  }

  store(quantA: QuantRequest, quantB: QuantRequest): CompressedLayer {
    const { a0, b0, s0 } = this.target;
    const { basisA, basisB, rank: r } = this.problem;
    const dIn = a0.cols, dOut = b0.rows;
    const key = JSON.stringify(quantA);
    let refit = this.refits.get(key);
    if (refit === undefined) {
      const blockA = quantize(this.fit.alpha, quantA, { clipSearch: true });
      const alphaStored = new Float64Array(basisA.k);
      dequantize(blockA, alphaStored);
      const aStored = synthesizeFactor(basisA, alphaStored, r, dIn);
      const beta = solveB(this.problem, aStored, Float64Array.from(this.fit.beta), this.base.fit);
      refit = { blockA, aStored, aMaxAbs: maxAbsOf(aStored.data), beta };
      this.refits.set(key, refit);
    }
    const blockB = quantize(refit.beta, quantB, { clipSearch: true });
    const betaStored = new Float64Array(basisB.k);
    dequantize(blockB, betaStored);
    const bStored = synthesizeFactor(basisB, betaStored, dOut, r);
    const error = relativeErrorToSvd(this.svd, s0, bStored, refit.aStored);
    const deliveredError = this.target.deliverA === undefined && this.target.deliverB === undefined
      ? error
      : relativeErrorToSvd(this.svd, s0, roundForDelivery(bStored, this.target.deliverB), roundForDelivery(refit.aStored, this.target.deliverA));
    // The settings hold what is stored (a rice request becomes its ["rice", count, bytes] spec).
    return {
      settings: { ...this.base, quantA: refit.blockA.mode, quantB: blockB.mode }, blockA: refit.blockA, blockB, error, deliveredError,
      fitError: this.fit.error, maxAbs: { a: refit.aMaxAbs, b: maxAbsOf(bStored.data) },
    };
  }
}

export function compressLayer(target: LayerTarget, settings: LayerRecipe): CompressedLayer {
  const { quantA, quantB, ...base } = settings;
  return new LayerFitter(target, base).store(quantA, quantB);
}

/** Rebuild the factors (A: rank×d_in, B: d_out×rank) from stored blocks. */
export function expandLayer(
  settings: Pick<LayerSettings, 'rank' | 'k' | 'l' | 'basis' | 'seedA' | 'seedB'>,
  dIn: number,
  dOut: number,
  blockA: QuantizedBlock,
  blockB: QuantizedBlock,
): { a: Mat; b: Mat } {
  const { rank: r, k, l, basis } = settings;
  // A layer that keeps nothing stores nothing (docs/FORMAT.md): both factors zero.
  if (k === 0 && l === 0) return { a: mat(r, dIn), b: mat(dOut, r) };
  const alpha = new Float64Array(k), beta = new Float64Array(l);
  dequantize(blockA, alpha);
  dequantize(blockB, beta);
  const a = synthesizeFactor(createBasis(basis, settings.seedA, k, 'A', r, dIn), alpha, r, dIn);
  const b = synthesizeFactor(createBasis(basis, settings.seedB, l, 'B', r, dOut), beta, dOut, r);
  return { a, b };
}
