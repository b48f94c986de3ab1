/**
 * Low-rank algebra: norms, errors and SVDs of products X·Y (X tall d_out×p, Y wide p×d_in)
 * without ever forming the d_out×d_in matrix. Everything reduces to thin QRs and a p×p SVD.
 */
import { SingularValueDecomposition, Matrix } from 'ml-matrix';
import { frobDot, mat, matmul, matmulNT, matmulTN, qrThin, transpose, type Mat } from './matrix.js';

/** A term coef · X · Y of a low-rank sum. */
export interface LowRankTerm {
  coef: number;
  x: Mat;
  y: Mat;
}

/** Stack Σ coef_t X_t Y_t into one product [c_1 X_1 | c_2 X_2 | …] · [Y_1; Y_2; …]. */
function stack(terms: LowRankTerm[]): { x: Mat; y: Mat } {
  const rows = terms[0].x.rows, cols = terms[0].y.cols;
  const p = terms.reduce((acc, t) => acc + t.x.cols, 0);
  const x = mat(rows, p), y = mat(p, cols);
  let off = 0;
  for (const t of terms) {
    if (t.x.rows !== rows || t.y.cols !== cols || t.x.cols !== t.y.rows) {
      throw new RangeError('low-rank terms have inconsistent shapes');
    }
    const w = t.x.cols;
    for (let i = 0; i < rows; i++) for (let j = 0; j < w; j++) x.data[i * p + off + j] = t.coef * t.x.data[i * w + j];
    y.data.set(t.y.data, off * cols);
    off += w;
  }
  return { x, y };
}

/** The small core R_X · R_Yᵀ whose singular values are those of Σ coef X Y. */
function core(terms: LowRankTerm[]): { qx: Mat; qy: Mat; c: Mat } {
  const { x, y } = stack(terms);
  const { q: qx, r: rx } = qrThin(x);
  const { q: qy, r: ry } = qrThin(transpose(y));
  return { qx, qy, c: matmulNT(rx, ry) };
}

/** Frobenius norm of Σ coef·X·Y. */
export function lowRankNorm(terms: LowRankTerm[]): number {
  const { c } = core(terms);
  let s = 0;
  for (let i = 0; i < c.data.length; i++) s += c.data[i] * c.data[i];
  return Math.sqrt(s);
}

export interface LowRankSvd {
  /** d_out × p, orthonormal columns. */
  u: Mat;
  /** Singular values, descending, length p. */
  sigma: Float64Array;
  /** p × d_in, orthonormal rows. */
  vt: Mat;
}

/** SVD of Σ coef·X·Y through thin QRs of both sides and a p×p SVD. */
export function lowRankSvd(terms: LowRankTerm[]): LowRankSvd {
  const { qx, qy, c } = core(terms);
  const p = c.rows;
  const svd = new SingularValueDecomposition(new Matrix(toRows(c)), { autoTranspose: true });
  const uc = svd.leftSingularVectors, vc = svd.rightSingularVectors;
  const sv = svd.diagonal;
  const order = sv.map((_, i) => i).sort((a, b) => sv[b] - sv[a]);
  const ucm = mat(p, p), vcm = mat(p, p);
  const sigma = new Float64Array(p);
  order.forEach((src, dst) => {
    sigma[dst] = Math.max(0, sv[src]);
    for (let i = 0; i < p; i++) {
      ucm.data[i * p + dst] = uc.get(i, src);
      vcm.data[i * p + dst] = vc.get(i, src);
    }
  });
  return { u: matmul(qx, ucm), sigma, vt: transpose(matmul(qy, vcm)) };
}

function toRows(m: Mat): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < m.rows; i++) out.push(Array.from(m.data.subarray(i * m.cols, (i + 1) * m.cols)));
  return out;
}

/** ‖s0·B0·A0 − s·B·A‖ / ‖s0·B0·A0‖ (1 when the target is zero and the approximation is not). */
export function relativeError(s0: number, b0: Mat, a0: Mat, s: number, b: Mat, a: Mat): number {
  const target = lowRankNorm([{ coef: s0, x: b0, y: a0 }]);
  const diff = lowRankNorm([{ coef: s0, x: b0, y: a0 }, { coef: -s, x: b, y: a }]);
  if (target === 0) return diff === 0 ? 0 : 1;
  return diff / target;
}

/**
 * Relative error of the best rank-t approximation (Eckart–Young) given all singular values:
 * sqrt(Σ_{i≥t} σ_i²) / sqrt(Σ σ_i²).
 */
export function truncationError(sigma: Float64Array, t: number): number {
  let total = 0, tail = 0;
  for (let i = 0; i < sigma.length; i++) {
    total += sigma[i] * sigma[i];
    if (i >= t) tail += sigma[i] * sigma[i];
  }
  return total === 0 ? 0 : Math.sqrt(tail / total);
}

/**
 * ‖T − s·B·A‖ / ‖T‖ for a target given by its SVD T = U·diag(σ)·Vᵀ, through r×r Grams:
 * ‖T‖² − 2s⟨T, BA⟩ + s²⟨BᵀB, AAᵀ⟩. Much cheaper than the stacked QR, and accurate while the
 * error is not tiny; below 1e-3 (where cancellation would cost digits) it defers to the QR path.
 */
export function relativeErrorToSvd(svd: LowRankSvd, s: number, b: Mat, a: Mat): number {
  const p = svd.sigma.length;
  let t2 = 0;
  for (let i = 0; i < p; i++) t2 += svd.sigma[i] * svd.sigma[i];
  if (t2 === 0) return lowRankNorm([{ coef: s, x: b, y: a }]) === 0 ? 0 : 1;
  const utb = matmulTN(svd.u, b); // p × r
  const av = matmulNT(a, svd.vt); // r × p
  let cross = 0;
  const r = b.cols;
  for (let i = 0; i < p; i++) for (let q = 0; q < r; q++) cross += svd.sigma[i] * utb.data[i * r + q] * av.data[q * p + i];
  const self = frobDot(matmulTN(b, b).data, matmulNT(a, a).data);
  const diff2 = t2 - 2 * s * cross + s * s * self;
  if (diff2 < 1e-6 * t2) {
    const tu = mat(svd.u.rows, p);
    for (let i = 0; i < svd.u.rows; i++) for (let j = 0; j < p; j++) tu.data[i * p + j] = svd.u.data[i * p + j] * svd.sigma[j];
    return lowRankNorm([{ coef: 1, x: tu, y: svd.vt }, { coef: -s, x: b, y: a }]) / Math.sqrt(t2);
  }
  return Math.sqrt(diff2 / t2);
}
