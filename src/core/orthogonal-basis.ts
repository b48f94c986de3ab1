/**
 * The orthogonal basis family: k ≤ n orthonormal vectors of R^n that cost O(n log n) to apply,
 * for any n. This definition is part of the file format (docs/FORMAT.md, "Orthogonal basis"):
 *
 *   b_i = D · Cᵀ e_{π(i)},   i < k
 *
 *   D = diag(d_0..d_{n-1}),  d_j = -1 if bit 31 of u32(seed, 0, j) is set, else +1
 *   C = orthonormal DCT-II of length n:  C[m][j] = s_m cos(π (2j+1) m / (2n)),
 *       s_0 = √(1/n), s_m = √(2/n) for m ≥ 1
 *   π = the first k entries of a partial Fisher–Yates shuffle of [0, 1, .., n-1]:
 *       for t = 0..k-1:  r = t + (u32(seed, 1, t) mod (n - t));  swap p[t], p[r];  π(t) = p[t]
 *
 * so b_i[j] = d_j · C[π(i)][j]. Synthesis is D · DCT-III(scatter c into positions π), analysis is
 * gather_π(DCT-II(D · x)). The seeded parts are integer-exact; the DCT is defined mathematically,
 * so any correct implementation agrees to float tolerance.
 */
import type { Basis } from './basis.js';
import { dct2, dct3 } from './dct.js';
import { colKey, colKeys, mix32, rowKey } from './generator.js';
import { UsageError } from '../errors.js';

/** Generator row i used for the sign diagonal D. */
export const ORTHO_SIGN_ROW = 0;
/** Generator row i used for the Fisher–Yates draws that choose π. */
export const ORTHO_SHUFFLE_ROW = 1;

/** d_j ∈ {+1, -1} for j < n. */
export function orthogonalSigns(seed: number, n: number): Int8Array {
  const signs = new Int8Array(n);
  const rk = rowKey(seed, ORTHO_SIGN_ROW);
  const keys = colKeys(n);
  for (let j = 0; j < n; j++) signs[j] = mix32((rk ^ keys[j]) >>> 0) >= 0x80000000 ? -1 : 1;
  return signs;
}

/** π(0..k): k distinct indices in [0, n), from a partial Fisher–Yates shuffle. */
export function orthogonalSelection(seed: number, k: number, n: number): Int32Array {
  const p = new Int32Array(n);
  for (let j = 0; j < n; j++) p[j] = j;
  const rk = rowKey(seed, ORTHO_SHUFFLE_ROW);
  for (let t = 0; t < k; t++) {
    // u32(seed, ORTHO_SHUFFLE_ROW, t), with the row key hoisted out of the loop
    const r = t + (mix32((rk ^ colKey(t)) >>> 0) % (n - t));
    const tmp = p[t];
    p[t] = p[r];
    p[r] = tmp;
  }
  return p.slice(0, k);
}

function checkArguments(seed: number, k: number, n: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new UsageError(`orthogonal basis: seed must be an unsigned 32-bit integer, got ${seed}`);
  }
  if (!Number.isInteger(n) || n < 1 || n > 0x7fffffff) {
    throw new UsageError(`orthogonal basis: length n must be a positive integer, got ${n}`);
  }
  if (!Number.isInteger(k) || k < 1 || k > n) {
    throw new UsageError(`orthogonal basis: k must be an integer in [1, n=${n}], got ${k}`);
  }
}

class OrthogonalBasis implements Basis {
  readonly family = 'orthogonal' as const;
  readonly orthonormal = true;
  readonly k: number;
  readonly n: number;
  private readonly signs: Int8Array;
  private readonly selection: Int32Array;
  private scratch: Float64Array | undefined;

  constructor(seed: number, k: number, n: number) {
    this.k = k;
    this.n = n;
    this.signs = orthogonalSigns(seed, n);
    this.selection = orthogonalSelection(seed, k, n);
  }

  private buffer(): Float64Array {
    return (this.scratch ??= new Float64Array(this.n));
  }

  synthesize(c: ArrayLike<number>, out: Float64Array): void {
    const { k, n, signs, selection } = this;
    checkLengths(c.length, k, out.length, n);
    const spectrum = this.buffer();
    if (k < n) spectrum.fill(0);
    for (let i = 0; i < k; i++) spectrum[selection[i]] = c[i];
    dct3(spectrum, out, n);
    for (let j = 0; j < n; j++) out[j] *= signs[j];
  }

  analyze(x: ArrayLike<number>, out: Float64Array): void {
    const { k, n, signs, selection } = this;
    checkLengths(out.length, k, x.length, n);
    const buf = this.buffer();
    for (let j = 0; j < n; j++) buf[j] = signs[j] * x[j];
    dct2(buf, buf, n);
    for (let i = 0; i < k; i++) out[i] = buf[selection[i]];
  }
}

function checkLengths(coeffLength: number, k: number, vectorLength: number, n: number): void {
  if (coeffLength < k || vectorLength < n) {
    throw new RangeError(`orthogonal basis (k=${k}, n=${n}): got arrays of length ${coeffLength} and ${vectorLength}`);
  }
}

/** A seeded orthonormal basis of k vectors in R^n; see the file comment for the exact definition. */
export function createOrthogonalBasis(seed: number, k: number, n: number): Basis {
  checkArguments(seed, k, n);
  return new OrthogonalBasis(seed, k, n);
}
