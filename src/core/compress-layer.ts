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
import { fitLayer, solveB, synthesizeFactor, targetSvd, type FitOptions } from './fit.js';
import { relativeError, truncationError, type LowRankSvd } from './lowrank.js';
import type { Mat } from './matrix.js';
import { quantize, dequantize, type QuantizedBlock, type QuantMode } from './quantize.js';

export interface LayerSettings {
  rank: number;
  /** Coefficients for A (≤ rank·d_in) and for B (≤ d_out·rank). */
  k: number;
  l: number;
  basis: BasisFamily;
  quantA: QuantMode;
  quantB: QuantMode;
  seedA: number;
  seedB: number;
  fit?: Partial<FitOptions>;
}

export interface LayerTarget {
  a0: Mat;
  b0: Mat;
  s0: number;
  /** SVD of s0·B0·A0, computed once per layer and shared by every candidate setting. */
  svd?: LowRankSvd;
}

export interface CompressedLayer {
  settings: LayerSettings;
  blockA: QuantizedBlock;
  blockB: QuantizedBlock;
  /** Relative Frobenius error of the stored (dequantized) coefficients. */
  error: number;
  /** Error before rounding the coefficients (the fit alone). */
  fitError: number;
}

export function createBasis(family: BasisFamily, seed: number, k: number, n: number): Basis {
  return family === 'uniform' ? createUniformBasis(seed, k, n) : createOrthogonalBasis(seed, k, n);
}

export function compressLayer(target: LayerTarget, settings: LayerSettings): CompressedLayer {
  const { a0, b0, s0 } = target;
  const { rank: r, k, l, basis } = settings;
  const dIn = a0.cols, dOut = b0.rows;
  const svd = target.svd ?? targetSvd({ a0, b0, s0 });
  const basisA = createBasis(basis, settings.seedA, k, r * dIn);
  const basisB = createBasis(basis, settings.seedB, l, dOut * r);
  const problem = { a0, b0, s0, scale: s0, rank: r, basisA, basisB };

  // At full span of an orthonormal basis the fit is exact up to the rank truncation: no
  // iterations can improve on the first projection.
  const floor = truncationError(svd.sigma, r);
  const fit = fitLayer(problem, { ...settings.fit, svd, stopAtError: floor });

  const blockA = quantize(fit.alpha, settings.quantA);
  const alphaStored = new Float64Array(k);
  dequantize(blockA, alphaStored);
  const aStored = synthesizeFactor(basisA, alphaStored, r, dIn);
  const beta = solveB(problem, aStored, fit.beta, settings.fit);
  const blockB = quantize(beta, settings.quantB);
  const betaStored = new Float64Array(l);
  dequantize(blockB, betaStored);
  const bStored = synthesizeFactor(basisB, betaStored, dOut, r);
  const error = relativeError(s0, b0, a0, s0, bStored, aStored);
  return { settings, blockA, blockB, error, fitError: fit.error };
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
  const alpha = new Float64Array(k), beta = new Float64Array(l);
  dequantize(blockA, alpha);
  dequantize(blockB, beta);
  const a = synthesizeFactor(createBasis(basis, settings.seedA, k, r * dIn), alpha, r, dIn);
  const b = synthesizeFactor(createBasis(basis, settings.seedB, l, dOut * r), beta, dOut, r);
  return { a, b };
}
