import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  QUANT_MODES, bitsPerValue, dequantize, quantize, quantizedBytes, type QuantMode, type QuantizedBlock,
} from '../../src/core/quantize.js';
import { QUANT_GROUP_SIZE } from '../../src/core/constants.js';
import { f16Value, roundToBf16, roundToF16 } from '../../src/core/half.js';
import { value } from '../../src/core/generator.js';
import { FormatError, NumericError } from '../../src/errors.js';

const INT_MODES: QuantMode[] = ['int8', 'int6', 'int5', 'int4', 'int3', 'int2'];
/** Counts that are not multiples of 8 or of the group size, plus the edges. */
const COUNTS = [0, 1, 7, 63, 64, 65, 127, 130, 1001];

function randomValues(n: number, tag: number, magnitude = 0.05): Float64Array {
  return Float64Array.from({ length: n }, (_, i) => magnitude * value(0x5eed, tag, i));
}

function roundTrip(block: QuantizedBlock): Float64Array {
  const out = new Float64Array(block.count);
  dequantize(block, out);
  return out;
}

/** The packing spec read literally: code t is bits t·b..t·b+b-1, bit s is bit (s mod 8) of byte ⌊s/8⌋. */
function unpackBySpec(codes: Uint8Array, bits: number, count: number): number[] {
  const out: number[] = [];
  for (let t = 0; t < count; t++) {
    let u = 0;
    for (let i = 0; i < bits; i++) {
      const s = t * bits + i;
      u |= ((codes[s >> 3] >> (s & 7)) & 1) << i;
    }
    out.push(u);
  }
  return out;
}

test('f32 round trip is Math.fround (exact for float32 values)', () => {
  const x = randomValues(1001, 1, 3);
  x[0] = 1 / 3; // not a float32
  const y = roundTrip(quantize(x, 'f32'));
  for (let i = 0; i < x.length; i++) assert.equal(y[i], Math.fround(x[i]));
  const exact = Float64Array.from(y);
  assert.deepEqual(roundTrip(quantize(exact, 'f32')), exact);
});

test('f16 and bf16 store the round-to-nearest-even value, ties included', () => {
  // Exact midpoints between neighbours: f16 around 1 (spacing 2^-10), bf16 around 1 (spacing 2^-7).
  const f16In = [1 + 2 ** -11, 1 + 3 * 2 ** -11, -(1 + 2 ** -11), 0.1, 65504, -3e-8];
  const f16Want = [1, 1 + 2 ** -9, -1, roundToF16(0.1), 65504, -(2 ** -24)];
  assert.deepEqual(Array.from(roundTrip(quantize(f16In, 'f16'))), f16Want);
  const bf16In = [1 + 2 ** -8, 1 + 3 * 2 ** -8, 3e38, -0.1];
  const bf16Want = [1, 1 + 2 ** -6, roundToBf16(3e38), roundToBf16(-0.1)];
  assert.deepEqual(Array.from(roundTrip(quantize(bf16In, 'bf16'))), bf16Want);
  // The bytes are little-endian: 1.0 is 0x3c00 in f16 and 0x3f80 in bf16.
  assert.deepEqual(Array.from(quantize([1], 'f16').codes), [0x00, 0x3c]);
  assert.deepEqual(Array.from(quantize([1], 'bf16').codes), [0x80, 0x3f]);
});

test('float modes refuse values they cannot hold', () => {
  assert.throws(() => quantize([70000], 'f16'), NumericError);
  assert.throws(() => quantize([1e39], 'f32'), NumericError);
  for (const mode of QUANT_MODES) {
    assert.throws(() => quantize([0, NaN], mode), NumericError);
    assert.throws(() => quantize([Infinity], mode), NumericError);
  }
});

test('int modes: scale is the smallest f16 ≥ absmax/L, codes in range, error ≤ scale/2 per group', () => {
  for (const mode of INT_MODES) {
    const bits = bitsPerValue(mode);
    const levels = 2 ** (bits - 1) - 1;
    for (const count of COUNTS) {
      const x = randomValues(count, count + bits);
      if (count > 70) x.fill(0, 64, 128); // an all-zero group
      const block = quantize(x, mode);
      const y = roundTrip(block);
      const codes = unpackBySpec(block.codes, bits, count);
      for (let g = 0; g * QUANT_GROUP_SIZE < count; g++) {
        const start = g * QUANT_GROUP_SIZE;
        const end = Math.min(start + QUANT_GROUP_SIZE, count);
        const scaleBits = block.scales[2 * g] | (block.scales[2 * g + 1] << 8);
        const scale = f16Value(scaleBits);
        let absmax = 0;
        for (let i = start; i < end; i++) absmax = Math.max(absmax, Math.abs(x[i]));
        assert.ok(scale >= absmax / levels, `${mode} group ${g}: scale below absmax/L`);
        if (scaleBits > 0) assert.ok(f16Value(scaleBits - 1) < absmax / levels, `${mode} group ${g}: scale not minimal`);
        for (let i = start; i < end; i++) {
          const q = codes[i] - 2 ** (bits - 1);
          assert.ok(Math.abs(q) <= levels, `${mode} code ${codes[i]} out of range`);
          assert.equal(y[i], q * scale, `${mode} value = q·scale`);
          assert.ok(Math.abs(x[i] - y[i]) <= (scale / 2) * (1 + 1e-12), `${mode} i=${i}: error ${Math.abs(x[i] - y[i])} > scale/2 = ${scale / 2}`);
        }
      }
      // Padding bits after the last code are zero.
      const used = count * bits;
      if (used % 8 !== 0) assert.equal(block.codes[block.codes.length - 1] >> (used % 8), 0);
    }
  }
});

