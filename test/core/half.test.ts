import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16Bits, bf16Value, f16Bits, f16CeilBits, f16Value, roundArrayToHalf, roundToBf16, roundToF16 } from '../../src/core/half.js';
import * as ref from './half-reference.js';

/** IEEE 754 closed form of a 16-bit pattern with `mant` mantissa bits and exponent `bias`. */
function closedForm(bits: number, mant: number, bias: number): number {
  const expBits = 15 - mant;
  const s = bits >> 15 ? -1 : 1;
  const e = (bits >> mant) & ((1 << expBits) - 1);
  const m = bits & ((1 << mant) - 1);
  if (e === (1 << expBits) - 1) return m ? NaN : s * Infinity;
  return e === 0 ? s * m * Math.pow(2, 1 - bias - mant) : s * (1 + m / Math.pow(2, mant)) * Math.pow(2, e - bias);
}

test('f16 and bf16 decode every bit pattern as the IEEE closed form, and encode it back', () => {
  for (let h = 0; h < 0x10000; h++) {
    const a = f16Value(h);
    const b = bf16Value(h);
    assert.ok(Object.is(a, closedForm(h, 10, 15)), `f16 0x${h.toString(16)}`);
    assert.ok(Object.is(b, closedForm(h, 7, 127)), `bf16 0x${h.toString(16)}`);
    if (!Number.isNaN(a)) assert.equal(f16Bits(a), h);
    if (!Number.isNaN(b)) assert.equal(bf16Bits(b), h);
  }
});

test('f16 rounds to nearest, ties to even, at normal and subnormal spacing', () => {
  // Consecutive f16 values lo < hi; the exact midpoint goes to the one with an even mantissa.
  const cases: Array<[number, number, number]> = [
    // [lo, hi, even one of the two]
    [1, 1 + 2 ** -10, 1],                       // mantissas 0 (even) and 1
    [1 + 2 ** -10, 1 + 2 ** -9, 1 + 2 ** -9],   // mantissas 1 and 2 (even)
    [2048, 2050, 2048],                          // spacing 2 at 2^11
    [2050, 2052, 2052],
    [3 * 2 ** -24, 4 * 2 ** -24, 4 * 2 ** -24],  // subnormals 3 and 4 quanta
    [0, 2 ** -24, 0],                            // below the smallest subnormal
    [65504 - 32, 65504, 65504 - 32],             // top of the range: mantissa 0x3fe (even), 0x3ff
  ];
  for (const [lo, hi, even] of cases) {
    const mid = (lo + hi) / 2;
    assert.equal(roundToF16(mid), even, `tie ${mid}`);
    assert.equal(roundToF16(-mid), -even, `tie -${mid}`);
    assert.equal(roundToF16(mid + (hi - lo) * 2 ** -20), hi, `above ${mid}`);
    assert.equal(roundToF16(mid - (hi - lo) * 2 ** -20), lo, `below ${mid}`);
  }
  // 65520 is the midpoint between 65504 (odd mantissa) and 2^16, which is not finite in f16.
  assert.equal(roundToF16(65519.99), 65504);
  assert.equal(roundToF16(65520), Infinity);
  assert.equal(roundToF16(-1e9), -Infinity);
  assert.ok(Object.is(roundToF16(-1e-30), -0));
  assert.equal(f16Bits(NaN) & 0x7c00, 0x7c00);
  assert.ok(Number.isNaN(f16Value(f16Bits(NaN))));
});

test('bf16 rounds once from the double (no detour through float32)', () => {
  // Ties to even at 1: spacing 2^-7.
  assert.equal(roundToBf16(1 + 2 ** -8), 1);
  assert.equal(roundToBf16(1 + 3 * 2 ** -8), 1 + 2 ** -6);
  // Just above the tie by less than a float32 ulp: float32 would first round to the tie, then to 1.
  assert.equal(Math.fround(1 + 2 ** -8 + 2 ** -40), 1 + 2 ** -8);
  assert.equal(roundToBf16(1 + 2 ** -8 + 2 ** -40), 1 + 2 ** -7);
  // Largest finite bf16 and the overflow threshold.
  const max = (2 - 2 ** -7) * 2 ** 127;
  assert.equal(roundToBf16(max), max);
  assert.equal(roundToBf16(max + 2 ** 119), Infinity); // exactly halfway to 2^128, ties to even = 2^128
  assert.equal(roundToBf16(2 ** -133), 2 ** -133); // smallest subnormal
  assert.equal(roundToBf16(2 ** -134), 0);
  assert.equal(roundToBf16(2 ** -134 * 1.0001), 2 ** -133);
});

