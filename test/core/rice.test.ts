/**
 * The rice coding (src/core/rice.ts; docs/FORMAT.md "Rice blocks"). Expected bytes come from the
 * spec read literally (a hand-worked block, and a bit-by-bit encoder written here), values from
 * q·step; the entropy claim is checked against the closed-form entropy of the levels.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bestRiceK, decodeRice, encodeRice, riceLevels, MAX_RICE_K, RICE_HEADER_BYTES } from '../../src/core/rice.js';
import { dequantize, quantize, quantizedBytes } from '../../src/core/quantize.js';
import { value } from '../../src/core/generator.js';
import { FormatError } from '../../src/errors.js';

function decode(block: Uint8Array, count: number): number[] {
  const out = new Float64Array(count);
  decodeRice(block, count, out);
  return [...out];
}

test('a hand-worked block: step 0.5, levels 0, 1, -1, 2 (k = 0)', () => {
  // values 0, 0.5, -0.5, 1.0 -> q 0, 1, -1, 2 -> z 0, 2, 1, 4. Block sizes: k = 0: 5 + 0 + ⌈(7 + 4)/8⌉ = 7;
  // k = 1: 5 + ⌈4/8⌉ + ⌈(3 + 4)/8⌉ = 7; k = 2: 5 + 1 + ⌈(1 + 4)/8⌉ = 7. Ties keep the smallest k, 0.
  const { bytes, step } = encodeRice([0, 0.5, -0.5, 1.0], 0.5);
  assert.equal(step, 0.5);
  // header: 0.5 as f32 LE = 00 00 00 3f, k = 0; unary for z = 0,2,1,4: 1 | 001 | 01 | 00001 -> bits
  // s0=1, s1..s2=0, s3=1, s4=0, s5=1, s6..s9=0, s10=1 -> byte0 = 0b00101001 = 0x29, byte1 = 0b00000100 = 0x04
  assert.deepEqual([...bytes], [0x00, 0x00, 0x00, 0x3f, 0, 0x29, 0x04]);
  assert.deepEqual(decode(bytes, 4), [0, 0.5, -0.5, 1.0]);
});

/** The format read literally, one bit at a time (independent of the encoder's arithmetic). */
function encodeBySpec(values: number[], step: number, k: number): Uint8Array {
  const bitsRem: number[] = [], bitsUnary: number[] = [];
  for (const x of values) {
    const r = x / step, f = Math.floor(r), d = r - f;
    const q = d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f; // round half to even
    const z = q >= 0 ? 2 * q : -2 * q - 1;
    for (let b = 0; b < k; b++) bitsRem.push(Math.floor(z / 2 ** b) % 2);
    for (let u = 0; u < Math.floor(z / 2 ** k); u++) bitsUnary.push(0);
    bitsUnary.push(1);
  }
  const pack = (bits: number[]): number[] => Array.from({ length: Math.ceil(bits.length / 8) }, (_, i) =>
    bits.slice(8 * i, 8 * i + 8).reduce((acc, bit, j) => acc | (bit << j), 0));
  const header = new Uint8Array(5);
  new DataView(header.buffer).setFloat32(0, step, true);
  header[4] = k;
  return Uint8Array.from([...header, ...pack(bitsRem), ...pack(bitsUnary)]);
}

test('encoder bytes equal the spec read literally, at the k it chooses, for many sizes and steps', () => {
  for (const [n, step, tag] of [[1, 0.01, 1], [7, 0.3, 2], [64, 0.004, 3], [513, 0.0007, 4], [1000, 1e-5, 5]] as const) {
    const values = Array.from({ length: n }, (_, i) => 0.05 * value(0xabc, tag, i));
    const { bytes, step: used } = encodeRice(values, step);
    assert.equal(used, Math.fround(step));
    assert.deepEqual([...bytes], [...encodeBySpec(values, used, bytes[4])], `n=${n} step=${step}`);
    // Read back: exactly q·step for every value, so |x - value| ≤ step/2.
    const back = decode(bytes, n);
    back.forEach((v, i) => assert.ok(Math.abs(v - values[i]) <= used / 2 + 1e-18, `n=${n} i=${i}`));
    // The chosen k is the smallest block over every k.
    const levels = riceLevels(values, used);
    for (let k = 0; k <= MAX_RICE_K; k++) assert.ok(bytes.length <= encodeBySpec(values, used, k).length);
    assert.equal(bestRiceK(levels).bytes, bytes.length);
  }
});

test('on Gaussian-like levels the code costs within 0.25 bit per value of their entropy', () => {
  // Sum of 4 generator values ~ bell-shaped; step at 1/8 of its spread: entropy about 4.5 bits.
  const n = 20000;
  const values = Array.from({ length: n }, (_, i) => [0, 1, 2, 3].reduce((a, r) => a + value(77, r, i), 0));
  const { bytes, step } = encodeRice(values, 0.14);
  const counts = new Map<number, number>();
  for (const q of riceLevels(values, step)) counts.set(q, (counts.get(q) ?? 0) + 1);
  const entropy = [...counts.values()].reduce((h, c) => h - (c / n) * Math.log2(c / n), 0);
  const bits = (8 * (bytes.length - RICE_HEADER_BYTES)) / n;
  assert.ok(bits >= entropy - 1e-9, `${bits} < entropy ${entropy}: impossible for a prefix code`);
  assert.ok(bits <= entropy + 0.25, `rice ${bits.toFixed(3)} bits vs entropy ${entropy.toFixed(3)}`);
});

test('through quantize/dequantize: a rice request becomes a ["rice", count, bytes] spec, sizes agree', () => {
  const values = Float64Array.from({ length: 300 }, (_, i) => 0.02 * value(5, 9, i));
  const block = quantize(values, { rice: 0.001 });
  assert.deepEqual(block.mode, [['rice', 300, block.codes.length]]);
  assert.equal(quantizedBytes(300, block.mode), block.codes.length);
  const out = new Float64Array(300);
  dequantize(block, out);
  out.forEach((v, i) => assert.ok(Math.abs(v - values[i]) <= Math.fround(0.001) / 2 + 1e-18));
  // Mixed with a fixed-size segment.
  const mixed = { ...block, mode: [['int8', 100], ['rice', 200, 0]] as const };
  assert.throws(() => dequantize(mixed as never, out), FormatError);
});

test('malformed blocks are refused with a FormatError', () => {
  const { bytes } = encodeRice([0.1, -0.2, 0.3, 0.05], 0.01);
  const bad = (edit: (b: Uint8Array) => Uint8Array, pattern: RegExp): void => {
    assert.throws(() => decode(edit(Uint8Array.from(bytes)), 4), (e) => e instanceof FormatError && pattern.test(e.message));
  };
  bad((b) => b.subarray(0, 3), /shorter than its 5-byte header/);
  bad((b) => { new DataView(b.buffer).setFloat32(0, 0, true); return b; }, /step 0 is not a positive finite f32/);
  bad((b) => { new DataView(b.buffer).setFloat32(0, Number.NaN, true); return b; }, /not a positive finite f32/);
  bad((b) => { b[4] = 25; return b; }, /k = 25 exceeds 24/);
  bad((b) => b.subarray(0, b.length - 1), /ends before value|unary stream/);
  bad((b) => Uint8Array.from([...b, 0]), /bytes after the last value/);
  bad((b) => { b[b.length - 1] |= 0x80; return b; }, /padding bits after the last value|bytes after/);
});
