import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ALL_DTYPES, decodeToFloat32, decodeToFloat64, dtypeSize, encodeFloats, isFloatDType, f64WordsToBf16Bits, f64WordsToF16Bits,
} from '../../src/io/safetensors/dtypes.js';
import { runPython } from './helpers.js';
import * as halfRef from '../core/half-reference.js';

// Helpers that read bit patterns without going through a JS number (which could quiet a NaN).
function u16s(bytes: Uint8Array): Uint16Array {
  const out = new Uint16Array(bytes.length / 2);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = dv.getUint16(2 * i, true);
  return out;
}
function leU16(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(2 * values.length);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) dv.setUint16(2 * i, values[i], true);
  return out;
}
function f32Bits(x: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setFloat32(0, x);
  return dv.getUint32(0);
}
function f32FromBits(b: number): Float32Array {
  return new Float32Array(new Uint32Array([b]).buffer);
}
function toF16(values: Float32Array | Float64Array): number[] {
  return Array.from(u16s(encodeFloats(values, 'F16')));
}
function toBf16(values: Float32Array | Float64Array): number[] {
  return Array.from(u16s(encodeFloats(values, 'BF16')));
}
const ALL_U16 = Uint16Array.from({ length: 65536 }, (_, i) => i);

/** IEEE half value from its fields: the closed form from IEEE 754-2008 §3.4, not our bit code. */
function halfClosedForm(h: number): number {
  const s = h >> 15 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 31) return m === 0 ? s * Infinity : NaN;
  if (e === 0) return s * m * 2 ** -24;
  return s * 2 ** (e - 15) * (1 + m / 1024);
}

test('dtype sizes match the reference crate (Dtype::size in safetensors/src/tensor.rs)', () => {
  const expected: Record<string, number> = {
    BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2,
    I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8,
  };
  assert.deepEqual(Object.fromEntries(ALL_DTYPES.map((d) => [d, dtypeSize(d)])), expected);
  assert.deepEqual(ALL_DTYPES.filter(isFloatDType).sort(), ['BF16', 'F16', 'F32', 'F64', 'F8_E4M3', 'F8_E5M2']);
});

test('every F16 bit pattern decodes to its closed-form value', () => {
  const f32 = decodeToFloat32(leU16(ALL_U16), 'F16');
  const f64 = decodeToFloat64(leU16(ALL_U16), 'F16');
  for (let h = 0; h < 65536; h++) {
    const want = halfClosedForm(h);
    if (Number.isNaN(want)) {
      assert.ok(Number.isNaN(f32[h]) && Number.isNaN(f64[h]), `0x${h.toString(16)}`);
    } else {
      assert.ok(Object.is(f32[h], want) && Object.is(f64[h], want), `0x${h.toString(16)}: ${f32[h]} ${f64[h]} vs ${want}`);
    }
  }
});

test('every one of the 65536 F16 bit patterns re-encodes to itself, NaN payloads included', () => {
  const bytes = leU16(ALL_U16);
  assert.deepEqual(encodeFloats(decodeToFloat32(bytes, 'F16'), 'F16'), bytes);
  assert.deepEqual(encodeFloats(decodeToFloat64(bytes, 'F16'), 'F16'), bytes);
});

test('every BF16 bit pattern decodes to bits << 16 and re-encodes to itself', () => {
  const bytes = leU16(ALL_U16);
  const f32 = decodeToFloat32(bytes, 'BF16');
  // BF16 is by definition the top half of an F32.
  assert.deepEqual(new Uint32Array(f32.buffer), Uint32Array.from(ALL_U16, (h) => h << 16));
  assert.deepEqual(encodeFloats(f32, 'BF16'), bytes);
  assert.deepEqual(encodeFloats(decodeToFloat64(bytes, 'BF16'), 'BF16'), bytes);
});

test('F16 rounding: every midpoint between adjacent finite halves ties to even, neighbours round to nearest', () => {
  // Expected values by construction: midpoint (a+b)/2 is exact in F32; the next float above/below it
  // must go to b/a; the midpoint itself to whichever of the two has an even bit pattern.
  const mids: number[] = [];
  const want: number[] = [];
  for (let k = 0; k < 0x7bff; k++) {
    const mid = (halfClosedForm(k) + halfClosedForm(k + 1)) / 2;
    const b = f32Bits(mid);
    for (const sign of [0, 0x80000000]) {
      const hs = sign ? 0x8000 : 0;
      mids.push((b | sign) >>> 0, ((b - 1) | sign) >>> 0, ((b + 1) | sign) >>> 0);
      want.push(hs | (k % 2 === 0 ? k : k + 1), hs | k, hs | (k + 1));
    }
  }
  const asF32 = new Float32Array(new Uint32Array(mids).buffer);
  assert.deepEqual(toF16(asF32), want);
  assert.deepEqual(toF16(Float64Array.from(asF32)), want);
});

