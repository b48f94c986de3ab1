/**
 * Fitting NOLA coefficients to one LoRA layer.
 *
 * Target  T = s0 · B0 · A0          (B0: d_out×r0, A0: r0×d_in), never formed.
 * Model   T̂ = s · B(β) · A(α)       A(α) = S_A α reshaped r×d_in, B(β) = S_B β reshaped d_out×r.
 *
 * 1. Balanced SVD start: T ≈ U Σ Vᵀ (rank r); B* = U √(Σ/s), A* = √(Σ/s) Vᵀ; β ← LS fit of B*.
 * 2. Alternating least squares: α ← argmin ‖T − s B A(α)‖ given β, then β given α.
 * 3. Gradient refinement of the joint objective by nonlinear conjugate gradients (Polak–Ribière+)
 *    with an exact line search: along a direction the objective is a quartic in the step, whose
 *    coefficients are low-rank inner products (r×r Grams), so the minimizing step is found in
 *    closed form.
 * All arithmetic is float64; no d_out×d_in matrix is ever formed.
 */
import type { Basis } from './basis.js';
import { mat, frobDot, transpose, type Mat } from './matrix.js';
// Same arithmetic as matrix.ts's products (bit-identical), faster for the tall d×r factors.
import { matmul, matmulNT, matmulTN } from './kernels/dense.js';
import { lowRankSvd, relativeError, truncationError, type LowRankSvd } from './lowrank.js';
import { solveNormal } from './solve.js';
import { Matrix, pseudoInverse } from 'ml-matrix';

export interface FitProblem {
  a0: Mat;
  b0: Mat;
  s0: number;
  /** Scale s of the NOLA layer (the fit absorbs any difference from s0). */
  scale: number;
  rank: number;
  basisA: Basis;
  basisB: Basis;
}

export interface FitOptions {
  /** Maximum ALS rounds (each: one α solve and one β solve). */
  alsRounds: number;
  /** Maximum gradient-refinement iterations. */
  refineIters: number;
  /** CG settings for each least-squares solve. */
  cgMaxIter: number;
  cgTol: number;
  /** Stop ALS / refinement when the relative error improves by less than this. */
  tol: number;
  /** Precomputed SVD of the target (reused by callers that also need the spectrum). */
  svd?: LowRankSvd;
  /** Skip iterating once the error is within 1e-9 (relative) of this floor (e.g. the rank-truncation error). */
  stopAtError?: number;
}

export const DEFAULT_FIT_OPTIONS: FitOptions = {
  alsRounds: 5,
  refineIters: 30,
  cgMaxIter: 20,
  cgTol: 1e-4,
  tol: 1e-5,
};

export interface FitResult {
  alpha: Float64Array;
  beta: Float64Array;
  /** Relative Frobenius error after each stage: [start, als..., refined]. */
  history: number[];
  error: number;
}

export function targetSvd(p: Pick<FitProblem, 'a0' | 'b0' | 's0'>): LowRankSvd {
  return lowRankSvd([{ coef: p.s0, x: p.b0, y: p.a0 }]);
}

/** Balanced rank-r split of the target: s·B·A = the best rank-r approximation of T. */
export function balancedFactors(svd: LowRankSvd, rank: number, scale: number): { a: Mat; b: Mat } {
  const dOut = svd.u.rows, dIn = svd.vt.cols, p = svd.sigma.length;
  const a = mat(rank, dIn), b = mat(dOut, rank);
  for (let t = 0; t < Math.min(rank, p); t++) {
    const w = Math.sqrt(svd.sigma[t] / Math.abs(scale));
    const sign = scale < 0 ? -1 : 1;
    for (let i = 0; i < dOut; i++) b.data[i * rank + t] = svd.u.data[i * p + t] * w * sign;
    for (let j = 0; j < dIn; j++) a.data[t * dIn + j] = svd.vt.data[t * dIn + j] * w;
  }
  return { a, b };
}

function fullSpanOrthonormal(basis: Basis): boolean {
  return basis.orthonormal && basis.k === basis.n;
}

export function synthesizeFactor(basis: Basis, c: ArrayLike<number>, rows: number, cols: number): Mat {
  const m = mat(rows, cols);
  basis.synthesize(c, m.data);
  return m;
}

