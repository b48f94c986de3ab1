/**
 * Minimal dense row-major float64 matrices for the low-rank algebra. LoRA factors are tall and
 * thin (d × r with r ≲ 256), so everything here is O(d·r²) at worst; big dense products are
 * never formed.
 */
export interface Mat {
  rows: number;
  cols: number;
  data: Float64Array;
}

export function mat(rows: number, cols: number, data?: Float64Array): Mat {
  if (data !== undefined && data.length !== rows * cols) {
    throw new RangeError(`matrix data has ${data.length} entries, expected ${rows}x${cols}`);
  }
  return { rows, cols, data: data ?? new Float64Array(rows * cols) };
}

export function fromArray(rows: number, cols: number, src: ArrayLike<number>): Mat {
  const out = mat(rows, cols);
  for (let i = 0; i < out.data.length; i++) out.data[i] = src[i];
  return out;
}

export function transpose(a: Mat): Mat {
  const out = mat(a.cols, a.rows);
  const { rows, cols, data } = a;
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out.data[j * rows + i] = data[i * cols + j];
  return out;
}

/** C = A · B */
export function matmul(a: Mat, b: Mat): Mat {
  if (a.cols !== b.rows) throw new RangeError(`matmul ${a.rows}x${a.cols} · ${b.rows}x${b.cols}`);
  const out = mat(a.rows, b.cols);
  const n = b.cols;
  const ad = a.data, bd = b.data, od = out.data;
  for (let i = 0; i < a.rows; i++) {
    const oi = i * n;
    for (let p = 0; p < a.cols; p++) {
      const v = ad[i * a.cols + p];
      if (v === 0) continue;
      const bp = p * n;
      for (let j = 0; j < n; j++) od[oi + j] += v * bd[bp + j];
    }
  }
  return out;
}

/**
 * Aᵀ · B  (both with the same number of rows): the Gram-type product used for tall factors.
 * Every output sums its terms over the rows in order, skipping zero entries of A; rows are taken
 * four at a time with the running sum in a register (the same additions in the same order).
 */
export function matmulTN(a: Mat, b: Mat): Mat {
  if (a.rows !== b.rows) throw new RangeError(`matmulTN ${a.rows}x${a.cols}ᵀ · ${b.rows}x${b.cols}`);
  const out = mat(a.cols, b.cols);
  const p = a.cols, q = b.cols, ad = a.data, bd = b.data, od = out.data;
  const m = a.rows;
  let r = 0;
  for (; r + 4 <= m; r += 4) {
    const ar = r * p, br = r * q;
    for (let i = 0; i < p; i++) {
      const v0 = ad[ar + i], v1 = ad[ar + p + i], v2 = ad[ar + 2 * p + i], v3 = ad[ar + 3 * p + i];
      const oi = i * q;
      if (v0 !== 0 && v1 !== 0 && v2 !== 0 && v3 !== 0) {
        for (let j = 0; j < q; j++) {
          let s = od[oi + j];
          s += v0 * bd[br + j];
          s += v1 * bd[br + q + j];
          s += v2 * bd[br + 2 * q + j];
          s += v3 * bd[br + 3 * q + j];
          od[oi + j] = s;
        }
        continue;
      }
      for (let t = 0; t < 4; t++) {
        const v = ad[ar + t * p + i];
        if (v === 0) continue;
        const bt = br + t * q;
        for (let j = 0; j < q; j++) od[oi + j] += v * bd[bt + j];
      }
    }
  }
  for (; r < m; r++) {
    const ar = r * p, br = r * q;
    for (let i = 0; i < p; i++) {
      const v = ad[ar + i];
      if (v === 0) continue;
      const oi = i * q;
      for (let j = 0; j < q; j++) od[oi + j] += v * bd[br + j];
    }
  }
  return out;
}

/**
 * A · Bᵀ (both with the same number of columns): the Gram-type product used for wide factors.
 * Four dot products at a time share each load of A's row; each sums over t in order.
 */
