/**
 * Least squares over a basis: min_c ‖G(S c) − y‖ for a linear "mixing" map G that acts on the
 * synthesized factor (row mixing by BᵀB for factor A, column mixing by AAᵀ for factor B).
 * Normal equations Sᵀ G S c = Sᵀ g are solved by conjugate gradients with a few passes over the
 * basis each, or, for small problems, by a dense Cholesky solve on the explicit k×k matrix.
 */
import { CholeskyDecomposition, Matrix } from 'ml-matrix';
import type { Basis } from './basis.js';

/** Dense solve when 2·k²·n stays below this many multiply-adds. */
export const DENSE_SOLVE_FLOPS = 1.5e8;

export interface SolveOptions {
  maxIter: number;
  /** Stop when ‖residual‖ ≤ tol · ‖rhs‖. */
  tol: number;
}

/**
 * Solve Sᵀ G S c = rhs (rhs already analyzed) starting from c (updated in place).
 * `mix(x, out)` applies G to a synthesized factor (length n). G must be symmetric PSD.
 */
export function solveNormal(
  basis: Basis,
  mix: (x: Float64Array, out: Float64Array) => void,
  rhs: Float64Array,
  c: Float64Array,
  opts: SolveOptions,
): void {
  const { k, n } = basis;
  const full = new Float64Array(n), mixed = new Float64Array(n);
  const apply = (v: Float64Array, out: Float64Array): void => {
    basis.synthesize(v, full);
    mix(full, mixed);
    basis.analyze(mixed, out);
  };
  if (2 * k * k * n <= DENSE_SOLVE_FLOPS && !basis.orthonormal) {
    denseSolve(k, apply, rhs, c);
    return;
  }
  conjugateGradient(k, apply, rhs, c, opts);
}

function denseSolve(k: number, apply: (v: Float64Array, out: Float64Array) => void, rhs: Float64Array, c: Float64Array): void {
  const h = new Matrix(k, k);
  const e = new Float64Array(k), col = new Float64Array(k);
  let trace = 0;
  for (let j = 0; j < k; j++) {
    e.fill(0);
    e[j] = 1;
    apply(e, col);
    for (let i = 0; i < k; i++) h.set(i, j, col[i]);
    trace += col[j];
  }
  // Symmetrize (round-off) and add a ridge far below any meaningful eigenvalue, so that a
  // singular mixing (a zero column in the other factor) still gives the minimum-norm-like answer.
  const ridge = 1e-12 * (trace / k || 1);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < i; j++) {
      const v = 0.5 * (h.get(i, j) + h.get(j, i));
      h.set(i, j, v);
      h.set(j, i, v);
    }
    h.set(i, i, h.get(i, i) + ridge);
  }
  const chol = new CholeskyDecomposition(h);
  if (!chol.isPositiveDefinite()) {
    conjugateGradient(k, apply, rhs, c, { maxIter: 4 * k, tol: 1e-10 });
    return;
  }
  const x = chol.solve(Matrix.columnVector(Array.from(rhs)));
  for (let i = 0; i < k; i++) c[i] = x.get(i, 0);
}

function conjugateGradient(
  k: number,
  apply: (v: Float64Array, out: Float64Array) => void,
  rhs: Float64Array,
  x: Float64Array,
  { maxIter, tol }: SolveOptions,
): void {
  const r = new Float64Array(k), p = new Float64Array(k), hp = new Float64Array(k);
  // A zero start (the first solve of a fit) has a zero product: skip its two passes over the basis.
  if (x.some((v) => v !== 0)) apply(x, hp);
  let rhsNorm2 = 0;
  for (let i = 0; i < k; i++) {
    r[i] = rhs[i] - hp[i];
    p[i] = r[i];
    rhsNorm2 += rhs[i] * rhs[i];
  }
  if (rhsNorm2 === 0) {
    x.fill(0);
    return;
  }
  let rr = dot(r, r);
  const stop = tol * tol * rhsNorm2;
  for (let it = 0; it < maxIter && rr > stop; it++) {
    apply(p, hp);
    const php = dot(p, hp);
    if (!(php > 0)) break;
    const step = rr / php;
    for (let i = 0; i < k; i++) {
      x[i] += step * p[i];
      r[i] -= step * hp[i];
    }
    const rrNew = dot(r, r);
    const beta = rrNew / rr;
    rr = rrNew;
    for (let i = 0; i < k; i++) p[i] = r[i] + beta * p[i];
  }
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}