test('F16 overflow, underflow and specials', () => {
  // 65504 is the largest half; 65520 = 65504 + ulp/2 is the rounding threshold to infinity (IEEE 754).
  const cases: Array<[number, number]> = [
    [65504, 0x7bff], [65519.99, 0x7bff], [65520, 0x7c00], [65536, 0x7c00], [98304, 0x7c00], [131071, 0x7c00], [1e6, 0x7c00], [-1e6, 0xfc00],
    [Infinity, 0x7c00], [-Infinity, 0xfc00], [0, 0], [-0, 0x8000],
    [2 ** -24, 0x0001], [2 ** -25, 0x0000], [-(2 ** -25), 0x8000], [1.5 * 2 ** -25, 0x0001],
    [3 * 2 ** -25, 0x0002], [2 ** -14, 0x0400], [2 ** -14 - 2 ** -25, 0x0400], [1e-10, 0], [1, 0x3c00],
    [-2, 0xc000], [1 / 3, 0x3555],
  ];
  const values = cases.map((c) => c[0]);
  const want = cases.map((c) => c[1]);
  assert.deepEqual(toF16(Float64Array.from(values)), want);
  assert.deepEqual(toF16(Float32Array.from(values)), want);
  const nan = toF16(Float32Array.from([NaN]))[0];
  assert.equal(nan & 0x7c00, 0x7c00);
  assert.notEqual(nan & 0x3ff, 0);
  // A float NaN whose payload lives only in the low bits must stay a NaN, not become infinity.
  const lowPayload = toF16(f32FromBits(0xff800001))[0];
  assert.equal(lowPayload & 0xfc00, 0xfc00);
  assert.notEqual(lowPayload & 0x3ff, 0);
});

test('F64 -> F16/BF16 rounds once (no double rounding through F32)', () => {
  // 1 + 2^-11 is the exact F16 midpoint between 1 and 1+2^-10; the 2^-40 tail (lost in F32) decides it.
  assert.deepEqual(toF16(Float64Array.from([1 + 2 ** -11 + 2 ** -40, 1 + 2 ** -11, 1 + 2 ** -11 - 2 ** -40])), [0x3c01, 0x3c00, 0x3c00]);
  // Same for BF16 around 1 + 2^-8.
  assert.deepEqual(toBf16(Float64Array.from([1 + 2 ** -8 + 2 ** -40, 1 + 2 ** -8, 1 + 3 * 2 ** -8])), [0x3f81, 0x3f80, 0x3f82]);
  // Values only representable as F64 subnormals / beyond F32 range.
  assert.deepEqual(toBf16(Float64Array.from([1e-300, -1e300, 3.4e38 * 2])), [0x0000, 0xff80, 0x7f80]);
  // BF16 subnormal from F64: 2^-133 is bf16 subnormal mantissa 1 (min subnormal 2^-133 = 2^-126 * 2^-7).
  assert.deepEqual(toBf16(Float64Array.from([2 ** -133, 2 ** -134, 1.5 * 2 ** -134])), [0x0001, 0x0000, 0x0001]);
});

test('BF16 rounding ties to even on constructed halfway cases for every BF16 value', () => {
  // For each finite bf16 pattern x, the F32 (x<<16)|0x8000 is exactly halfway to x+1: expect the even one;
  // |0x8001 is above halfway (expect x+1), |0x7fff below (expect x). x+1 past the largest finite is +-Inf.
  const src: number[] = [];
  const want: number[] = [];
  for (let x = 0; x < 65536; x++) {
    if (((x >> 7) & 0xff) === 0xff) continue; // Inf/NaN: no halfway points
    const base = x << 16;
    src.push((base | 0x8000) >>> 0, (base | 0x8001) >>> 0, (base | 0x7fff) >>> 0);
    want.push(x % 2 === 0 ? x : x + 1, x + 1, x);
  }
  const f32 = new Float32Array(new Uint32Array(src).buffer);
  assert.deepEqual(toBf16(f32), want);
  assert.deepEqual(toBf16(Float64Array.from(f32)), want);
});

