/**
 * The two hot loops of the uniform basis, over lowbias32-v1 values v(i, j) = int32(mix32(rk[i] ^ ck[j])) >> 8
 * (the generator value before its 2^-23 scale). Every implementation follows the same summation
 * order, so they give identical bits (see scripts/build-wasm.ts for the order):
 *   synth:   out[j] += Σ_i c[i]·v(i, j), i ascending (callers zero `out` first)
 *   analyze: lanes[4i + (j mod 4)] += v(i, j)·x[j], j ascending within each lane
 */
export interface UniformKernels {
  readonly name: 'wasm-simd' | 'ts';
  /** rk: k row keys, c: k coefficients, ck: n column keys; out: n entries, accumulated into. */
  synth(rk: Int32Array, c: Float64Array, ck: Int32Array, out: Float64Array): void;
  /** lanes: 4k partial sums, accumulated into; x: n entries. */
  analyze(rk: Int32Array, ck: Int32Array, x: ArrayLike<number>, lanes: Float64Array): void;
}
