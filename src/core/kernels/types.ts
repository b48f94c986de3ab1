/**
 * The two hot loops of the uniform basis, over lowbias32-v1 values v(i, j) = int32(mix32(rk[i] ^ ck[j])) >> 8
 * (the generator value before its 2^-23 scale). Every implementation follows the same summation
 * order, so they give identical bits (see scripts/build-wasm.ts for the order):
 *   synth:   out[j] += Σ_i c[i]·v(i, j), i ascending (callers zero `out` first)
 *   analyze: lanes[4i + (j mod 4)] += v(i, j)·x[j], j ascending within each lane (float64)
 *   analyzeF32: per chunk of 1024 columns, float32 sums s_l of the float32 products f32(v(i, j))·f32(x[j]) over
 *            j ≡ l (mod 4), j ascending; then lanes[4i + l] += s_l in float64. Analysis only feeds the
 *            solvers; its result is within ~3e-7 of the exact one relative to its norm.
 */
export interface UniformKernels {
  readonly name: 'wasm-simd' | 'ts';
  /** rk: k row keys, c: k coefficients, ck: n column keys; out: n entries, accumulated into. */
  synth(rk: Int32Array, c: Float64Array, ck: Int32Array, out: Float64Array): void;
  /** lanes: 4k partial sums, accumulated into; x: n entries. */
  analyze(rk: Int32Array, ck: Int32Array, x: ArrayLike<number>, lanes: Float64Array): void;
  /** As analyze, with float32 products and chunk sums (1.45x faster; ~3e-7 relative to the result's norm). */
  analyzeF32(rk: Int32Array, ck: Int32Array, x: ArrayLike<number>, lanes: Float64Array): void;
}
