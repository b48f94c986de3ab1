import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mix32, value, fillRow, u32 } from '../../src/core/generator.js';

// Expected values: the published test vectors of lowbias32-v1 in the project's issue #2 spec
// (computed independently of this code base).
test('mix32 matches the published vectors', () => {
  assert.equal(mix32(1), 2261973619);
  assert.equal(mix32(0xdeadbeef), 707447538);
});

test('value(seed, i, j) matches the published vectors', () => {
  const cases: Array<[number, number, number[]]> = [
    [0, 0, [-0.28938889503479004, -0.5487171411514282, -0.21969759464263916, 0.3470458984375]],
    [0, 1, [-0.8097375631332397, 0.3052774667739868, -0.9680355787277222, 0.5633952617645264]],
    [12345, 3, [0.3168637752532959, -0.6999447345733643, -0.0344616174697876, 0.26160120964050293]],
  ];
  for (const [seed, i, expected] of cases) {
    expected.forEach((v, j) => assert.equal(value(seed, i, j), v, `value(${seed},${i},${j})`));
    const row = new Float32Array(4);
    fillRow(seed, i, row);
    assert.deepEqual(Array.from(row), expected, `fillRow(${seed},${i})`);
  }
});

test('values are exact float32, in [-1, 1), and roughly uniform (mean 0, variance 1/3)', () => {
  const n = 200_000;
  const row = new Float64Array(n);
  fillRow(7, 2, row);
  let sum = 0, sq = 0;
  for (const v of row) {
    assert.ok(v >= -1 && v < 1);
    assert.equal(Math.fround(v), v);
    sum += v; sq += v * v;
  }
  // Closed form for U[-1,1): mean 0, variance 1/3; tolerances are ~5 standard errors.
  assert.ok(Math.abs(sum / n) < 5 * Math.sqrt(1 / 3 / n));
  assert.ok(Math.abs(sq / n - 1 / 3) < 5 * Math.sqrt(4 / 45 / n));
});

test('u32 treats seeds above 2^31 as unsigned', () => {
  assert.equal(u32(0xffffffff, 0, 0), u32(-1 >>> 0, 0, 0));
  assert.notEqual(value(0x80000000, 0, 0), value(0, 0, 0));
});
