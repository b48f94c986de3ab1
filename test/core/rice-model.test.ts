/**
 * The closed-form rice model (src/core/rice-model.ts) against the codec itself: Gaussian samples
 * quantized by riceLevels and sized by bestRiceK (the encoder's own size rule) are the second method.
 * The model is used only to steer the search, so it is held to what the search needs (bits within
 * 1%, squared error within 2%), not to the sampling noise of the check.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exactGaussianRiceEstimate, gaussianLevelEntropy, gaussianRiceEstimate, gaussianRiceBytes } from '../../src/core/rice-model.js';
import { bestRiceK, riceLevels, RICE_HEADER_BYTES } from '../../src/core/rice.js';
import { randomGaussian } from './random-mat.js';

test('rice model: bits and squared error of a Gaussian match the encoder on samples', () => {
  const n = 200_000;
  const x = randomGaussian(n, 7);
  for (const step of [0.02, 0.1, 0.3, 0.7, 1.5, 3, 8]) {
    const q = riceLevels(x, step);
    const { k, bytes } = bestRiceK(q);
    let mse = 0;
    for (let i = 0; i < n; i++) mse += (x[i] - q[i] * step) ** 2;
    mse /= n;
    const e = gaussianRiceEstimate(1, step);
    const bits = (8 * (bytes - RICE_HEADER_BYTES)) / n;
    assert.ok(Math.abs(e.bitsPerValue - bits) / bits < 0.01, `step ${step}: model ${e.bitsPerValue} bits vs encoder ${bits}`);
    assert.ok(Math.abs(e.mse - mse) / mse < 0.02, `step ${step}: model mse ${e.mse} vs measured ${mse}`);
    assert.ok(Math.abs(e.k - k) <= 1, `step ${step}: model k ${e.k} vs encoder k ${k}`);
    assert.ok(Math.abs(gaussianRiceBytes(n, 1, step) - bytes) / bytes < 0.01);
  }
});

test('rice model: scale invariance and the limits (fine steps: Δ²/12; all-zero levels: one bit each)', () => {
  const a = gaussianRiceEstimate(1, 0.25), b = gaussianRiceEstimate(40, 10);
  assert.ok(Math.abs(a.bitsPerValue - b.bitsPerValue) < 1e-9);
  assert.ok(Math.abs(a.mse * 1600 - b.mse) / b.mse < 1e-9);
  const fine = gaussianRiceEstimate(1, 1e-3);
  assert.ok(Math.abs(fine.mse - 1e-6 / 12) / (1e-6 / 12) < 1e-9);
  const coarse = gaussianRiceEstimate(1, 1e3);
  assert.ok(Math.abs(coarse.bitsPerValue - 1) < 1e-6);
  assert.ok(Math.abs(coarse.mse - 1) < 1e-6); // every value rounds to 0: the error is the variance
  assert.deepEqual(gaussianRiceEstimate(0, 1), { bitsPerValue: 1, k: 0, mse: 0 });
});

test('rice model: the interpolated table stays within 1e-4 of the exact sums', () => {
  for (let i = 0; i <= 400; i++) {
    const u = 1e-3 * Math.exp((i / 400) * Math.log(256 / 1e-3) * 0.9999 + 0.37e-4 * i);
    const t = gaussianRiceEstimate(u, 1), e = exactGaussianRiceEstimate(u, 1);
    assert.ok(Math.abs(t.bitsPerValue - e.bitsPerValue) <= 1e-4 * e.bitsPerValue, `u ${u}: bits ${t.bitsPerValue} vs ${e.bitsPerValue}`);
    assert.ok(Math.abs(t.mse - e.mse) <= 1e-4 * e.mse, `u ${u}: mse ${t.mse} vs ${e.mse}`);
  }
});

test('rice model: above the table, each halving of the step adds one bit (checked against the exact sums), and absurd ratios cost nothing', () => {
  for (const u of [65, 100, 180, 300]) {
    const t = gaussianRiceEstimate(u, 1), e = exactGaussianRiceEstimate(u, 1);
    assert.ok(Math.abs(t.bitsPerValue - e.bitsPerValue) < 2e-3 * e.bitsPerValue, `u ${u}: ${t.bitsPerValue} vs ${e.bitsPerValue}`);
    assert.ok(Math.abs(t.mse - e.mse) < 1e-3 * e.mse);
  }
  // σ/Δ = 3e10 (F16 factors at ±65504 probed by the step search) once allocated 2.6e11 cells.
  const huge = gaussianRiceEstimate(3e10, 1);
  assert.ok(Number.isFinite(huge.bitsPerValue) && huge.bitsPerValue > 30 && huge.k === 24);
});

test('the levels\' entropy: high-resolution closed form, the all-zero limit, and the empirical entropy of quantized samples', () => {
  // Fine steps: H ≈ h(X) − log2 Δ = ½·log2(2πe σ²) − log2 Δ (the O(Δ²) term is far below 1e-4 here).
  for (const [sigma, step] of [[1, 0.01], [3, 0.02], [0.5, 0.004]]) {
    const closed = 0.5 * Math.log2(2 * Math.PI * Math.E * sigma * sigma) - Math.log2(step);
    assert.ok(Math.abs(gaussianLevelEntropy(sigma, step) - closed) < 1e-4, `σ ${sigma}, Δ ${step}`);
  }
  // Steps far above σ: every level is 0 but for a Gaussian tail, so the entropy vanishes.
  assert.ok(gaussianLevelEntropy(1, 40) < 1e-12);
  assert.equal(gaussianLevelEntropy(0, 1), 0);
  // Mid rates: the plug-in entropy of 200k quantized Gaussian samples (second method).
  for (const step of [0.5, 1.5, 3]) {
    const x = randomGaussian(200_000, 11);
    const counts = new Map<number, number>();
    for (const v of x) { const q = Math.round(v / step); counts.set(q, (counts.get(q) ?? 0) + 1); }
    let h = 0;
    for (const c of counts.values()) h -= (c / x.length) * Math.log2(c / x.length);
    assert.ok(Math.abs(gaussianLevelEntropy(1, step) - h) < 0.01, `Δ ${step}: model ${gaussianLevelEntropy(1, step)}, samples ${h}`);
  }
});