test('F16 conversion agrees with numpy on random F32 and F64 inputs', (t) => {
  // numpy's float32->float16 and float64->float16 casts (npy_floatbits_to_halfbits / npy_doublebits_to_halfbits)
  // are an independent implementation of round-to-nearest-even.
  let s = 12345;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0), s);
  const bits = Uint32Array.from({ length: 20000 }, () => rnd());
  const doubles = Float64Array.from({ length: 5000 }, (_, i) => (rnd() / 2 ** 32 - 0.5) * 2 ** ((i % 60) - 30));
  const code = `
import sys, json, numpy as np
d = json.load(sys.stdin)
a = np.array(d['bits'], dtype=np.uint32).view(np.float32).astype(np.float16).view(np.uint16)
b = np.array(d['doubles'], dtype=np.float64).astype(np.float16).view(np.uint16)
print(json.dumps([a.tolist(), b.tolist()]))`;
  const r = runPython(code, [], JSON.stringify({ bits: Array.from(bits), doubles: Array.from(doubles) }));
  if (!r.ok) { t.skip(r.reason); return; }
  const [fromF32, fromF64] = JSON.parse(r.stdout) as [number[], number[]];
  const ours32 = toF16(new Float32Array(bits.buffer));
  const ours64 = toF16(doubles);
  // numpy may canonicalise NaN payloads differently; compare NaN-ness only for NaNs.
  const isNan = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
  for (let i = 0; i < ours32.length; i++) {
    if (isNan(fromF32[i])) assert.ok(isNan(ours32[i]));
    else assert.equal(ours32[i], fromF32[i], `f32 bits 0x${bits[i].toString(16)}`);
  }
  assert.deepEqual(ours64, fromF64);
});

test('decoding from unaligned slices gives the same values', () => {
  const values = Float64Array.from([1.5, -2.25, 3e-5, 65504, 0.1, -0.0]);
  for (const dtype of ['F64', 'F32', 'F16', 'BF16'] as const) {
    const enc = encodeFloats(values, dtype);
    for (const shift of [1, 2, 3, 5]) {
      const backing = new Uint8Array(enc.length + shift);
      backing.set(enc, shift);
      const slice = backing.subarray(shift);
      assert.deepEqual(decodeToFloat32(slice, dtype), decodeToFloat32(enc, dtype), `${dtype} +${shift}`);
      assert.deepEqual(decodeToFloat64(slice, dtype), decodeToFloat64(enc, dtype), `${dtype} +${shift}`);
      const buf = Buffer.from(backing.buffer, backing.byteOffset + shift, enc.length);
      assert.deepEqual(decodeToFloat32(buf, dtype), decodeToFloat32(enc, dtype));
    }
  }
});

test('F32 and F64 round trips are exact; F64 -> F32 rounds like Math.fround', () => {
  const values = Float64Array.from([0, -0, 1, -1, Math.PI, 1e-40, 3.4e38, 1e-310, Infinity, -Infinity, 2 ** -149]);
  assert.deepEqual(decodeToFloat64(encodeFloats(values, 'F64'), 'F64'), values);
  assert.deepEqual(decodeToFloat32(encodeFloats(values, 'F32'), 'F32'), Float32Array.from(values, Math.fround));
  const f32 = Float32Array.from(values);
  assert.deepEqual(decodeToFloat32(encodeFloats(f32, 'F64'), 'F64'), f32);
  assert.deepEqual(decodeToFloat64(encodeFloats(f32, 'F32'), 'F32'), Float64Array.from(f32));
  // Exact byte layout: 1.0f is 00 00 80 3f little-endian (IEEE 754 binary32).
  assert.deepEqual(Array.from(encodeFloats(Float32Array.from([1]), 'F32')), [0, 0, 0x80, 0x3f]);
  assert.deepEqual(Array.from(encodeFloats(Float32Array.from([1]), 'F64')), [0, 0, 0, 0, 0, 0, 0xf0, 0x3f]);
});