test('clip search: never more squared error than absmax scaling, same layout rules', () => {
  // Second method: the absmax encoder (clipSearch off) is the baseline the search must not lose to.
  let gained = 0;
  for (const mode of INT_MODES) {
    const bits = bitsPerValue(mode);
    const levels = 2 ** (bits - 1) - 1;
    const x = randomValues(1000, 77 + bits);
    const plain = roundTrip(quantize(x, mode));
    const block = quantize(x, mode, { clipSearch: true });
    const searched = roundTrip(block);
    const codes = unpackBySpec(block.codes, bits, x.length);
    for (let g = 0; g * QUANT_GROUP_SIZE < x.length; g++) {
      let ePlain = 0, eSearch = 0;
      const scale = f16Value(block.scales[2 * g] | (block.scales[2 * g + 1] << 8));
      for (let i = g * QUANT_GROUP_SIZE; i < Math.min((g + 1) * QUANT_GROUP_SIZE, x.length); i++) {
        ePlain += (x[i] - plain[i]) ** 2;
        eSearch += (x[i] - searched[i]) ** 2;
        const q = codes[i] - 2 ** (bits - 1);
        assert.ok(Math.abs(q) <= levels);
        assert.equal(searched[i], q * scale);
      }
      assert.ok(eSearch <= ePlain * (1 + 1e-12), `${mode} group ${g}: ${eSearch} > ${ePlain}`);
      if (eSearch < ePlain) gained++;
    }
  }
  assert.ok(gained > 0, 'clipping never helped on random data: the search is not running');
});

test('int modes: the extremes of a group land on ±L and the grid is used symmetrically', () => {
  for (const mode of INT_MODES) {
    const bits = bitsPerValue(mode);
    const levels = 2 ** (bits - 1) - 1;
    // Every level -L..L, with ±L at the head of every group: absmax = L makes each scale exactly 1
    // (an f16), so x = q reproduces itself.
    const list: number[] = [];
    for (let q = -levels; q <= levels; q++) {
      if (list.length % QUANT_GROUP_SIZE === 0) list.push(levels, -levels);
      list.push(q);
    }
    const x = Float64Array.from(list);
    const block = quantize(x, mode);
    assert.deepEqual(Array.from(roundTrip(block)), Array.from(x));
    assert.deepEqual(unpackBySpec(block.codes, bits, x.length), Array.from(x, (q) => q + 2 ** (bits - 1)));
  }
});

test('int modes: halfway levels round to even', () => {
  // scale 1 (absmax 7 in int4): 0.5 → 0, 1.5 → 2, 2.5 → 2, -2.5 → -2, 6.5 → 6
  const y = roundTrip(quantize([7, 0.5, 1.5, 2.5, -2.5, 6.5], 'int4'));
  assert.deepEqual(Array.from(y), [7, 0, 2, 2, -2, 6]);
});

test('packing golden bytes (hand-computed from the spec; also in docs/FORMAT.md)', () => {
  // int4, scale 1: q = [1, -1, 7, -7, 0] → u = q + 8 = [9, 7, 15, 1, 8] → 0x79, 0x1f, 0x08
  const b4 = quantize([1, -1, 7, -7, 0], 'int4');
  assert.deepEqual(Array.from(b4.codes), [0x79, 0x1f, 0x08]);
  assert.deepEqual(Array.from(b4.scales), [0x00, 0x3c]);
  // int3, scale 1: q = [3, -3, 1, 0, -1, 2] → u = [7, 1, 5, 4, 3, 6]
  // stream = 7 + 1·2^3 + 5·2^6 + 4·2^9 + 3·2^12 + 6·2^15 = 0x3394f → 0x4f, 0x39, 0x03
  const b3 = quantize([3, -3, 1, 0, -1, 2], 'int3');
  assert.deepEqual(Array.from(b3.codes), [0x4f, 0x39, 0x03]);
  // int2 (ternary), scale 0.5: [0.5, -0.5, 0, 0.5, 0.2] → q = [1, -1, 0, 1, 0] → u = [3, 1, 2, 3, 2]
  // stream = 3 + 1·4 + 2·16 + 3·64 + 2·256 → 0xe7, 0x02
  const b2 = quantize([0.5, -0.5, 0, 0.5, 0.2], 'int2');
  assert.deepEqual(Array.from(b2.codes), [0xe7, 0x02]);
  assert.deepEqual(Array.from(b2.scales), [0x00, 0x38]);
});

