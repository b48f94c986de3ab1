/**
 * How few bits a data-free coder could spend on a layer at a relative error bound: the
 * rate–distortion estimates the report compares each layer with (docs/ALGORITHM.md, "How close to
 * the limit").
 *
 * For ΔW with singular values σ_1 ≥ … ≥ σ_r, λ_i = σ_i² and the allowed squared error
 * D = E²·Σλ_i, reverse water-filling finds θ with Σ min(θ, λ_i) = D; a kept component (λ_i > θ)
 * carries distortion θ.
 *
 * - `gaussianBits` (the estimate of the issue that asked for it): each rank-1 component as
 *   m = d_out + d_in − 1 Gaussian degrees of freedom sharing its energy, R = Σ (m/2)·log2(λ_i/θ).
 * - `manifoldBits`: the high-resolution rate of a rank-1 matrix σ·u·vᵀ with u, v uniform on their
 *   spheres (no structure a data-free coder could know). The error of a perturbed component is
 *   σ²(‖δu‖² + ‖δv‖²) to first order, and a direction on the sphere S^(d−1) has per-coordinate
 *   variance 1/d, so coding u and v to squared errors x/σ² and y/σ² with x + y = θ costs
 *   (d_out/2)·log2(λ/y) + (d_in/2)·log2(λ/x) bits, least at x : y = d_in : d_out:
 *     R_i = (m/2)·log2(λ_i/θ) + (d_in/2)·log2((d_in + d_out)/d_in) + (d_out/2)·log2((d_in + d_out)/d_out)
 *   (up to the one shared degree of freedom). The extra terms are the entropy the Gaussian model
 *   leaves out: a component's energy is not spread over its m degrees of freedom like a Gaussian's;
 *   for d_in = d_out it is half a bit per degree of freedom. Any coder of isotropic components,
 *   factored or not, pays it; it is the bound nola can be measured against.
 *
 * Both are estimates at high resolution (the Gaussian is the hardest source of its variance; real
 * singular vectors may have structure a data-free coder does not know of).
 */

export interface RdEstimate {
  /** The water level θ (squared-error units of ΔW). */
  theta: number;
  /** Components kept (λ_i > θ). */
  kept: number;
  /** Bits of the Gaussian estimate. */
  gaussianBits: number;
  /** Bits of the isotropic rank-1 (manifold) bound. */
  manifoldBits: number;
  /** Degrees of freedom of the kept components, kept·(d_in + d_out − 1). */
  dof: number;
}

/** The estimates for one layer with singular values `sigma` (any order) at relative error `maxError` ∈ (0, 1). */
export function rdEstimate(sigma: ArrayLike<number>, dIn: number, dOut: number, maxError: number): RdEstimate {
  const lambda = Array.from(sigma, (s) => s * s).filter((x) => x > 0);
  const total = lambda.reduce((a, b) => a + b, 0);
  if (total === 0) return { theta: 0, kept: 0, gaussianBits: 0, manifoldBits: 0, dof: 0 };
  const d = maxError * maxError * total;
  const theta = waterLevel(lambda, d);
  const m = dIn + dOut - 1;
  const extra = (dIn / 2) * Math.log2((dIn + dOut) / dIn) + (dOut / 2) * Math.log2((dIn + dOut) / dOut);
  let gaussianBits = 0, kept = 0;
  for (const l of lambda) {
    if (l <= theta) continue;
    kept++;
    gaussianBits += (m / 2) * Math.log2(l / theta);
  }
  return { theta, kept, gaussianBits, manifoldBits: gaussianBits + kept * extra, dof: kept * m };
}

/** θ with Σ min(θ, λ_i) = d (bisection; the sum grows with θ from 0 to Σλ_i). */
function waterLevel(lambda: number[], d: number): number {
  let lo = 0, hi = Math.max(...lambda);
  for (let i = 0; i < 200 && hi - lo > 1e-15 * hi; i++) {
    const mid = (lo + hi) / 2;
    const used = lambda.reduce((acc, l) => acc + Math.min(mid, l), 0);
    if (used > d) hi = mid;
    else lo = mid;
  }
  return lo;
}
