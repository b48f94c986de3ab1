/**
 * A basis family turns k coefficients into a flattened factor of n entries (synthesis) and a
 * flattened factor into k inner products (analysis). Every solver is written against this
 * interface, so the uniform (paper) and orthogonal families share one fitter.
 */
export type BasisFamily = 'uniform' | 'orthogonal' | 'orthogonal-components';

export interface Basis {
  readonly family: BasisFamily;
  /** Number of basis elements (coefficients). */
  readonly k: number;
  /** Length of each basis element = rows·cols of the factor, row-major. */
  readonly n: number;
  /** out[0..n) = Σ_i c[i] · b_i, where b_i includes the family's normalization. Overwrites out. */
  synthesize(c: ArrayLike<number>, out: Float64Array): void;
  /** out[0..k) = <b_i, x> for i < k. Overwrites out. */
  analyze(x: ArrayLike<number>, out: Float64Array): void;
  /** True when the b_i are orthonormal (analysis is then the least-squares projection). */
  readonly orthonormal: boolean;
}