export function fitLayer(problem: FitProblem, options: Partial<FitOptions> = {}): FitResult {
  const o = { ...DEFAULT_FIT_OPTIONS, ...options };
  const { a0, b0, s0, scale: s, rank: r, basisA, basisB } = problem;
  const dIn = a0.cols, dOut = b0.rows;
  if (basisA.n !== r * dIn || basisB.n !== dOut * r) throw new RangeError('basis sizes do not match the factor shapes');
  const svd = o.svd ?? targetSvd(problem);
  const start = balancedFactors(svd, r, s);
  const cg = { maxIter: o.cgMaxIter, tol: o.cgTol };

  const alpha = new Float64Array(basisA.k), beta = new Float64Array(basisB.k);
  if (fullSpanOrthonormal(basisA) && fullSpanOrthonormal(basisB)) {
    // A square orthogonal basis: least squares is the analysis itself, and s·B·A is exactly the
    // rank-r truncation, whose error Eckart–Young gives from the spectrum. Nothing to iterate.
    basisA.analyze(start.a.data, alpha);
    basisB.analyze(start.b.data, beta);
    const error = truncationError(svd.sigma, r);
    return { alpha, beta, history: [error], error };
  }
  const rhsA = new Float64Array(basisA.k), rhsB = new Float64Array(basisB.k);
  // β ← argmin ‖B(β) − B*‖, α ← argmin ‖A(α) − A*‖ (identity mixing).
  const identity = (x: Float64Array, out: Float64Array): void => out.set(x);
  basisB.analyze(start.b.data, rhsB);
  solveNormal(basisB, identity, rhsB, beta, cg);
  basisA.analyze(start.a.data, rhsA);
  solveNormal(basisA, identity, rhsA, alpha, cg);

  let a = synthesizeFactor(basisA, alpha, r, dIn);
  let b = synthesizeFactor(basisB, beta, dOut, r);
  const history = [relativeError(s0, b0, a0, s, b, a)];
  const atFloor = (e: number): boolean => o.stopAtError !== undefined && e <= o.stopAtError + 1e-9 * Math.max(1, o.stopAtError);
  if (atFloor(history[0])) return { alpha, beta, history, error: history[0] };

  for (let round = 0; round < o.alsRounds; round++) {
    // α-step: Sᵀ(s²·BᵀB ⊗ I)S α = Sᵀ vec(s·s0·(BᵀB0)·A0)
    const m = matmulTN(b, b);
    const rhsMat = matmul(matmulTN(b, b0), a0);
    basisA.analyze(scaled(rhsMat.data, s * s0), rhsA);
    solveNormal(basisA, (x, out) => mixRows(m, x, dIn, s * s, out), rhsA, alpha, cg);
    a = synthesizeFactor(basisA, alpha, r, dIn);
    solveB(problem, a, beta, o);
    b = synthesizeFactor(basisB, beta, dOut, r);
    const err = relativeError(s0, b0, a0, s, b, a);
    const prev = history[history.length - 1];
    history.push(err);
    if (atFloor(err)) return { alpha, beta, history, error: err };
    if (prev - err < o.tol * Math.max(prev, 1e-30)) break;
  }

  const refined = refine(problem, alpha, beta, o);
  history.push(refined);
  return { alpha, beta, history, error: refined };
}

/**
 * β-step: argmin_β ‖T − s·B(β)·A‖ for a given A, i.e. Sᵀ(I ⊗ s²·AAᵀ)S β = Sᵀ vec(s·s0·B0·(A0Aᵀ)).
 * Starts from (and overwrites) `beta`; returns it.
 */
export function solveB(p: FitProblem, a: Mat, beta: Float64Array, options: Partial<FitOptions> = {}): Float64Array {
  const o = { ...DEFAULT_FIT_OPTIONS, ...options };
  const { a0, b0, s0, scale: s, basisB } = p;
  const dOut = b0.rows;
  const nn = matmulNT(a, a);
  const rhsMat = matmul(b0, matmulNT(a0, a));
  if (fullSpanOrthonormal(basisB)) {
    // Full span of an orthonormal basis: solve B·(s²AAᵀ) = s·s0·B0A0Aᵀ in the r×r space, then
    // rotate into coefficients with one analysis. Exact; no iterations.
    const sol = solveRightSpd(nn, rhsMat, s, s0);
    basisB.analyze(sol.data, beta);
    return beta;
  }
  const rhs = new Float64Array(basisB.k);
  basisB.analyze(scaled(rhsMat.data, s * s0), rhs);
  solveNormal(basisB, (x, out) => mixCols(nn, x, dOut, s * s, out), rhs, beta, { maxIter: o.cgMaxIter, tol: o.cgTol });
  return beta;
}