export function matmulNT(a: Mat, b: Mat): Mat {
  if (a.cols !== b.cols) throw new RangeError(`matmulNT ${a.rows}x${a.cols} · ${b.rows}x${b.cols}ᵀ`);
  const out = mat(a.rows, b.rows);
  const n = a.cols, ad = a.data, bd = b.data, od = out.data;
  const br = b.rows;
  for (let i = 0; i < a.rows; i++) {
    const ai = i * n;
    let j = 0;
    for (; j + 4 <= br; j += 4) {
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      const b0 = j * n, b1 = b0 + n, b2 = b1 + n, b3 = b2 + n;
      for (let t = 0; t < n; t++) {
        const x = ad[ai + t];
        s0 += x * bd[b0 + t];
        s1 += x * bd[b1 + t];
        s2 += x * bd[b2 + t];
        s3 += x * bd[b3 + t];
      }
      od[i * br + j] = s0;
      od[i * br + j + 1] = s1;
      od[i * br + j + 2] = s2;
      od[i * br + j + 3] = s3;
    }
    for (; j < br; j++) {
      let s = 0;
      const bj = j * n;
      for (let t = 0; t < n; t++) s += ad[ai + t] * bd[bj + t];
      od[i * br + j] = s;
    }
  }
  return out;
}

export function scale(a: Mat, s: number): Mat {
  const out = mat(a.rows, a.cols);
  for (let i = 0; i < a.data.length; i++) out.data[i] = a.data[i] * s;
  return out;
}

/** tr(Aᵀ B) = Σ a_ij b_ij */
export function frobDot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/**
 * Thin QR of a tall matrix by classical Gram–Schmidt with one reorthogonalization pass (CGS2).
 * Works on column-major copies so every inner loop is contiguous.
 */
export function qrThin(a: Mat): { q: Mat; r: Mat } {
  const m = a.rows, p = a.cols;
  const cols = new Float64Array(m * p); // column j at [j*m, (j+1)*m)
  for (let i = 0; i < m; i++) for (let j = 0; j < p; j++) cols[j * m + i] = a.data[i * p + j];
  const r = mat(p, p);
  for (let j = 0; j < p; j++) {
    const cj = j * m;
    let norm0 = 0;
    for (let i = 0; i < m; i++) norm0 += cols[cj + i] * cols[cj + i];
    norm0 = Math.sqrt(norm0);
    for (let pass = 0; pass < 2; pass++) {
      // d_t = <q_t, c_j> with c_j already reduced by q_0..q_{t-1}: the subtraction of q_t and the
      // dot product for q_{t+1} share one pass over c_j (the same operations in the same order).
      if (j === 0) break;
      let d = 0;
      for (let i = 0; i < m; i++) d += cols[i] * cols[cj + i];
      for (let t = 0; t < j; t++) {
        const ct = t * m;
        const cn = ct + m;
        let next = 0;
        if (d === 0) {
          if (t + 1 < j) for (let i = 0; i < m; i++) next += cols[cn + i] * cols[cj + i];
        } else {
          r.data[t * p + j] += d;
          if (t + 1 < j) {
            for (let i = 0; i < m; i++) {
              const v = cols[cj + i] - d * cols[ct + i];
              cols[cj + i] = v;
              next += cols[cn + i] * v;
            }
          } else {
            for (let i = 0; i < m; i++) cols[cj + i] -= d * cols[ct + i];
          }
        }
        d = next;
      }
    }
    let norm = 0;
    for (let i = 0; i < m; i++) norm += cols[cj + i] * cols[cj + i];
    norm = Math.sqrt(norm);
    // A column that is (numerically) in the span of the previous ones contributes nothing.
    if (norm === 0 || norm <= 1e-13 * norm0) {
      r.data[j * p + j] = 0;
      cols.fill(0, cj, cj + m);
      continue;
    }
    r.data[j * p + j] = norm;
    for (let i = 0; i < m; i++) cols[cj + i] /= norm;
  }
  const q = mat(m, p);
  for (let j = 0; j < p; j++) for (let i = 0; i < m; i++) q.data[i * p + j] = cols[j * m + i];
  return { q, r };
}
