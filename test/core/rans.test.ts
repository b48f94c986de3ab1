/**
 * The rans coding (src/core/rans.ts; docs/FORMAT.md "rANS blocks"). Expected bytes come from the
 * spec worked by hand (below); the model table from its defining formula; the coder's round trip and
 * its refusals from the rules a reader must enforce; its size against the levels' model entropy
 * (Σ −log2(f/2^16), a closed form of the model) and against the Rice code of the same levels.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeRans, encodeRans, MAX_RANS_P, maxRansMagnitude, RANS_HEADER_BYTES, ransModel } from '../../src/core/rans.js';
import { RANS_R } from '../../src/core/constants.js';
import { bestRiceK, riceLevels } from '../../src/core/rice.js';
import { dequantize, quantize, type QuantSegment } from '../../src/core/quantize.js';
import { FormatError } from '../../src/errors.js';

function decode(block: Uint8Array, count: number): number[] {
  const out = new Float64Array(count);
  decodeRans(block, count, out);
  return [...out];
}

/** Deterministic N(0, u²) levels (Box–Muller on a small LCG), rounded. */
function gaussianLevels(n: number, u: number, seed: number): Int32Array {
  let s = seed >>> 0;
  const uniform = (): number => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return (s + 0.5) / 2 ** 32; };
  const q = new Int32Array(n);
  for (let i = 0; i < n; i++) q[i] = Math.round(u * Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform()));
  return q;
}

test('the model table is round(2^24 · exp(-1/(2u²))) with u = 2^((p - 24)/8), and every model sums to 2^16', () => {
  assert.equal(RANS_R.length, 96);
  for (let p = 0; p <= MAX_RANS_P; p++) {
    assert.equal(RANS_R[p], Math.round(2 ** 24 * Math.exp(-(2 ** (-1 - (p - 24) / 4)))), `p = ${p}`);
    const m = ransModel(p);
    assert.equal(m.freq.reduce((a, f) => a + f, 0), 2 ** 16, `p = ${p}`);
    assert.ok(m.freq.every((f) => f >= 1), `p = ${p}`);
    assert.equal(m.cum[m.freq.length], 2 ** 16);
  }
  assert.equal(ransModel(0).L, 0);
  assert.equal(maxRansMagnitude(), 2357); // FORMAT.md states 0 ≤ L ≤ 2357 for this table
});

test('a hand-worked block: p = 8, step 0.5, levels 1, 0, -1, 0', () => {
  // Model p = 8: R = 5628. w_0 = 2^24, c = 5628, r2 = ⌊5628² / 2^24⌋ = ⌊31674384 / 16777216⌋ = 1.
  // w_1 = ⌊2^24 · 5628 / 2^24⌋ = 5628; c = ⌊5628 · 1 / 2^24⌋ = 0; w_2 = 0: stop, L = 1, n = 3.
  // W = 2^24 + 2 · 5628 = 16788472. f_±1 = 1 + ⌊5628 · 65533 / 16788472⌋ = 1 + ⌊368819724 / 16788472⌋ = 22;
  // f_0 = 1 + ⌊2^24 · 65533 / 16788472⌋ = 1 + 65489 = 65490, plus the rest 65536 − 65534 = 2: 65492.
  // C_-1 = 0, C_0 = 22, C_1 = 65514.
  const m = ransModel(8);
  assert.deepEqual([m.L, ...m.freq], [1, 22, 65492, 22]);
  assert.deepEqual([...m.cum], [0, 22, 65514, 65536]);
  // Encode in reverse from x = 2^23 = 8388608 (renormalize while x ≥ 2^15 · f):
  //   q = 0:  8388608 < 2^15 · 65492;  x = ⌊8388608 / 65492⌋ · 65536 + 8388608 mod 65492 + 22 = 128 · 65536 + 5632 + 22 = 8394262
  //   q = −1: 8394262 ≥ 2^15 · 22 = 720896: emit 8394262 mod 256 = 22, x = 32790; < 720896.
  //           x = ⌊32790 / 22⌋ · 65536 + 32790 mod 22 + 0 = 1490 · 65536 + 10 = 97648650
  //   q = 0:  x = 1491 · 65536 + (97648650 − 1491 · 65492 = 3078) + 22 = 97714276
  //   q = 1:  97714276 ≥ 720896: emit 97714276 mod 256 = 100, x = 381696; x = 17349 · 65536 + 18 + 65514 = 1137049596
  // Block: step 0.5 = 00 00 00 3f, p = 08, state 1137049596 = 0x43c5fffc LE = fc ff c5 43, then the
  // bytes last-emitted first: 64 (100), 16 (22).
  const block = encodeRans(Int32Array.from([1, 0, -1, 0]), 0.5, 8)!;
  assert.deepEqual([...block], [0x00, 0x00, 0x00, 0x3f, 0x08, 0xfc, 0xff, 0xc5, 0x43, 0x64, 0x16]);
  assert.deepEqual(decode(block, 4), [0.5, 0, -0.5, 0]);
});