test('f16CeilBits gives the smallest f16 that is not below x', () => {
  for (const x of [0, 1e-9, 2 ** -24, 3e-6, 0.1, 1, 1 + 2 ** -11, 1000.3, 65504]) {
    const up = f16Value(f16CeilBits(x));
    assert.ok(up >= x, `${x}`);
    const below = f16CeilBits(x) === 0 ? -Infinity : f16Value(f16CeilBits(x) - 1);
    assert.ok(below < x, `${x}`);
  }
  assert.equal(f16CeilBits(1), 0x3c00);
  assert.equal(f16CeilBits(65504.5), 0x7c00);
});

// The bit-operation encoder and table decoder (issue #10) against the pre-#10 implementation,
// kept verbatim in half-reference.ts: every 16-bit code, and a few million doubles chosen to hit
// every exponent, every tie and both neighbours of every tie.

test('fast f16/bf16 decode matches the reference on all 65536 codes of each format', () => {
  for (let h = 0; h < 0x10000; h++) {
    assert.ok(Object.is(f16Value(h), ref.f16Value(h)), `f16 0x${h.toString(16)}`);
    assert.ok(Object.is(bf16Value(h), ref.bf16Value(h)), `bf16 0x${h.toString(16)}`);
  }
});

function doubleFromWords(hi: number, lo: number): number {
  const u = new Uint32Array(2);
  const f = new Float64Array(u.buffer);
  const le = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  u[le ? 1 : 0] = hi >>> 0;
  u[le ? 0 : 1] = lo >>> 0;
  return f[0];
}

function checkOne(x: number): void {
  const a = f16Bits(x), b = ref.f16Bits(x);
  if (a !== b) assert.fail(`f16Bits(${x}) = 0x${a.toString(16)}, reference 0x${b.toString(16)}`);
  const c = bf16Bits(x), d = ref.bf16Bits(x);
  if (c !== d) assert.fail(`bf16Bits(${x}) = 0x${c.toString(16)}, reference 0x${d.toString(16)}`);
  if (!Object.is(roundToF16(x), ref.roundToF16(x))) assert.fail(`roundToF16(${x})`);
  if (!Object.is(roundToBf16(x), ref.roundToBf16(x))) assert.fail(`roundToBf16(${x})`);
  if (Number.isFinite(x) && x >= 0 && f16CeilBits(x) !== ref.f16CeilBits(x)) assert.fail(`f16CeilBits(${x})`);
}

test('fast f16/bf16 encode matches the reference at every tie, its neighbours and random doubles', () => {
  let s = 12345;
  const rnd = (): number => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
  // Random bit patterns over every exponent (NaNs, infinities, subnormals included).
  for (let i = 0; i < 400000; i++) checkOne(doubleFromWords(rnd(), rnd()));
  // Random doubles near the two formats' ranges: exponents 2^-160 .. 2^20.
  for (let i = 0; i < 400000; i++) {
    const hi = (((rnd() % 181) + 1023 - 160) << 20) | (rnd() & 0xfffff) | (rnd() & 0x80000000);
    checkOne(doubleFromWords(hi, rnd()));
  }
  // Every representable value, the midpoint to the next one, and one double ulp either side of both.
  const pairs: Array<[(h: number) => number, number]> = [[ref.f16Value, 0x7c00], [ref.bf16Value, 0x7f80]];
  for (const [value, inf] of pairs) {
    for (let h = 0; h < inf; h++) {
      const lo = value(h);
      const hi = h + 1 < inf ? value(h + 1) : lo * 2;
      const mid = (lo + hi) / 2;
      for (const v of [lo, mid, hi]) {
        const up = v === 0 ? Number.MIN_VALUE : v * (1 + Number.EPSILON);
        const down = v === 0 ? 0 : v * (1 - Number.EPSILON / 2);
        for (const y of [v, up, down]) { checkOne(y); checkOne(-y); }
      }
    }
  }
  for (const x of [0, -0, NaN, -NaN, Infinity, -Infinity, Number.MIN_VALUE, Number.MAX_VALUE, 65504, 65519.999, 65520, 2 ** -24, 2 ** -25, 2 ** -25 * (1 + 2 ** -52), 2 ** -133, 2 ** -134, 3 * 2 ** -135]) {
    checkOne(x);
    checkOne(-x);
  }
});

test('roundArrayToHalf rounds every element like roundToF16 / roundToBf16', () => {
  const x = Float64Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 2 ** ((i % 60) - 30));
  const a = new Float64Array(x.length);
  const b = new Float64Array(x.length);
  roundArrayToHalf(x, a, 'f16');
  roundArrayToHalf(x, b, 'bf16');
  for (let i = 0; i < x.length; i++) {
    assert.ok(Object.is(a[i], ref.roundToF16(x[i])));
    assert.ok(Object.is(b[i], ref.roundToBf16(x[i])));
  }
});
