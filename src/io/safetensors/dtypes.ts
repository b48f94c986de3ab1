/**
 * Safetensors element types and the conversions between their little-endian bytes and JS float arrays.
 *
 * F16 and BF16 are converted by hand: the conversions work on bit patterns (never through a JS number
 * where a NaN payload could be canonicalised) and round to nearest, ties to even, directly from the
 * source precision. Rounding an F64 through F32 first would round twice and can be off by one ulp.
 */
import { bf16Bits, f16Bits } from '../../core/half.js';

export type DType =
  | 'F64' | 'F32' | 'F16' | 'BF16'
  | 'I64' | 'I32' | 'I16' | 'I8'
  | 'U8' | 'U16' | 'U32' | 'U64'
  | 'BOOL' | 'F8_E4M3' | 'F8_E5M2';

const SIZES: Readonly<Record<DType, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2,
  I64: 8, I32: 4, I16: 2, I8: 1,
  U8: 1, U16: 2, U32: 4, U64: 8,
  BOOL: 1, F8_E4M3: 1, F8_E5M2: 1,
};

/**
 * Rank of each dtype in the reference crate's `Dtype` enum (safetensors/src/tensor.rs). Its derived
 * ordering is what the reference writer sorts by, so the writer uses it to lay tensors out the same way.
 * The ranks increase with element size, so "descending rank" is also "descending size".
 */
const REFERENCE_RANK: Readonly<Record<DType, number>> = {
  BOOL: 0, U8: 1, I8: 2, F8_E5M2: 3, F8_E4M3: 4, I16: 5, U16: 6, F16: 7, BF16: 8,
  I32: 9, U32: 10, F32: 11, F64: 12, I64: 13, U64: 14,
};

export const ALL_DTYPES: readonly DType[] = Object.keys(SIZES) as DType[];

export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(SIZES, s);
}

export function dtypeSize(d: DType): number {
  return SIZES[d];
}

export function dtypeReferenceRank(d: DType): number {
  return REFERENCE_RANK[d];
}

/** Types the CLI treats as LoRA weights. FP8 decodes too, but we never write it. */
export function isFloatDType(d: DType): boolean {
  return d === 'F64' || d === 'F32' || d === 'F16' || d === 'BF16' || d === 'F8_E4M3' || d === 'F8_E5M2';
}

/** Typed-array views reinterpret bytes in host order; the format is little-endian. */
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------------
// Bit-level conversions

/** F16 bit pattern -> F32 bit pattern (exact: every half is a float). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (man << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (man << 13)) >>> 0;
  if (man === 0) return sign >>> 0;
  // Subnormal half: renormalise so the leading 1 becomes the implicit bit of the float.
  const shift = Math.clz32(man) - 21; // leading bit of man to bit 10
  const m = (man << shift) & 0x3ff;
  return (sign | ((113 - shift) << 23) | (m << 13)) >>> 0;
}

/** Bit length minus one of a positive integer below 2^53, exactly. */
function floorLog2(x: number): number {
  if (x < 0x100000000) return 31 - Math.clz32(x);
  return 63 - Math.clz32(Math.floor(x / 0x100000000));
}

/**
 * Rounds `sig * 2^e0` (sig an integer below 2^54) to a binary format with `expBits` exponent bits and
 * `manBits` stored mantissa bits, ties to even, with subnormals and overflow to infinity. Returns the
 * bit pattern without the sign. All arithmetic is on integers below 2^54, so it is exact in doubles.
 */
function roundMagnitude(sig: number, e0: number, expBits: number, manBits: number): number {
  if (sig === 0) return 0;
  const bias = (1 << (expBits - 1)) - 1;
  const emin = 1 - bias;
  const top = floorLog2(sig) + e0;
  const quantumExp = Math.max(top, emin) - manBits;
  const shift = quantumExp - e0;
  let q: number;
  if (shift <= 0) {
    q = sig * 2 ** -shift;
  } else if (shift > 55) {
    q = 0; // below half of the smallest subnormal
  } else {
    const div = 2 ** shift;
    q = Math.floor(sig / div);
    const rem = sig - q * div;
    const half = div / 2;
    if (rem > half || (rem === half && q % 2 === 1)) q += 1;
  }
  let qExp = quantumExp;
  const implicit = 2 ** manBits;
  if (q >= 2 * implicit) { q /= 2; qExp += 1; } // rounding carried into a new binade
  if (q < implicit) return q; // subnormal (or zero): biased exponent 0
  const biased = qExp + manBits + bias;
  if (biased >= (1 << expBits) - 1) return ((1 << expBits) - 1) * implicit; // infinity
  return biased * implicit + (q - implicit);
}

