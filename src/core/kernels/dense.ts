/**
 * The fit's small dense products (Grams of tall d×r factors, r×r times r×d), with the same
 * arithmetic as src/core/matrix.ts, term for term and in the same order, so results are
 * bit-identical; only faster. Each output still sums its terms in ascending order from +0, but
 * four outputs are computed per sweep (independent add chains the CPU overlaps) over contiguous
 * copies of the columns, instead of one strided, load-store-bound update per term.
 */
import { mat, type Mat } from '../matrix.js';

/**
 * Scratch space for column copies, reused across calls: allocating (and zeroing) a fresh
 * half-megabyte array per product cost more than the product itself.
 */
const scratch: Float64Array[] = [new Float64Array(0), new Float64Array(0)];

/** Columns of a (rows×cols, row-major) as contiguous rows of a cols×rows array in scratch[slot]. */
function columns(a: Mat, slot: 0 | 1): Float64Array {
  const { rows, cols, data } = a;
  if (scratch[slot].length < rows * cols) scratch[slot] = new Float64Array(rows * cols);
  const t = scratch[slot];
  // Blocks of 64 rows: reads stay in L1, writes are cols short sequential runs.
  for (let ib = 0; ib < rows; ib += 64) {
    const ie = Math.min(rows, ib + 64);
    for (let j = 0; j < cols; j++) {
      const tj = j * rows;
      for (let i = ib; i < ie; i++) t[tj + i] = data[i * cols + j];
    }
  }
  return t;
}

/** out[i][j] = Σ_t x[xi + t]·y[yj + t], t ascending, for i < p, j < q, vectors of length m. */
function dots(x: Float64Array, p: number, y: Float64Array, q: number, m: number, out: Float64Array): void {
  for (let i = 0; i < p; i++) {
    const xi = i * m;
    let j = 0;
    for (; j + 4 <= q; j += 4) {
      const y0 = j * m, y1 = y0 + m, y2 = y1 + m, y3 = y2 + m;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let t = 0; t < m; t++) {
        const v = x[xi + t];
        s0 += v * y[y0 + t];
        s1 += v * y[y1 + t];
        s2 += v * y[y2 + t];
        s3 += v * y[y3 + t];
      }
      out[i * q + j] = s0; out[i * q + j + 1] = s1; out[i * q + j + 2] = s2; out[i * q + j + 3] = s3;
    }
    for (; j < q; j++) {
      const yj = j * m;
      let s = 0;
      for (let t = 0; t < m; t++) s += x[xi + t] * y[yj + t];
      out[i * q + j] = s;
    }
  }
}

/** Aᵀ·B (same rows), bit-identical to matrix.matmulTN for finite inputs. */
export function matmulTN(a: Mat, b: Mat): Mat {
  if (a.rows !== b.rows) throw new RangeError(`matmulTN ${a.rows}x${a.cols}ᵀ · ${b.rows}x${b.cols}`);
  const out = mat(a.cols, b.cols);
  const at = columns(a, 0);
  dots(at, a.cols, a === b ? at : columns(b, 1), b.cols, a.rows, out.data);
  return out;
}

/** A·Bᵀ: matrix.ts's is already this sweep (four dot products per load of A's row, each over t ascending). */
export { matmulNT } from '../matrix.js';

/** A·B, bit-identical to matrix.matmul for finite inputs (each output sums p ascending from +0). */
export function matmul(a: Mat, b: Mat): Mat {
  if (a.cols !== b.rows) throw new RangeError(`matmul ${a.rows}x${a.cols} · ${b.rows}x${b.cols}`);
  const out = mat(a.rows, b.cols);
  if (b.cols >= 64) {
    // Wide right side (r×r · r×d): row updates over contiguous rows of B, as in matrix.ts.
    const n = b.cols, ad = a.data, bd = b.data, od = out.data;
    for (let i = 0; i < a.rows; i++) {
      const oi = i * n;
      for (let p = 0; p < a.cols; p++) {
        const v = ad[i * a.cols + p];
        const bp = p * n;
        for (let j = 0; j < n; j++) od[oi + j] += v * bd[bp + j];
      }
    }
    return out;
  }
  // Narrow right side (d×r · r×r): dot products of A's rows with B's columns.
  dots(a.data, a.rows, columns(b, 0), b.cols, a.cols, out.data);
  return out;
}