/** X with X·(s²·N) = s·s0·R, i.e. X = (s0/s)·R·N⁻¹ for symmetric PSD N (ridge-regularized if singular). */
function solveRightSpd(nn: Mat, rhs: Mat, s: number, s0: number): Mat {
  const r = nn.rows;
  const n = new Matrix(r, r);
  let trace = 0;
  for (let i = 0; i < r; i++) { for (let j = 0; j < r; j++) n.set(i, j, nn.data[i * r + j]); trace += nn.data[i * r + i]; }
  for (let i = 0; i < r; i++) n.set(i, i, n.get(i, i) + 1e-14 * (trace / r || 1));
  const pinv = pseudoInverse(n);
  // Read the r×r inverse out of ml-matrix once: its accessor in the d_out·r·r loop cost more than the products.
  const inv = new Float64Array(r * r);
  for (let p = 0; p < r; p++) for (let j = 0; j < r; j++) inv[p * r + j] = pinv.get(p, j);
  const out = mat(rhs.rows, r);
  for (let i = 0; i < rhs.rows; i++) {
    for (let j = 0; j < r; j++) {
      let acc = 0;
      for (let p = 0; p < r; p++) acc += rhs.data[i * r + p] * inv[p * r + j];
      out.data[i * r + j] = (acc * s0) / s;
    }
  }
  return out;
}

/** out = c · M · X  for X an r×cols matrix in flat form (row mixing). */
export function mixRows(m: Mat, x: Float64Array, cols: number, c: number, out: Float64Array): void {
  const r = m.rows;
  out.fill(0);
  for (let i = 0; i < r; i++) {
    for (let p = 0; p < r; p++) {
      const v = c * m.data[i * r + p];
      if (v === 0) continue;
      const oi = i * cols, xp = p * cols;
      for (let j = 0; j < cols; j++) out[oi + j] += v * x[xp + j];
    }
  }
}

/** out = c · X · N  for X a rows×r matrix in flat form (column mixing). */
export function mixCols(nn: Mat, x: Float64Array, rows: number, c: number, out: Float64Array): void {
  const r = nn.rows;
  for (let i = 0; i < rows; i++) {
    const xi = i * r;
    for (let j = 0; j < r; j++) {
      let acc = 0;
      for (let p = 0; p < r; p++) acc += x[xi + p] * nn.data[p * r + j];
      out[xi + j] = c * acc;
    }
  }
}

function scaled(x: Float64Array, c: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] * c;
  return out;
}

/**
 * Nonlinear CG on f(α,β) = ‖T − s·B(β)·A(α)‖² with exact quartic line search.
 * Updates alpha/beta in place; returns the final relative error.
 */
