/**
 * IEEE binary16 (f16) and bfloat16 (bf16) encoding straight from a double, round to nearest,
 * ties to even. Rounding directly from the double matters: going through float32 first rounds
 * twice and gets some near-halfway values wrong (e.g. bf16 of 1 + 2^-8 + 2^-40 must be 1 + 2^-7).
 * Bits are returned as unsigned 16-bit integers.
 *
 * Encoding works on the double's bit pattern (integer operations on its two 32-bit words, no
 * logarithms or powers on the common path); decoding is one lookup in a table of all 65536 values.
 * NaN encodes to the canonical quiet NaN of each format (sign clear).
 */

/** Scratch view of one double as two 32-bit words. */
const F64 = new Float64Array(1);
const U32 = new Uint32Array(F64.buffer);
const LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const HI = LITTLE ? 1 : 0;
const LO = LITTLE ? 0 : 1;

/** Round a non-negative double to the nearest integer, ties to even. */
export function roundHalfEven(y: number): number {
  const f = Math.floor(y);
  const d = y - f; // exact: y and f share an exponent range where subtraction is exact
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * round(|x| / 2^(shift - 1075 + exp)) for a double below the target's normal range, given its high
 * word, low word and biased exponent: the subnormal mantissa (a result of 2^mant is the smallest
 * normal, which the caller's bit layout expresses correctly). All integers below 2^54: exact.
 */
function subnormal(hi: number, lo: number, exp: number, base: number): number {
  const shift = base - exp;
  if (exp === 0 || shift >= 54) return 0; // below half the smallest subnormal
  const sig = ((hi & 0xfffff) + 0x100000) * 4294967296 + lo;
  const div = 2 ** shift;
  let q = Math.floor(sig / div);
  const rem = sig - q * div;
  const half = div / 2;
  if (rem > half || (rem === half && (q & 1) === 1)) q += 1;
  return q;
}

export function f16Bits(x: number): number {
  F64[0] = x;
  const hi = U32[HI];
  const lo = U32[LO];
  const sign = (hi >>> 16) & 0x8000;
  const exp = (hi >>> 20) & 0x7ff;
  if (exp < 1009) return sign | subnormal(hi, lo, exp, 1051); // |x| < 2^-14: quantum 2^-24
  if (exp > 1038) {
    if (exp === 0x7ff && ((hi & 0xfffff) !== 0 || lo !== 0)) return 0x7e00; // NaN
    return sign | 0x7c00; // overflow (|x| ≥ 2^16) or infinity
  }
  // Normal f16: keep 10 of the 52 mantissa bits, ties to even; a carry out of the mantissa bumps
  // the exponent field, which turns values ≥ 65520 into infinity as IEEE requires.
  const manHi = hi & 0xfffff;
  const h = ((exp - 1008) << 10) | (manHi >>> 10);
  const rest = manHi & 0x3ff;
  return sign | (rest > 0x200 || (rest === 0x200 && (lo !== 0 || (h & 1) === 1)) ? h + 1 : h);
}

export function bf16Bits(x: number): number {
  F64[0] = x;
  const hi = U32[HI];
  const lo = U32[LO];
  const sign = (hi >>> 16) & 0x8000;
  const exp = (hi >>> 20) & 0x7ff;
  if (exp < 897) return sign | subnormal(hi, lo, exp, 942); // |x| < 2^-126: quantum 2^-133
  if (exp > 1150) {
    if (exp === 0x7ff && ((hi & 0xfffff) !== 0 || lo !== 0)) return 0x7fc0; // NaN
    return sign | 0x7f80;
  }
  const manHi = hi & 0xfffff;
  const h = ((exp - 896) << 7) | (manHi >>> 13);
  const rest = manHi & 0x1fff;
  return sign | (rest > 0x1000 || (rest === 0x1000 && (lo !== 0 || (h & 1) === 1)) ? h + 1 : h);
}

/** IEEE value of every 16-bit pattern with `mant` stored mantissa bits and exponent bias `bias`. */
function valueTable(mant: number, bias: number): Float64Array {
  const expMax = (1 << (15 - mant)) - 1;
  const t = new Float64Array(65536);
  const count = 1 << mant;
  for (let field = 0; field <= expMax; field++) {
    // One power of two per binade: sign · m · 2^(1 - bias - mant) (subnormal) or (2^mant + m) · 2^(field - bias - mant).
    const scale = 2 ** ((field === 0 ? 1 : field) - bias - mant);
    const lead = field === 0 ? 0 : count;
    const base = field << mant;
    for (let m = 0; m < count; m++) {
      const v = field === expMax ? (m === 0 ? Infinity : NaN) : (lead + m) * scale;
      t[base + m] = v;
      t[0x8000 | (base + m)] = -v;
    }
  }
  return t;
}

const F16_VALUES = valueTable(10, 15);
const BF16_VALUES = valueTable(7, 127);

export function f16Value(bits: number): number {
  return F16_VALUES[bits & 0xffff];
}

export function bf16Value(bits: number): number {
  return BF16_VALUES[bits & 0xffff];
}

/** The nearest f16 value (ties to even), as a double; ±Infinity beyond the f16 range. */
export function roundToF16(x: number): number {
  return F16_VALUES[f16Bits(x)];
}

/** The nearest bf16 value (ties to even), as a double. */
export function roundToBf16(x: number): number {
  return BF16_VALUES[bf16Bits(x)];
}

/** out[i] = roundToF16(x[i]) or roundToBf16(x[i]) for i < x.length; out may alias x. */
export function roundArrayToHalf(x: ArrayLike<number>, out: Float64Array, format: 'f16' | 'bf16'): void {
  const n = x.length;
  if (format === 'f16') for (let i = 0; i < n; i++) out[i] = F16_VALUES[f16Bits(x[i])];
  else for (let i = 0; i < n; i++) out[i] = BF16_VALUES[bf16Bits(x[i])];
}

/**
 * Bits of the smallest f16 ≥ x, for finite x ≥ 0 (0x7c00 = +Infinity when x > 65504).
 * Rounding a quantization scale up keeps every |value| / scale within the level range.
 */
export function f16CeilBits(x: number): number {
  const bits = f16Bits(x);
  // Positive f16 bit patterns are ordered like their values, so the next value up is bits + 1.
  return F16_VALUES[bits] < x ? bits + 1 : bits;
}