/** F32 bit pattern -> F16 bit pattern. NaN keeps its sign and top payload bits (and stays a NaN). */
export function f32BitsToF16Bits(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const man = b & 0x7fffff;
  if (exp === 0xff) {
    if (man === 0) return sign | 0x7c00;
    const payload = man >>> 13;
    return sign | 0x7c00 | (payload === 0 ? 0x200 : payload);
  }
  if (exp >= 113 && exp <= 142) {
    // Fast path, result is a normal half: drop 13 mantissa bits with ties-to-even. A carry out of the
    // mantissa bumps the exponent, which also turns values >= 65520 into infinity as IEEE requires.
    const h = ((exp - 112) << 10) | (man >>> 13);
    const rest = man & 0x1fff;
    return sign | (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1) ? h + 1 : h);
  }
  const sig = exp === 0 ? man : man | 0x800000;
  const e0 = exp === 0 ? -149 : exp - 150;
  return sign | roundMagnitude(sig, e0, 5, 10);
}

/** F32 bit pattern -> BF16 bit pattern, ties to even. */
export function f32BitsToBf16Bits(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const man = b & 0x7fffff;
  if (exp === 0xff) {
    if (man === 0) return sign | 0x7f80;
    const payload = man >>> 16;
    return sign | 0x7f80 | (payload === 0 ? 0x40 : payload);
  }
  // BF16 is the top half of an F32, so rounding is a carry into the upper 16 bits.
  const low = b & 0xffff;
  let hi = b >>> 16;
  if (low > 0x8000 || (low === 0x8000 && (hi & 1) === 1)) hi += 1; // may carry into exp: 0x7f7f.. -> inf, correct
  return hi & 0xffff;
}

/**
 * F64 (as its two 32-bit words) -> F16 / BF16 bit pattern, rounded once, NaN payloads kept: the general
 * path (exponent and significand as integers, roundMagnitude). encodeFloats rounds numbers with
 * src/core/half.ts's integer-word conversions and sends only NaNs here; the tests hold half.ts's
 * bits to this path, a second method.
 */
export function f64WordsToF16Bits(hi: number, lo: number): number {
  return f64WordsToSmall(hi, lo, 5, 10);
}

export function f64WordsToBf16Bits(hi: number, lo: number): number {
  return f64WordsToSmall(hi, lo, 8, 7);
}

function f64WordsToSmall(hi: number, lo: number, expBits: number, manBits: number): number {
  // Both targets are 16-bit formats: the sign is bit 15.
  const sign = (hi >>> 31) === 1 ? 0x8000 : 0;
  const exp = (hi >>> 20) & 0x7ff;
  const manHi = hi & 0xfffff;
  const infBits = ((1 << expBits) - 1) << manBits;
  if (exp === 0x7ff) {
    if (manHi === 0 && lo === 0) return sign | infBits;
    const payload = manHi >>> (20 - manBits);
    return sign | infBits | (payload === 0 ? 1 << (manBits - 1) : payload);
  }
  const man = manHi * 0x100000000 + (lo >>> 0);
  const sig = exp === 0 ? man : man + 2 ** 52;
  const e0 = exp === 0 ? -1074 : exp - 1075;
  return sign | roundMagnitude(sig, e0, expBits, manBits);
}

/** FP8 E4M3 ("FN": no infinities, S.1111.111 is NaN, max 448) -> F32 bits. */
function f8e4m3ToF32Bits(v: number): number {
  const sign = (v & 0x80) << 24;
  const exp = (v >>> 3) & 0xf;
  const man = v & 0x7;
  if (exp === 0xf && man === 0x7) return (sign | 0x7fc00000) >>> 0;
  if (exp === 0) {
    if (man === 0) return sign >>> 0;
    const shift = Math.clz32(man) - 28; // leading bit of man to bit 3
    return (sign | ((121 - shift) << 23) | (((man << shift) & 0x7) << 20)) >>> 0;
  }
  return (sign | ((exp + 120) << 23) | (man << 20)) >>> 0;
}

/** FP8 E5M2 is the top byte of an F16. */
function f8e5m2ToF32Bits(v: number): number {
  return f16BitsToF32Bits(v << 8);
}