function refine(p: FitProblem, alpha: Float64Array, beta: Float64Array, o: FitOptions): number {
  const { a0, b0, s0, scale: s, rank: r, basisA, basisB } = p;
  const dIn = a0.cols, dOut = b0.rows;
  const ka = basisA.k, kb = basisB.k;
  const a = synthesizeFactor(basisA, alpha, r, dIn);
  const b = synthesizeFactor(basisB, beta, dOut, r);
  const t0 = relativeError(s0, b0, a0, s, b, a);
  const norm2 = squaredTargetNorm(p);
  if (norm2 === 0 || o.refineIters <= 0) return t0;

  const gA = new Float64Array(ka), gB = new Float64Array(kb);
  const dAlpha = new Float64Array(ka), dBeta = new Float64Array(kb);
  let gPrevA: Float64Array | undefined, gPrevB: Float64Array | undefined;
  let f = t0 * t0 * norm2;
  for (let it = 0; it < o.refineIters; it++) {
    gradient(p, a, b, gA, gB);
    let beta_ = 0;
    if (gPrevA !== undefined && gPrevB !== undefined) {
      let num = 0, den = 0;
      for (let i = 0; i < ka; i++) { num += gA[i] * (gA[i] - gPrevA[i]); den += gPrevA[i] * gPrevA[i]; }
      for (let i = 0; i < kb; i++) { num += gB[i] * (gB[i] - gPrevB[i]); den += gPrevB[i] * gPrevB[i]; }
      beta_ = den > 0 ? Math.max(0, num / den) : 0;
    }
    for (let i = 0; i < ka; i++) dAlpha[i] = -gA[i] + beta_ * dAlpha[i];
    for (let i = 0; i < kb; i++) dBeta[i] = -gB[i] + beta_ * dBeta[i];
    gPrevA = Float64Array.from(gA);
    gPrevB = Float64Array.from(gB);

    const da = synthesizeFactor(basisA, dAlpha, r, dIn);
    const db = synthesizeFactor(basisB, dBeta, dOut, r);
    const { step, value } = quarticLineSearch(p, a, b, da, db);
    if (!(step !== 0 && value < f)) {
      if (beta_ === 0) break;
      // Restart along steepest descent next time.
      dAlpha.fill(0); dBeta.fill(0); gPrevA = undefined; gPrevB = undefined;
      continue;
    }
    // Synthesis is linear: update the factors along the direction instead of re-synthesizing.
    for (let i = 0; i < ka; i++) alpha[i] += step * dAlpha[i];
    for (let i = 0; i < kb; i++) beta[i] += step * dBeta[i];
    for (let i = 0; i < a.data.length; i++) a.data[i] += step * da.data[i];
    for (let i = 0; i < b.data.length; i++) b.data[i] += step * db.data[i];
    const improved = f - value;
    f = value;
    if (improved < o.tol * o.tol * norm2) break;
  }
  return relativeError(s0, b0, a0, s, b, a);
}

function squaredTargetNorm(p: FitProblem): number {
  const gl = matmulTN(p.b0, p.b0), gr = matmulNT(p.a0, p.a0);
  return p.s0 * p.s0 * frobDot(gl.data, gr.data);
}

/** ∇ of f with respect to α and β. */
function gradient(p: FitProblem, a: Mat, b: Mat, gA: Float64Array, gB: Float64Array): void {
  const { a0, b0, s0, scale: s, basisA, basisB } = p;
  // BᵀR = s0 (BᵀB0) A0 − s (BᵀB) A ;  R Aᵀ = s0 B0 (A0Aᵀ) − s B (AAᵀ)
  const btr = matmul(matmulTN(b, b0), a0);
  const btba = matmul(matmulTN(b, b), a);
  for (let i = 0; i < btr.data.length; i++) btr.data[i] = -2 * s * (s0 * btr.data[i] - s * btba.data[i]);
  basisA.analyze(btr.data, gA);
  const rat = matmul(b0, matmulNT(a0, a));
  const baat = matmul(b, matmulNT(a, a));
  for (let i = 0; i < rat.data.length; i++) rat.data[i] = -2 * s * (s0 * rat.data[i] - s * baat.data[i]);
  basisB.analyze(rat.data, gB);
}

/**
 * Minimize f(t) = ‖R0 − s t P − s t² Q‖² with R0 = s0B0A0 − sBA, P = dB·A + B·dA, Q = dB·dA.
 * Inner products of low-rank products: ⟨X1Y1, X2Y2⟩ = Σ (X1ᵀX2) ∘ (Y1Y2ᵀ).
 */
