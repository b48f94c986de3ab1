/**
 * The range compress checks before it writes (no factor may round past its dtype) comes from the
 * fit's own synthesis of the stored coefficients (CompressedLayer.maxAbs). The second method is
 * expand's: expandLayer rebuilds the bases from the seeds and synthesizes the factors from the
 * blocks alone; the two must agree exactly, for every basis family and coding.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compressLayer, expandLayer, maxAbsOf, type LayerRecipe } from '../../src/core/compress-layer.js';
import { randomMat } from './random-mat.js';

test('a stored layer\'s recorded range is the range expand synthesizes from its blocks', () => {
  const rank = 4, dIn = 48, dOut = 40;
  const target = { a0: randomMat(rank, dIn, 11), b0: randomMat(dOut, rank, 12), s0: 0.75 };
  const recipes: LayerRecipe[] = [
    { rank, k: rank * dIn, l: dOut * rank, basis: 'orthogonal-components', quantA: { rice: 0.01 }, quantB: { rice: 0.02 }, seedA: 7, seedB: 8 },
    { rank, k: 100, l: 90, basis: 'orthogonal', quantA: 'int4', quantB: 'f16', seedA: 9, seedB: 10 },
    { rank: 3, k: 64, l: 64, basis: 'uniform', quantA: 'int8', quantB: { rice: 0.005 }, seedA: 11, seedB: 12, fit: { refineIters: 3 } },
  ];
  for (const recipe of recipes) {
    const layer = compressLayer(target, recipe);
    const { a, b } = expandLayer(layer.settings, dIn, dOut, layer.blockA, layer.blockB);
    assert.deepEqual(layer.maxAbs, { a: maxAbsOf(a.data), b: maxAbsOf(b.data) }, `${recipe.basis}`);
    assert.ok(layer.maxAbs.a > 0 && layer.maxAbs.b > 0, `${recipe.basis}: a non-trivial layer`);
  }
});

test('maxAbsOf: the largest magnitude, and NaN as soon as any entry is NaN', () => {
  assert.equal(maxAbsOf(new Float64Array([0.5, -3, 2])), 3);
  assert.equal(maxAbsOf(new Float64Array(0)), 0);
  assert.ok(Number.isNaN(maxAbsOf(new Float64Array([1, NaN, 1e308]))));
  assert.equal(maxAbsOf(new Float64Array([-Infinity, 1])), Infinity);
});
