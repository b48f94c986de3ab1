/**
 * Rate–distortion estimates (src/core/rd-estimate.ts) against closed forms worked by hand:
 * - one component: θ = E²λ, so the Gaussian rate is (m/2)·log2(1/E²);
 * - equal components: all keep the same θ = E²λ, the rate is the single-component rate times r;
 * - a component below the water level is dropped and its energy is the whole distortion it adds.
 * The rank-1 bound adds (d_in/2)·log2((d_in+d_out)/d_in) + (d_out/2)·log2((d_in+d_out)/d_out) per kept
 * component: d bits for a square d×d layer (half a bit per degree of freedom, less the shared one).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rdEstimate } from '../../src/core/rd-estimate.js';

const close = (a: number, b: number, tol = 1e-9): void => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);

test('rd estimate: one component, E = 0.1 → (m/2)·log2(100) bits; square layer bound adds d bits', () => {
  const e = rdEstimate([3], 64, 64, 0.1);
  close(e.theta, 0.01 * 9, 1e-12);
  close(e.gaussianBits, (127 / 2) * Math.log2(100), 1e-9);
  close(e.manifoldBits - e.gaussianBits, 64, 1e-12);
  assert.equal(e.kept, 1);
  assert.equal(e.dof, 127);
});

test('rd estimate: equal components share the water level; a weak one is dropped', () => {
  const eq = rdEstimate([2, 2, 2, 2], 100, 300, 0.2);
  close(eq.gaussianBits, 4 * (399 / 2) * Math.log2(1 / 0.04), 1e-9);
  close(eq.manifoldBits - eq.gaussianBits, 4 * (50 * Math.log2(4) + 150 * Math.log2(4 / 3)), 1e-9);
  // λ = (100, 1e-4): D = 0.01·(100 + 1e-4) ≈ 1.000001 > 1e-4, so the weak component is dropped
  // (it adds its own 1e-4) and the strong one takes θ = D − 1e-4 = 1.
  const drop = rdEstimate([10, 0.01], 50, 50, 0.1);
  assert.equal(drop.kept, 1);
  close(drop.theta, 0.01 * (100 + 1e-4) - 1e-4, 1e-9);
  close(drop.gaussianBits, (99 / 2) * Math.log2(100 / drop.theta), 1e-9);
});

test('rd estimate: a zero update needs no bits', () => {
  assert.deepEqual(rdEstimate([0, 0], 10, 10, 0.1), { theta: 0, kept: 0, gaussianBits: 0, manifoldBits: 0, dof: 0 });
});
