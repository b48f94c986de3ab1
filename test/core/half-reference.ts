/**
 * The half.ts of before issue #10 (exponentOf and powers of two per value), kept verbatim as the
 * reference the bit-operation version in src/core/half.ts must match exactly (test/core/half.test.ts).
 */
interface HalfFormat {
  /** Stored mantissa bits. */
  readonly mant: number;
  /** Exponent field width. */
  readonly exp: number;
  readonly bias: number;
}

const F16: HalfFormat = { mant: 10, exp: 5, bias: 15 };
const BF16: HalfFormat = { mant: 7, exp: 8, bias: 127 };

/** Round a non-negative double to the nearest integer, ties to even. */
export function roundHalfEven(y: number): number {
  const f = Math.floor(y);
  const d = y - f; // exact: y and f share an exponent range where subtraction is exact
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** floor(log2 a) for a > 0, exact (Math.log2 alone can be off by one next to powers of two). */
export function exponentOf(a: number): number {
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  return e;
}

export function encode(x: number, f: HalfFormat): number {
  const expMax = (1 << f.exp) - 1;
  if (Number.isNaN(x)) return (expMax << f.mant) | (1 << (f.mant - 1));
  const sign = x < 0 || Object.is(x, -0) ? 1 << 15 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | (expMax << f.mant);
  const emin = 1 - f.bias;
  const hidden = 2 ** f.mant;
  let e = a < 2 ** emin ? emin : exponentOf(a);
  // a / 2^(e - mant) is exact (a power-of-two scaling of a double far from over/underflow).
  let m = roundHalfEven(a / 2 ** (e - f.mant));
  if (m === 2 * hidden) {
    e++;
    m = hidden;
  }
  if (m < hidden) return sign | m; // subnormal (or zero): exponent field 0
  const field = e + f.bias;
  if (field >= expMax) return sign | (expMax << f.mant); // overflow to infinity
  return sign | (field << f.mant) | (m - hidden);
}

export function decode(bits: number, f: HalfFormat): number {
  const expMax = (1 << f.exp) - 1;
  const sign = bits & 0x8000 ? -1 : 1;
  const field = (bits >>> f.mant) & expMax;
  const m = bits & ((1 << f.mant) - 1);
  if (field === expMax) return m === 0 ? sign * Infinity : NaN;
  if (field === 0) return sign * m * 2 ** (1 - f.bias - f.mant);
  return sign * (2 ** f.mant + m) * 2 ** (field - f.bias - f.mant);
}

export function f16Bits(x: number): number {
  return encode(x, F16);
}

export function f16Value(bits: number): number {
  return decode(bits, F16);
}

export function bf16Bits(x: number): number {
  return encode(x, BF16);
}

export function bf16Value(bits: number): number {
  return decode(bits, BF16);
}

/** The nearest f16 value (ties to even), as a double; ±Infinity beyond the f16 range. */
export function roundToF16(x: number): number {
  return f16Value(f16Bits(x));
}

/** The nearest bf16 value (ties to even), as a double. */
export function roundToBf16(x: number): number {
  return bf16Value(bf16Bits(x));
}

/**
 * Bits of the smallest f16 ≥ x, for finite x ≥ 0 (0x7c00 = +Infinity when x > 65504).
 * Rounding a quantization scale up keeps every |value| / scale within the level range.
 */
export function f16CeilBits(x: number): number {
  const bits = f16Bits(x);
  // Positive f16 bit patterns are ordered like their values, so the next value up is bits + 1.
  return f16Value(bits) < x ? bits + 1 : bits;
}