let f16Table: Uint32Array | undefined;
/** All 65536 halves as F32 bits: decoding is then one lookup per element. */
function f16ToF32Table(): Uint32Array {
  if (!f16Table) {
    f16Table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32Bits(h);
  }
  return f16Table;
}

// ---------------------------------------------------------------------------------------------
// Byte-level decoding

function assertLength(bytes: Uint8Array, dtype: DType): number {
  const size = SIZES[dtype];
  if (bytes.length % size !== 0) {
    throw new RangeError(`${bytes.length} bytes is not a whole number of ${dtype} elements`);
  }
  return bytes.length / size;
}

/** Copies LE bytes into a fresh buffer so typed views are aligned whatever the source offset. */
function alignedCopy(bytes: Uint8Array): ArrayBuffer {
  const buf = new ArrayBuffer(bytes.length);
  new Uint8Array(buf).set(bytes);
  return buf;
}

function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const SMALL_FLOATS: ReadonlySet<DType> = new Set<DType>(['F16', 'BF16', 'F8_E4M3', 'F8_E5M2']);

/**
 * Decodes into F32 bit patterns for the small float types; `null` for types that are not decoded that way.
 * Working in bits keeps NaN payloads intact.
 */
function decodeToF32Bits(bytes: Uint8Array, dtype: DType, n: number): Uint32Array | null {
  const out = new Uint32Array(n);
  const dv = dataView(bytes);
  switch (dtype) {
    case 'F16': {
      const table = f16ToF32Table();
      for (let i = 0; i < n; i++) out[i] = table[dv.getUint16(2 * i, true)];
      return out;
    }
    case 'BF16':
      for (let i = 0; i < n; i++) out[i] = dv.getUint16(2 * i, true) << 16;
      return out;
    case 'F8_E4M3':
      for (let i = 0; i < n; i++) out[i] = f8e4m3ToF32Bits(bytes[i]);
      return out;
    case 'F8_E5M2':
      for (let i = 0; i < n; i++) out[i] = f8e5m2ToF32Bits(bytes[i]);
      return out;
    default:
      return null;
  }
}

/** Integer and bool element i as a number (64-bit values round to the nearest double). */
function readInteger(dv: DataView, dtype: DType, i: number): number {
  switch (dtype) {
    case 'I8': return dv.getInt8(i);
    case 'U8': return dv.getUint8(i);
    case 'BOOL': return dv.getUint8(i) === 0 ? 0 : 1;
    case 'I16': return dv.getInt16(2 * i, true);
    case 'U16': return dv.getUint16(2 * i, true);
    case 'I32': return dv.getInt32(4 * i, true);
    case 'U32': return dv.getUint32(4 * i, true);
    case 'I64': return Number(dv.getBigInt64(8 * i, true));
    case 'U64': return Number(dv.getBigUint64(8 * i, true));
    default: throw new Error(`readInteger: ${dtype} is not an integer type`);
  }
}

/**
 * Decodes little-endian `dtype` bytes (any alignment) into a Float32Array. F64 and 64-bit integers round
 * to nearest; everything else is exact.
 */
export function decodeToFloat32(bytes: Uint8Array, dtype: DType): Float32Array {
  const n = assertLength(bytes, dtype);
  const bits = decodeToF32Bits(bytes, dtype, n);
  if (bits) return new Float32Array(bits.buffer);
  if (dtype === 'F32') {
    if (HOST_LE) return new Float32Array(alignedCopy(bytes));
    const dv = dataView(bytes);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
    return out;
  }
  if (dtype === 'F64') {
    const out = new Float32Array(n);
    out.set(decodeToFloat64(bytes, 'F64')); // element-wise double -> float, ties to even
    return out;
  }
  const dv = dataView(bytes);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = readInteger(dv, dtype, i);
  return out;
}

/** Decodes little-endian `dtype` bytes (any alignment) into a Float64Array; exact except 64-bit integers. */
export function decodeToFloat64(bytes: Uint8Array, dtype: DType): Float64Array {
  const n = assertLength(bytes, dtype);
  if (dtype === 'F64') {
    if (HOST_LE) return new Float64Array(alignedCopy(bytes));
    const dv = dataView(bytes);
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true);
    return out;
  }
  if (dtype === 'F32' || SMALL_FLOATS.has(dtype)) {
    return f32BitsToF64Array(new Uint32Array(decodeToFloat32(bytes, dtype).buffer));
  }
  const dv = dataView(bytes);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = readInteger(dv, dtype, i);
  return out;
}

