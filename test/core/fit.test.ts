import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitLayer, realCubicRoots, targetSvd } from '../../src/core/fit.js';
import { createUniformBasis } from '../../src/core/uniform-basis.js';
import { mat, matmul, type Mat } from '../../src/core/matrix.js';
import { relativeError, relativeErrorToSvd, truncationError, lowRankNorm } from '../../src/core/lowrank.js';
import { randomMat } from './random-mat.js';

function denseNorm(m: Mat): number {
  let s = 0;
  for (const v of m.data) s += v * v;
  return Math.sqrt(s);
}

test('low-rank norm and relative error agree with the dense computation (second method)', () => {
  const b0 = randomMat(30, 3, 1), a0 = randomMat(3, 20, 2);
  const b = randomMat(30, 2, 3), a = randomMat(2, 20, 4);
  const t = matmul(b0, a0), that = matmul(b, a);
  const diff = mat(30, 20);
  for (let i = 0; i < diff.data.length; i++) diff.data[i] = 1.5 * t.data[i] - 0.7 * that.data[i];
  assert.ok(Math.abs(lowRankNorm([{ coef: 1.5, x: b0, y: a0 }]) - 1.5 * denseNorm(t)) < 1e-12);
  const rel = relativeError(1.5, b0, a0, 0.7, b, a);
  assert.ok(Math.abs(rel - denseNorm(diff) / (1.5 * denseNorm(t))) < 1e-12);
});

test('low-rank SVD reproduces the target and Eckart–Young truncation error', () => {
  const b0 = randomMat(25, 4, 5), a0 = randomMat(4, 18, 6);
  const svd = targetSvd({ a0, b0, s0: 2 });
  // Reconstruct U diag(σ) Vᵀ densely and compare with 2·B0·A0.
  const t = matmul(b0, a0);
  let err = 0;
  for (let i = 0; i < 25; i++) for (let j = 0; j < 18; j++) {
    let v = 0;
    for (let p = 0; p < 4; p++) v += svd.u.data[i * 4 + p] * svd.sigma[p] * svd.vt.data[p * 18 + j];
    err = Math.max(err, Math.abs(v - 2 * t.data[i * 18 + j]));
  }
  assert.ok(err < 1e-12, `reconstruction error ${err}`);
  for (let i = 1; i < 4; i++) assert.ok(svd.sigma[i - 1] >= svd.sigma[i]);
  assert.equal(truncationError(svd.sigma, 4), 0);
  assert.equal(truncationError(svd.sigma, 0), 1);
});

test('k equal to the factor size reaches ~0 error (the bases span every factor)', () => {
  const r = 2, dIn = 9, dOut = 7;
  const b0 = randomMat(dOut, r, 11), a0 = randomMat(r, dIn, 12);
  const basisA = createUniformBasis(101, r * dIn, r * dIn);
  const basisB = createUniformBasis(202, dOut * r, dOut * r);
  const res = fitLayer({ a0, b0, s0: 2, scale: 2, rank: r, basisA, basisB });
  assert.ok(res.error < 1e-8, `error ${res.error}`);
});

test('with few coefficients the error is large but never above the starting point', () => {
  const r = 4, dIn = 64, dOut = 48;
  const b0 = randomMat(dOut, r, 21), a0 = randomMat(r, dIn, 22);
  const basisA = createUniformBasis(5, 32, r * dIn);
  const basisB = createUniformBasis(6, 32, dOut * r);
  const res = fitLayer({ a0, b0, s0: 1, scale: 1, rank: r, basisA, basisB });
  for (let i = 1; i < res.history.length; i++) assert.ok(res.history[i] <= res.history[i - 1] + 1e-12, `history ${res.history}`);
  assert.ok(res.error > 0.5 && res.error < 1);
});

test('realCubicRoots finds the roots of (t-1)(t-2)(t+3) and of a quadratic', () => {
  // (t-1)(t-2)(t+3) = t³ - 7t + 6
  const roots = realCubicRoots(1, 0, -7, 6).sort((x, y) => x - y);
  [-3, 1, 2].forEach((v, i) => assert.ok(Math.abs(roots[i] - v) < 1e-9));
  const q = realCubicRoots(0, 2, -6, 4).sort((x, y) => x - y); // 2(t-1)(t-2)
  [1, 2].forEach((v, i) => assert.ok(Math.abs(q[i] - v) < 1e-9));
});

test('relativeErrorToSvd (r×r Grams) agrees with the stacked-QR relative error, large and tiny errors', () => {
  const b0 = randomMat(40, 5, 31), a0 = randomMat(5, 33, 32);
  const svd = targetSvd({ a0, b0, s0: 1.5 });
  const b = randomMat(40, 3, 33), a = randomMat(3, 33, 34);
  assert.ok(Math.abs(relativeErrorToSvd(svd, 0.8, b, a) - relativeError(1.5, b0, a0, 0.8, b, a)) < 1e-12);
  // A near-perfect approximation (error ~1e-7) takes the exact path and still matches.
  const b1 = mat(40, 5, Float64Array.from(b0.data, (v, i) => v * (1 + 1e-7 * Math.sin(i))));
  const exact = relativeError(1.5, b0, a0, 1.5, b1, a0);
  assert.ok(exact > 1e-9 && exact < 1e-6);
  assert.ok(Math.abs(relativeErrorToSvd(svd, 1.5, b1, a0) - exact) < 1e-12);
});