test('integer dtypes decode to their values (for 0-d alpha scalars)', () => {
  const b = (xs: number[]) => Uint8Array.from(xs);
  assert.deepEqual(Array.from(decodeToFloat32(b([0xff, 0x07]), 'I8')), [-1, 7]);
  assert.deepEqual(Array.from(decodeToFloat32(b([0xff]), 'U8')), [255]);
  assert.deepEqual(Array.from(decodeToFloat32(b([0, 1, 2]), 'BOOL')), [0, 1, 1]);
  assert.deepEqual(Array.from(decodeToFloat64(b([0xfe, 0xff]), 'I16')), [-2]);
  assert.deepEqual(Array.from(decodeToFloat64(b([0xfe, 0xff]), 'U16')), [65534]);
  assert.deepEqual(Array.from(decodeToFloat64(b([8, 0, 0, 0]), 'I32')), [8]);
  assert.deepEqual(Array.from(decodeToFloat64(b([0xff, 0xff, 0xff, 0xff]), 'U32')), [4294967295]);
  assert.deepEqual(Array.from(decodeToFloat64(b([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 'I64')), [-2]);
  assert.deepEqual(Array.from(decodeToFloat64(b([0, 0, 0, 0, 0, 0, 0x20, 0]), 'U64')), [2 ** 53]);
  // Unaligned too.
  assert.deepEqual(Array.from(decodeToFloat32(b([9, 16, 0, 0, 0]).subarray(1), 'I32')), [16]);
});

test('FP8 decodes to the closed-form values of E4M3FN and E5M2 (OCP FP8 spec)', () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const e4 = decodeToFloat64(all, 'F8_E4M3');
  const e5 = decodeToFloat64(all, 'F8_E5M2');
  for (let v = 0; v < 256; v++) {
    const s = v >> 7 ? -1 : 1;
    // E4M3FN: bias 7, no infinities, S.1111.111 is NaN.
    const e = (v >> 3) & 0xf, m = v & 7;
    const w4 = e === 15 && m === 7 ? NaN : e === 0 ? s * m * 2 ** -9 : s * 2 ** (e - 7) * (1 + m / 8);
    // E5M2: bias 15, IEEE-like specials.
    const E = (v >> 2) & 0x1f, M = v & 3;
    const w5 = E === 31 ? (M === 0 ? s * Infinity : NaN) : E === 0 ? s * M * 2 ** -16 : s * 2 ** (E - 15) * (1 + M / 4);
    assert.ok(Object.is(e4[v], w4) || (Number.isNaN(w4) && Number.isNaN(e4[v])), `e4m3 ${v}: ${e4[v]} vs ${w4}`);
    assert.ok(Object.is(e5[v], w5) || (Number.isNaN(w5) && Number.isNaN(e5[v])), `e5m2 ${v}: ${e5[v]} vs ${w5}`);
  }
  assert.equal(e4[0x7e], 448);
});

test('decoding a byte count that is not a whole number of elements throws', () => {
  assert.throws(() => decodeToFloat32(new Uint8Array(3), 'F16'), RangeError);
});

test('F64 -> BF16 by the general word-level path rounds like the pre-#10 reference encoder', () => {
  // Reference: test/core/half-reference.ts (exponent and powers of two per value, no bit tricks).
  // NaNs are left out: this encoder keeps payloads, the reference returns the canonical NaN.
  const words = new Uint32Array(2);
  const f = new Float64Array(words.buffer);
  const hiIdx = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;
  let s = 777;
  const rnd = (): number => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
  const check = (x: number): void => {
    if (Number.isNaN(x)) return;
    f[0] = x;
    const got = f64WordsToBf16Bits(words[hiIdx], words[1 - hiIdx]);
    if (got !== halfRef.bf16Bits(x)) assert.fail(`bf16 of ${x}: 0x${got.toString(16)}, reference 0x${halfRef.bf16Bits(x).toString(16)}`);
  };
  for (let i = 0; i < 300000; i++) {
    words[hiIdx] = rnd();
    words[1 - hiIdx] = rnd();
    check(f[0]);
    words[hiIdx] = ((((rnd() % 300) + 1023 - 150) << 20) | (rnd() & 0xfffff) | (rnd() & 0x80000000)) >>> 0;
    check(f[0]);
  }
  for (let h = 0; h < 0x7f80; h++) {
    const lo = halfRef.bf16Value(h), hi = h + 1 < 0x7f80 ? halfRef.bf16Value(h + 1) : lo * 2;
    for (const v of [lo, (lo + hi) / 2]) {
      for (const y of [v, v * (1 + Number.EPSILON), v * (1 - Number.EPSILON / 2)]) { check(y); check(-y); }
    }
  }
});

test('F64 arrays encode to F16/BF16 with the same bits as the word-level rounding (the fast path is checked against it)', () => {
  let s = 2024;
  const rnd = (): number => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s; };
  const n = 200_000;
  const values = new Float64Array(n);
  const words = new Uint32Array(values.buffer);
  for (let i = 0; i < n; i++) {
    if (i % 2 === 0) { words[2 * i] = rnd(); words[2 * i + 1] = rnd(); } // any bit pattern, NaN payloads included
    else values[i] = (rnd() / 2 ** 32 - 0.5) * 2 ** ((rnd() % 90) - 45);
  }
  values.set([0, -0, Infinity, -Infinity, 65504, 65520, -65520, 3.4028235677973366e38, 2 ** -24, 2 ** -25, 2 ** -133, 2 ** -134], 0);
  for (const [dtype, ref] of [['F16', f64WordsToF16Bits], ['BF16', f64WordsToBf16Bits]] as const) {
    const out = new DataView(encodeFloats(values, dtype).buffer);
    for (let i = 0; i < n; i++) {
      const want = ref(words[2 * i + 1], words[2 * i]);
      if (out.getUint16(2 * i, true) !== want) assert.fail(`${dtype} ${values[i]}: ${out.getUint16(2 * i, true)} vs ${want}`);
    }
  }
});
