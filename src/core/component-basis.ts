/**
 * The `orthogonal-components` basis family: one seeded orthogonal rotation per rank-1 component, so
 * that each component's coefficients can be stored at their own step (docs/FORMAT.md,
 * "Component basis"; docs/ALGORITHM.md for why). Always at full span. For a factor with `count`
 * components of length `len` (A: rank rows of d_in; B: rank columns of d_out):
 *
 *   coefficients c = [c_0 | c_1 | … | c_{count−1}],  c_i of length len (component-major)
 *   component i of the factor = orthogonal basis (seed_i, k = len, n = len) synthesized from c_i
 *   seed_i = u32(seed, COMPONENT_SEED_ROW, i)
 *   A (layout 'rows'):  row i of the rank × d_in factor = component i
 *   B (layout 'cols'):  column i of the d_out × rank factor = component i
 *
 * It is orthonormal (a block-diagonal of orthonormal blocks, up to the layout's permutation), so
 * least squares is analysis and the full-span fit is exact.
 */
import type { Basis } from './basis.js';
import { createOrthogonalBasis } from './orthogonal-basis.js';
import { u32 } from './generator.js';

/** Generator row that derives each component's seed (rows 0 and 1 are the orthogonal family's own). */
export const COMPONENT_SEED_ROW = 2;

export type ComponentLayout = 'rows' | 'cols';

/** Seed of component i. */
export function componentSeed(seed: number, i: number): number {
  return u32(seed, COMPONENT_SEED_ROW, i);
}

class ComponentBasis implements Basis {
  readonly family = 'orthogonal-components' as const;
  readonly orthonormal = true;
  readonly k: number;
  readonly n: number;
  private readonly parts: Basis[];
  private readonly coeffs: Float64Array;
  private readonly vector: Float64Array;

  constructor(seed: number, private readonly count: number, private readonly len: number, private readonly layout: ComponentLayout) {
    this.k = this.n = count * len;
    this.parts = Array.from({ length: count }, (_, i) => createOrthogonalBasis(componentSeed(seed, i), len, len));
    this.coeffs = new Float64Array(len);
    this.vector = new Float64Array(len);
  }

  synthesize(c: ArrayLike<number>, out: Float64Array): void {
    const { count, len, coeffs, vector } = this;
    checkLengths(c.length, out.length, this.n);
    for (let i = 0; i < count; i++) {
      for (let j = 0; j < len; j++) coeffs[j] = c[i * len + j];
      this.parts[i].synthesize(coeffs, vector);
      if (this.layout === 'rows') out.set(vector, i * len);
      else for (let j = 0; j < len; j++) out[j * count + i] = vector[j];
    }
  }

  analyze(x: ArrayLike<number>, out: Float64Array): void {
    const { count, len, coeffs, vector } = this;
    checkLengths(out.length, x.length, this.n);
    for (let i = 0; i < count; i++) {
      if (this.layout === 'rows') for (let j = 0; j < len; j++) vector[j] = x[i * len + j];
      else for (let j = 0; j < len; j++) vector[j] = x[j * count + i];
      this.parts[i].analyze(vector, coeffs);
      out.set(coeffs, i * len);
    }
  }
}

function checkLengths(coeffLength: number, vectorLength: number, n: number): void {
  if (coeffLength < n || vectorLength < n) throw new RangeError(`component basis (n=${n}): got arrays of length ${coeffLength} and ${vectorLength}`);
}

/** `count` components of length `len`, laid out as rows (A) or columns (B) of the factor. */
export function createComponentBasis(seed: number, count: number, len: number, layout: ComponentLayout): Basis {
  return new ComponentBasis(seed, count, len, layout);
}
