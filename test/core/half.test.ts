import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16Bits, bf16Value, f16Bits, f16CeilBits, f16Value, roundToBf16, roundToF16 } from '../../src/core/half.js';

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