/** Widens F32 bit patterns to F64 bit patterns, so NaN payloads survive (a JS number read might quiet them). */
function f32BitsToF64Array(bits: Uint32Array): Float64Array {
  const out = new Float64Array(bits.length);
  const words = new Uint32Array(out.buffer);
  const [loIdx, hiIdx] = HOST_LE ? [0, 1] : [1, 0];
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i];
    const sign = b & 0x80000000;
    const exp = (b >>> 23) & 0xff;
    let man = b & 0x7fffff;
    let hi: number;
    if (exp === 0xff) {
      hi = sign | 0x7ff00000 | (man >>> 3);
    } else if (exp === 0) {
      if (man === 0) {
        hi = sign;
      } else {
        // Subnormal float: normal as a double.
        const shift = Math.clz32(man) - 8; // leading bit to bit 23
        man = (man << shift) & 0x7fffff;
        hi = sign | ((1023 - 126 - shift) << 20) | (man >>> 3);
      }
    } else {
      hi = sign | ((exp - 127 + 1023) << 20) | (man >>> 3);
    }
    words[2 * i + hiIdx] = hi >>> 0;
    words[2 * i + loIdx] = (man & 0x7) << 29;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Encoding

export type EncodableDType = 'F64' | 'F32' | 'F16' | 'BF16';

export function isEncodableDType(d: DType): d is EncodableDType {
  return d === 'F64' || d === 'F32' || d === 'F16' || d === 'BF16';
}

/**
 * Encodes floats into little-endian `dtype` bytes, rounding to nearest, ties to even (F16: subnormals,
 * overflow to ±Inf, NaN kept a NaN with its sign and top payload bits).
 */
export function encodeFloats(values: Float32Array | Float64Array, dtype: EncodableDType): Uint8Array {
  const n = values.length;
  const out = new Uint8Array(n * SIZES[dtype]);
  const dv = new DataView(out.buffer);
  if (values instanceof Float32Array) {
    const bits = new Uint32Array(values.buffer, values.byteOffset, n);
    switch (dtype) {
      case 'F32':
        if (HOST_LE) out.set(new Uint8Array(values.buffer, values.byteOffset, 4 * n));
        else for (let i = 0; i < n; i++) dv.setUint32(4 * i, bits[i], true);
        return out;
      case 'F64': {
        const wide = f32BitsToF64Array(bits);
        if (HOST_LE) out.set(new Uint8Array(wide.buffer));
        else for (let i = 0; i < n; i++) dv.setFloat64(8 * i, wide[i], true);
        return out;
      }
      case 'F16':
        for (let i = 0; i < n; i++) dv.setUint16(2 * i, f32BitsToF16Bits(bits[i]), true);
        return out;
      case 'BF16':
        for (let i = 0; i < n; i++) dv.setUint16(2 * i, f32BitsToBf16Bits(bits[i]), true);
        return out;
    }
  }
  const words = new Uint32Array(values.buffer, values.byteOffset, 2 * n);
  const [loIdx, hiIdx] = HOST_LE ? [0, 1] : [1, 0];
  switch (dtype) {
    case 'F64':
      if (HOST_LE) out.set(new Uint8Array(values.buffer, values.byteOffset, 8 * n));
      else for (let i = 0; i < n; i++) dv.setFloat64(8 * i, values[i], true);
      return out;
    case 'F32':
      // Float32Array assignment rounds ties to even; NaN payloads are not preserved on this path.
      for (let i = 0; i < n; i++) dv.setFloat32(4 * i, values[i], true);
      return out;
    // The integer-word conversions of src/core/half.ts give the same bits (checked on every special
    // value and ~7M doubles) several times faster; NaN keeps its payload through the general path.
    case 'F16':
      for (let i = 0; i < n; i++) {
        const x = values[i];
        dv.setUint16(2 * i, x === x ? f16Bits(x) : f64WordsToF16Bits(words[2 * i + hiIdx], words[2 * i + loIdx]), true);
      }
      return out;
    case 'BF16':
      for (let i = 0; i < n; i++) {
        const x = values[i];
        dv.setUint16(2 * i, x === x ? bf16Bits(x) : f64WordsToBf16Bits(words[2 * i + hiIdx], words[2 * i + loIdx]), true);
      }
      return out;
  }
}