test('blocks of every shape decode to exactly level · step, and cost the model entropy plus at most the header and 2 bytes', () => {
  const cases: Array<[string, Int32Array]> = [
    ['all zeros', new Int32Array(3000)],
    ['one nonzero', Int32Array.from({ length: 500 }, (_, i) => (i === 250 ? -1 : 0))],
    ['u = 0.3', gaussianLevels(2000, 0.3, 1)],
    ['u = 2', gaussianLevels(4096, 2, 2)],
    ['u = 9', gaussianLevels(768, 9, 3)],
    ['u = 300', gaussianLevels(5000, 300, 4)],
    ['one value', Int32Array.from([7])],
  ];
  for (const [name, q] of cases) {
    const step = Math.fround(0.037);
    const block = encodeRans(q, step)!;
    assert.ok(block !== undefined, name);
    const back = decode(block, q.length);
    for (let i = 0; i < q.length; i++) assert.equal(back[i], q[i] * step, `${name}: value ${i}`);
    const m = ransModel(block[4]);
    let bits = 0;
    for (const v of q) bits += 16 - Math.log2(m.freq[v + m.L]);
    const payload = block.length - RANS_HEADER_BYTES;
    assert.ok(payload <= Math.ceil(bits / 8) + 2, `${name}: ${payload} bytes for ${bits.toFixed(1)} bits`);
  }
  // All zeros: model L = 0 gives level 0 the whole range, so the block is the 9-byte header alone.
  assert.equal(encodeRans(new Int32Array(3000), 1)!.length, RANS_HEADER_BYTES);
});

test('on Gaussian levels rans is shorter than the best Rice code by about the measured 2-3%', () => {
  // bench/stored-levels.py measured 2.0-2.5% on the default files' levels (3.5-4 bits a value).
  for (const u of [3, 5, 8]) {
    const q = gaussianLevels(20000, u, 10 + u);
    const rice = bestRiceK(q).bytes, rans = encodeRans(q, 1)!.length;
    const gain = 1 - rans / rice;
    assert.ok(gain > 0.01 && gain < 0.06, `u = ${u}: rice ${rice}, rans ${rans} bytes (${(100 * gain).toFixed(2)}%)`);
  }
});

test('levels beyond every model are left to rice; a model that does not cover them is refused', () => {
  const q = Int32Array.from([0, 1, maxRansMagnitude() + 1]);
  assert.equal(encodeRans(q, 1), undefined);
  assert.equal(encodeRans(Int32Array.from([0, 2]), 1, 8), undefined); // p = 8 codes −1 … 1 only
});

test('a reader refuses every malformed block', () => {
  const good = encodeRans(gaussianLevels(300, 4, 7), 0.25)!;
  const mutate = (f: (b: Uint8Array) => Uint8Array): Uint8Array => f(Uint8Array.from(good));
  const bad: Array<[string, Uint8Array, number, RegExp]> = [
    ['short', good.subarray(0, 8), 300, /shorter than its 9-byte header/],
    ['step 0', mutate((b) => { b.set([0, 0, 0, 0]); return b; }), 300, /step 0 is not a positive finite f32/],
    ['step NaN', mutate((b) => { b.set([0, 0, 0xc0, 0x7f]); return b; }), 300, /step NaN/],
    ['p = 96', mutate((b) => { b[4] = 96; return b; }), 300, /p = 96 exceeds 95/],
    ['state < 2^23', mutate((b) => { b.set([0xff, 0xff, 0x7f, 0x00], 5); return b; }), 300, /outside \[2\^23, 2\^31\)/],
    ['state ≥ 2^31', mutate((b) => { b[8] = 0x80; return b; }), 300, /outside \[2\^23, 2\^31\)/],
    ['truncated', good.subarray(0, good.length - 1), 300, /bytes end before value|starting 2\^23/],
    ['trailing byte', Uint8Array.from([...good, 0]), 300, /1 bytes after the last value/],
    ['count too small', good, 299, /bytes after the last value|starting 2\^23/],
    ['count too large', good, 301, /bytes end before value|starting 2\^23/],
    ['flipped byte', mutate((b) => { b[b.length - 3] ^= 0x10; return b; }), 300, /starting 2\^23|bytes end|bytes after/],
  ];
  for (const [name, block, count, message] of bad) {
    assert.throws(() => decode(block, count), (e: unknown) => e instanceof FormatError && message.test(e.message), name);
  }
});

test('quantize codes each block rice or rans, whichever is shorter, and the values read back are the same either way', () => {
  const values = Float64Array.from(gaussianLevels(4096, 5, 21), (q, i) => q * 0.01 + ((i % 7) - 3) * 0.0004);
  const step = 0.01;
  const rice = quantize(values, { rice: [step, step] });
  const best = quantize(values, { rice: [step, step], rans: true });
  assert.deepEqual((rice.mode as readonly QuantSegment[]).map((s) => s[0]), ['rice', 'rice']);
  assert.deepEqual((best.mode as readonly QuantSegment[]).map((s) => s[0]), ['rans', 'rans']);
  assert.ok(best.codes.length < rice.codes.length);
  const a = new Float64Array(values.length), b = new Float64Array(values.length);
  dequantize(rice, a);
  dequantize(best, b);
  assert.deepEqual(b, a);
  assert.deepEqual(a, Float64Array.from(riceLevels(values, Math.fround(step)), (q) => q * Math.fround(step)));
  // A block rice codes in fewer bytes stays rice: one level 1 (z = 2, k = 0: unary 001) is 5 + 1 bytes as rice, ≥ 9 as rans.
  assert.deepEqual(quantize([0.01], { rice: step, rans: true }).mode, [['rice', 1, 6]]);
});