test('quantizedBytes equals the bytes actually produced', () => {
  for (const mode of QUANT_MODES) {
    for (const count of COUNTS) {
      const block = quantize(randomValues(count, 9), mode);
      assert.equal(block.codes.length + block.scales.length, quantizedBytes(count, mode), `${mode} count=${count}`);
    }
  }
  // closed form for one case: 1001 int5 values = ⌈5005/8⌉ code bytes + 16 groups · 2
  assert.equal(quantizedBytes(1001, 'int5'), 626 + 32);
});

test('magnitudes beyond the f16 scale range are refused, tiny ones still meet the error bound', () => {
  assert.throws(() => quantize([1e7], 'int8'), NumericError);
  const tiny = Float64Array.from([3e-9, -1e-9, 2e-9]);
  const block = quantize(tiny, 'int8');
  const y = roundTrip(block);
  const scale = f16Value(block.scales[0] | (block.scales[1] << 8));
  assert.equal(scale, 2 ** -24); // smallest f16 subnormal ≥ 3e-9/127
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(tiny[i] - y[i]) <= scale / 2);
});

test('dequantize refuses blocks that break the layout', () => {
  const good = quantize(randomValues(10, 3), 'int4');
  const out = new Float64Array(10);
  const bad = (patch: Partial<QuantizedBlock>): QuantizedBlock => ({ ...good, ...patch });
  assert.throws(() => dequantize(bad({ codes: good.codes.slice(1) }), out), FormatError);
  assert.throws(() => dequantize(bad({ scales: new Uint8Array(4) }), out), FormatError);
  const zeroCode = good.codes.slice();
  zeroCode[0] &= 0xf0; // code 0 is reserved
  assert.throws(() => dequantize(bad({ codes: zeroCode }), out), FormatError);
  const negScale = good.scales.slice();
  negScale[1] |= 0x80;
  assert.throws(() => dequantize(bad({ scales: negScale }), out), FormatError);
  const nanScale = Uint8Array.from([0x01, 0x7e]);
  assert.throws(() => dequantize(bad({ scales: nanScale }), out), FormatError);
  const odd = quantize(randomValues(3, 4), 'int4'); // 12 bits: 4 padding bits in byte 1
  const dirty = odd.codes.slice();
  dirty[1] |= 0x10;
  assert.throws(() => dequantize({ ...odd, codes: dirty }, new Float64Array(3)), FormatError);
  const f16 = quantize([1, 2], 'f16');
  assert.throws(() => dequantize({ ...f16, codes: Uint8Array.from([0, 0x7c, 0, 0]) }, new Float64Array(2)), FormatError);
});

test('segments: a segmented block is its segments quantized alone, one after the other (codes, then scales)', () => {
  const values = randomValues(1001, 77);
  for (const spec of [
    [['int5', 640], ['int4', 361]],
    [['int6', 1], ['int3', 1000]],
    [['f16', 100], ['int8', 801], ['int2', 100]],
  ] as Array<Array<[QuantMode, number]>>) {
    const block = quantize(values, spec, { clipSearch: true });
    let at = 0;
    const parts = spec.map(([mode, n]) => { const p = quantize(values.subarray(at, at + n), mode, { clipSearch: true }); at += n; return p; });
    const cat = (xs: Uint8Array[]): number[] => xs.flatMap((x) => [...x]);
    assert.deepEqual([...block.codes], cat(parts.map((p) => p.codes)));
    assert.deepEqual([...block.scales], cat(parts.map((p) => p.scales)));
    assert.equal(block.codes.length + block.scales.length, quantizedBytes(1001, spec));
    // Read back: each value as its own segment stored it.
    const expected = parts.flatMap((p) => [...roundTrip(p)]);
    assert.deepEqual([...roundTrip(block)], expected);
  }
});

test('segments: counts must add up; a damaged segment is named by where it starts', () => {
  const values = randomValues(130, 78);
  assert.throws(() => quantize(values, [['int4', 64], ['int3', 65]]), (e) => e instanceof FormatError && /hold 129 values, the factor has 130/.test(e.message));
  assert.throws(() => quantize(values, [['int4', 0], ['int3', 130]]), FormatError);
  assert.throws(() => quantize(values, [['int9' as QuantMode, 130]]), FormatError);
  const block = quantize(values, [['int4', 64], ['int3', 66]]);
  const codes = new Uint8Array(block.codes);
  codes[32] = 0; // the first byte of the int3 segment: codes 0 are reserved
  assert.throws(() => dequantize({ ...block, codes }, new Float64Array(130)), (e) => e instanceof FormatError && /^segment at value 64: int3 block: code 0 at index 0 is reserved/.test(e.message));
});