export function quarticLineSearch(p: FitProblem, a: Mat, b: Mat, da: Mat, db: Mat): { step: number; value: number } {
  const { a0, b0, s0, scale: s } = p;
  const lefts = [b0, b, db], rights = [a0, a, da];
  // Gram tables of the three left and three right factors. XᵀY and YᵀX are transposes of each
  // other bit for bit (the same products summed in the same order), and B0ᵀB0, A0A0ᵀ do not change
  // during a fit: 5 + 5 products per step instead of 9 + 9, same numbers.
  const gl = gramTable(lefts, matmulTN, sourceGrams.left);
  const gr = gramTable(rights, matmulNT, sourceGrams.right);
  type Terms = Array<[number, number, number]>; // [coef, left index, right index]
  const ip = (u: Terms, v: Terms): number => {
    let acc = 0;
    for (const [cu, lu, ru] of u) for (const [cv, lv, rv] of v) acc += cu * cv * frobDot(gl[lu][lv].data, gr[ru][rv].data);
    return acc;
  };
  const R0: Terms = [[s0, 0, 0], [-s, 1, 1]];
  const P: Terms = [[1, 2, 1], [1, 1, 2]];
  const Q: Terms = [[1, 2, 2]];
  const c0 = ip(R0, R0);
  const c1 = -2 * s * ip(R0, P);
  const c2 = s * s * ip(P, P) - 2 * s * ip(R0, Q);
  const c3 = 2 * s * s * ip(P, Q);
  const c4 = s * s * ip(Q, Q);
  const f = (t: number): number => c0 + t * (c1 + t * (c2 + t * (c3 + t * c4)));
  let best = { step: 0, value: c0 };
  for (const t of realCubicRoots(4 * c4, 3 * c3, 2 * c2, c1)) {
    const v = f(t);
    if (Number.isFinite(v) && v < best.value) best = { step: t, value: v };
  }
  return best;
}

/** Products of the source factor with itself, cached per factor object (they are fixed during a fit). */
const sourceGrams = { left: new WeakMap<Mat, Mat>(), right: new WeakMap<Mat, Mat>() };

function gramTable(xs: Mat[], product: (x: Mat, y: Mat) => Mat, cache: WeakMap<Mat, Mat>): Mat[][] {
  const g: Mat[][] = xs.map(() => []);
  for (let i = 0; i < xs.length; i++) {
    for (let j = i; j < xs.length; j++) {
      let m: Mat;
      if (i === 0 && j === 0) {
        const hit = cache.get(xs[0]);
        m = hit ?? product(xs[0], xs[0]);
        if (hit === undefined) cache.set(xs[0], m);
      } else {
        m = product(xs[i], xs[j]);
      }
      g[i][j] = m;
      if (j !== i) g[j][i] = transpose(m);
    }
  }
  return g;
}

/** Real roots of a t³ + b t² + c t + d (degrades to quadratic/linear when leading terms vanish). */
export function realCubicRoots(a: number, b: number, c: number, d: number): number[] {
  const scale = Math.max(Math.abs(a), Math.abs(b), Math.abs(c), Math.abs(d));
  if (scale === 0) return [];
  if (Math.abs(a) <= 1e-14 * scale) {
    if (Math.abs(b) <= 1e-14 * scale) return c === 0 ? [] : [-d / c];
    const disc = c * c - 4 * b * d;
    if (disc < 0) return [];
    const q = -0.5 * (c + Math.sign(c || 1) * Math.sqrt(disc));
    const roots = [q / b];
    if (q !== 0) roots.push(d / q);
    return roots;
  }
  // Depressed cubic t = y − b/(3a): y³ + py + q = 0
  const bn = b / a, cn = c / a, dn = d / a;
  const p = cn - (bn * bn) / 3;
  const q = (2 * bn * bn * bn) / 27 - (bn * cn) / 3 + dn;
  const shift = -bn / 3;
  const disc = (q * q) / 4 + (p * p * p) / 27;
  let ys: number[];
  if (disc > 0) {
    const sq = Math.sqrt(disc);
    ys = [Math.cbrt(-q / 2 + sq) + Math.cbrt(-q / 2 - sq)];
  } else if (p === 0) {
    ys = [Math.cbrt(-q)];
  } else {
    const m = 2 * Math.sqrt(-p / 3);
    const theta = Math.acos(Math.max(-1, Math.min(1, ((3 * q) / (p * m)))) ) / 3;
    ys = [0, 1, 2].map((kk) => m * Math.cos(theta - (2 * Math.PI * kk) / 3));
  }
  // One Newton polish per root for accuracy.
  return ys.map((y) => {
    let t = y + shift;
    const fv = ((a * t + b) * t + c) * t + d;
    const dv = (3 * a * t + 2 * b) * t + c;
    if (dv !== 0) t -= fv / dv;
    return t;
  });
}
