/**
 * Budgets on layers with known spectra. A layer built as U·diag(σ)·Vᵀ with chosen σ has a
 * closed-form truncation error (Eckart–Young), so the rank the --max-error search must reach is
 * known in advance; the bound is then checked on what is actually stored, recomputed from the
 * dequantized coefficients by expandLayer (a second path through the code).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allocateBudget, allocateMaxError, fillBudget, nearOptimal } from '../../src/core/allocate.js';
import { expandLayer } from '../../src/core/compress-layer.js';
import { targetSvd } from '../../src/core/fit.js';
import { qrThin, mat, type Mat } from '../../src/core/matrix.js';
import { relativeError, truncationError } from '../../src/core/lowrank.js';
import { BOUND_MARGIN, candidateIndices, candidateTable, chooseLayer, ladderIndices, measureCandidates, measureLadder, pairDiagonal, predictedTable, predictPairs, RICE_LADDER, settingsBytes } from '../../src/pipeline/layer-strategy.js';
import { BUDGET_QUANTS } from '../../src/pipeline/settings.js';
import type { LayerSpec } from '../../src/formats/layer.js';
import { randomMat } from './random-mat.js';

function orthonormal(rows: number, cols: number, seed: number): Mat {
  return qrThin(randomMat(rows, cols, seed)).q;
}

/** B0 = U·diag(σ), A0 = Vᵀ: the update has exactly the singular values σ. */
function layerWithSpectrum(sigma: number[], dOut: number, dIn: number, seed: number): { a0: Mat; b0: Mat; spec: LayerSpec } {
  const r = sigma.length;
  const u = orthonormal(dOut, r, seed), v = orthonormal(dIn, r, seed + 1);
  const b0 = mat(dOut, r), a0 = mat(r, dIn);
  for (let i = 0; i < dOut; i++) for (let j = 0; j < r; j++) b0.data[i * r + j] = u.data[i * r + j] * sigma[j];
  for (let j = 0; j < r; j++) for (let i = 0; i < dIn; i++) a0.data[j * dIn + i] = v.data[i * r + j];
  const spec: LayerSpec = {
    name: `layer${seed}`, kind: 'linear', keyA: 'a', keyB: 'b', dtypeA: 'F32', dtypeB: 'F32',
    shapeA: [r, dIn], shapeB: [dOut, r], rank: r, dIn, dOut, scale: 1,
  };
  return { a0, b0, spec };
}

test('--max-error: every layer meets the bound on what is stored, at the rank the spectrum dictates or above', () => {
  const spectra = [
    [10, 5, 2.5, 1.2, 0.6, 0.3, 0.15, 0.07], // fast decay
    [4, 3.8, 3.5, 3.3, 3, 2.8, 2.6, 2.4],    // flat: needs (nearly) full rank
    [10, 1, 0.1, 0.01, 0.001, 0.0001, 0, 0], // rank deficient
  ];
  // Both codings: rice (the default) and the fixed-size precisions (--quant fixed).
  for (const quants of [['rice' as const], BUDGET_QUANTS]) for (const bound of [0.05, 0.1, 0.2]) {
    spectra.forEach((sigma, idx) => {
      const { a0, b0, spec } = layerWithSpectrum(sigma, 96, 80, 10 + idx);
      const svd = targetSvd({ a0, b0, s0: 1 });
      // Closed form: the smallest rank whose truncation error is within the bound.
      let minRank = 1;
      while (truncationError(Float64Array.from(sigma), minRank) > bound) minRank++;
      const layer = chooseLayer({ a0, b0, s0: 1, svd }, spec, {
        strategy: { kind: 'budget', target: { maxError: bound }, rank: 'auto', quants }, seed: 3, fit: {},
      });
      assert.ok(layer.settings.rank >= minRank, `bound ${bound} spectrum ${idx}: rank ${layer.settings.rank} < ${minRank}`);
      const { a, b } = expandLayer(layer.settings, spec.dIn, spec.dOut, layer.blockA, layer.blockB);
      const stored = relativeError(1, b0, a0, 1, b, a);
      assert.ok(Math.abs(stored - layer.error) < 1e-9, `reported ${layer.error}, recomputed ${stored}`);
      assert.ok(stored <= bound, `bound ${bound} spectrum ${idx}: stored error ${stored}`);
      // Rice spends the budget: the step search lands the layer close to the bound, not far inside it.
      if (quants[0] === 'rice') assert.ok(stored >= 0.9 * bound, `bound ${bound} spectrum ${idx}: rice stopped at ${stored}`);
    });
  }
});

test('--max-error spends the slack: no more bytes than the best whole-factor precisions (exhaustive table), fewer on most layers', () => {
  // Second method: every (rank, precision of A, precision of B) measured by candidateTable; its cheapest
  // entry within the bound is what a search over whole-factor precisions can reach at best. Splitting a
  // factor into two precisions must never cost more, and must usually cost less.
  const spectra = [
    [10, 5, 2.5, 1.2, 0.6, 0.3, 0.15, 0.07],
    [4, 3.8, 3.5, 3.3, 3, 2.8, 2.6, 2.4],
    [6, 5, 4, 3, 2, 1.5, 1, 0.5],
  ];
  let strictlyFewer = 0, cases = 0;
  for (const bound of [0.05, 0.1]) {
    spectra.forEach((sigma, idx) => {
      const { a0, b0, spec } = layerWithSpectrum(sigma, 160, 128, 40 + idx);
      const svd = targetSvd({ a0, b0, s0: 1 });
      const strategy = { kind: 'budget' as const, target: { maxError: bound }, rank: 'auto' as const, quants: BUDGET_QUANTS };
      const layer = chooseLayer({ a0, b0, s0: 1, svd }, spec, { strategy, seed: 5, fit: {} });
      const table = candidateTable({ a0, b0, s0: 1, svd }, spec, strategy, 5, {});
      const within = table.filter((c) => c.error <= bound * (1 - BOUND_MARGIN)).map((c) => c.bytes);
      assert.ok(within.length > 0);
      const bytes = settingsBytes(layer.settings);
      assert.ok(bytes <= Math.min(...within), `bound ${bound} spectrum ${idx}: ${bytes} bytes > ${Math.min(...within)}`);
      if (bytes < Math.min(...within)) strictlyFewer++;
      cases++;
      const { a, b } = expandLayer(layer.settings, spec.dIn, spec.dOut, layer.blockA, layer.blockB);
      assert.ok(relativeError(1, b0, a0, 1, b, a) <= bound, `bound ${bound} spectrum ${idx}`);
    });
  }
  assert.ok(strictlyFewer >= cases / 2, `fewer bytes on ${strictlyFewer} of ${cases} layers`);
});

test('allocateMaxError picks the fewest bytes within the bound and reports unmet layers', () => {
  const tables = [
    [{ bytes: 10, error: 0.3 }, { bytes: 20, error: 0.09 }, { bytes: 40, error: 0.01 }],
    [{ bytes: 5, error: 0.5 }, { bytes: 8, error: 0.2 }],
  ];
  const a = allocateMaxError(tables, 0.1);
  assert.deepEqual(a.choice, [1, 1]);
  assert.deepEqual(a.unmet, [1]);
});

test('allocateBudget meets the byte budget and matches brute force on a small case', () => {
  const tables = [
    [{ bytes: 1, error: 0.9 }, { bytes: 3, error: 0.5 }, { bytes: 6, error: 0.1 }],
    [{ bytes: 2, error: 0.8 }, { bytes: 4, error: 0.3 }, { bytes: 8, error: 0.05 }],
    [{ bytes: 1, error: 0.6 }, { bytes: 2, error: 0.4 }, { bytes: 5, error: 0.02 }],
  ];
  const energies = [1, 4, 2];
  for (const budget of [4, 7, 10, 13, 19]) {
    const { choice } = allocateBudget(tables, energies, budget);
    const bytes = choice.reduce((acc, c, l) => acc + tables[l][c].bytes, 0);
    assert.ok(bytes <= budget, `budget ${budget}: ${bytes}`);
    // Brute force over all 27 combinations (independent method): Lagrangian solutions lie on the
    // convex hull, so they may be worse than the exact optimum, but never by much on this case
    // and never better.
    let best = Infinity;
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 3; k++) {
      const c = [i, j, k];
      if (c.reduce((acc, x, l) => acc + tables[l][x].bytes, 0) > budget) continue;
      best = Math.min(best, c.reduce((acc, x, l) => acc + energies[l] * tables[l][x].error ** 2, 0));
    }
    const got = choice.reduce((acc, c, l) => acc + energies[l] * tables[l][c].error ** 2, 0);
    assert.ok(got >= best - 1e-12 && got <= best * 1.5 + 1e-12, `budget ${budget}: ${got} vs optimum ${best}`);
  }
});

test('fillBudget spends the Lagrangian leftover: within budget, never worse, no single change left that fits and helps', () => {
  const tables = [
    [{ bytes: 1, error: 0.9 }, { bytes: 3, error: 0.5 }, { bytes: 6, error: 0.1 }, { bytes: 7, error: 0.09 }],
    [{ bytes: 2, error: 0.8 }, { bytes: 4, error: 0.3 }, { bytes: 5, error: 0.28 }, { bytes: 8, error: 0.05 }],
    [{ bytes: 1, error: 0.6 }, { bytes: 2, error: 0.4 }, { bytes: 5, error: 0.02 }],
  ];
  const energies = [1, 4, 2];
  const bytesOf = (c: number[]): number => c.reduce((acc, x, l) => acc + tables[l][x].bytes, 0);
  const costOf = (c: number[]): number => c.reduce((acc, x, l) => acc + energies[l] * tables[l][x].error ** 2, 0);
  for (let budget = 4; budget <= 20; budget++) {
    const lagrange = allocateBudget(tables, energies, budget).choice;
    const filled = fillBudget(tables, energies, lagrange, budget);
    assert.ok(bytesOf(filled) <= budget, `budget ${budget}: ${bytesOf(filled)} bytes`);
    assert.ok(costOf(filled) <= costOf(lagrange) + 1e-15, `budget ${budget}: the fill raised the error`);
    // Brute force over all 48 combinations (independent method): never better than the optimum.
    let best = Infinity;
    for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) for (let k = 0; k < 3; k++) if (bytesOf([i, j, k]) <= budget) best = Math.min(best, costOf([i, j, k]));
    assert.ok(costOf(filled) >= best - 1e-12);
    // Greedy's stopping rule, checked by enumeration: no one-layer change fits the room left and lowers the cost.
    for (let l = 0; l < 3; l++) {
      for (let c = 0; c < tables[l].length; c++) {
        const other = [...filled];
        other[l] = c;
        if (bytesOf(other) <= budget) assert.ok(costOf(other) >= costOf(filled) - 1e-15, `budget ${budget}: layer ${l} -> ${c} still helps`);
      }
    }
  }
});

test('nearOptimal: with no slack, the hull vertices optimal somewhere in [λ/s, λ·s] (closed-form intervals)', () => {
  // err² = 1/b at b = 1, 2, 4, …, 64 with energy 1: vertex i (b = 2^i) is optimal for λ between the
  // slopes to its neighbours, 1/(2·b²) (next) and 2/b² (previous): intervals a factor 4 wide.
  const table = Array.from({ length: 7 }, (_, i) => ({ bytes: 2 ** i, error: Math.sqrt(1 / 2 ** i) }));
  const interval = (i: number): [number, number] => [i === 6 ? 0 : 1 / (2 * 4 ** i), i === 0 ? Infinity : 2 / 4 ** i];
  for (const lambda of [1e-3, 0.01, 0.05, 0.3]) {
    for (const spread of [1, 2, 8]) {
      const expected = table.map((_, i) => i).filter((i) => {
        const [lo, hi] = interval(i);
        return hi >= lambda / spread && lo <= lambda * spread;
      });
      assert.deepEqual(nearOptimal(table, 1, lambda, spread, 0), expected, `λ ${lambda}, spread ${spread}`);
    }
  }
  // λ = 0 (the budget does not bind): the least-error candidate.
  assert.deepEqual(nearOptimal(table, 1, 0, 2, 0), [6]);
});

test('nearOptimal: slack admits candidates within that fraction of the optimum\'s cost, and no others', () => {
  // At λ = 1, energy 1: costs e² + b. The optimum costs 1.0; 1.04 is inside 5% slack, 1.06 outside.
  const table = [{ bytes: 0.5, error: Math.sqrt(0.5) }, { bytes: 0.54, error: Math.sqrt(0.5) }, { bytes: 0.56, error: Math.sqrt(0.5) }, { bytes: 2, error: 0 }];
  assert.deepEqual(nearOptimal(table, 1, 1, 1, 0.05), [0, 1]);
  assert.deepEqual(nearOptimal(table, 1, 1, 1, 0), [0]);
});

test('predictedTable prices the --ratio rice ladder within a few percent of measureLadder\'s stored candidates', () => {
  // Second method: every candidate fitted, stored and measured (measureLadder), against the closed form.
  const { a0, b0, spec } = layerWithSpectrum([4, 3, 1.5, 1, 0.5, 0.25], 96, 80, 31);
  const svd = targetSvd({ a0, b0, s0: 1 });
  const strategy = { kind: 'budget' as const, target: { ratio: 8 }, rank: 'auto' as const, quants: ['rice' as const], rans: true };
  const indices = ladderIndices(spec, strategy);
  const predicted = predictedTable({ a0, b0, s0: 1, svd }, spec, strategy);
  const measured = measureLadder({ a0, b0, s0: 1, svd }, spec, strategy, 3, {}, indices);
  assert.equal(predicted.length, indices.length);
  // The coarsest rungs (predicted error 0.6 of the layer and more) are where B's re-solve recovers more than the model knows: not held.
  const fine = indices.map((x, i) => [x, i] as const).filter(([x]) => RICE_LADDER[x.rung] < 0.6).map(([, i]) => i);
  const ratios = (f: (i: number) => number): number[] => fine.map(f).sort((x, y) => x - y);
  const median = (v: number[]): number => v[Math.floor(v.length / 2)];
  const bytes = ratios((i) => measured[i].bytes / predicted[i].bytes), errors = ratios((i) => measured[i].error / predicted[i].error);
  assert.ok(Math.abs(median(bytes) - 1) < 0.05 && bytes[0] > 0.8 && bytes[bytes.length - 1] < 1.1, `bytes measured/predicted ${bytes[0]} … ${bytes[bytes.length - 1]}`);
  assert.ok(Math.abs(median(errors) - 1) < 0.02 && errors[0] > 0.9 && errors[errors.length - 1] < 1.1, `error measured/predicted ${errors[0]} … ${errors[errors.length - 1]}`);
  // measureLadder of a subset measures exactly those rows of the whole ladder (the same fits, the same stores).
  const some = [5, 40, 17, 90].filter((i) => i < indices.length);
  assert.deepEqual(measureLadder({ a0, b0, s0: 1, svd }, spec, strategy, 3, {}, some.map((i) => indices[i])).map((r) => [r.bytes, r.error]), some.map((i) => [measured[i].bytes, measured[i].error]));
});

test('predictPairs prices every fixed-size pair from the measured diagonal: bytes exact, errors within 10% of candidateTable\'s stored ones', () => {
  // Second method: every (rank, precision of A, precision of B) fitted, stored and measured.
  const { a0, b0, spec } = layerWithSpectrum([4, 3, 1.5, 1, 0.5, 0.25], 96, 80, 37);
  const svd = targetSvd({ a0, b0, s0: 1 });
  const strategy = { kind: 'budget' as const, target: { ratio: 4 }, rank: 'auto' as const, quants: BUDGET_QUANTS };
  const all = candidateTable({ a0, b0, s0: 1, svd }, spec, strategy, 3, {});
  const indices = candidateIndices(spec, strategy);
  const diagonal = pairDiagonal(spec, strategy);
  const predicted = predictPairs(spec, strategy, diagonal, measureCandidates({ a0, b0, s0: 1, svd }, spec, strategy, 3, {}, diagonal.map((c) => indices[c])));
  assert.equal(predicted.length, all.length);
  assert.equal(diagonal.length, spec.rank * BUDGET_QUANTS.length);
  all.forEach((m, i) => {
    assert.equal(predicted[i].bytes, m.bytes);
    assert.ok(Math.abs(m.error / predicted[i].error - 1) < 0.1, `candidate ${i}: measured ${m.error}, predicted ${predicted[i].error}`);
  });
  // On the diagonal the prediction is the measurement itself.
  const onDiagonal = indices.flatMap((x, i) => ('quantA' in x && x.quantA === x.quantB ? [i] : []));
  assert.deepEqual(onDiagonal, diagonal);
  for (const i of onDiagonal) assert.equal(predicted[i].error, all[i].error);
});

test('regression: a layer whose B is all zeros (an untrained adapter) compresses under --max-error and --ratio (the rice step was 1e150, not an f32)', () => {
  const { a0, spec } = layerWithSpectrum([3, 2, 1, 0.5], 40, 32, 71);
  const b0 = mat(40, 4); // zeros
  const svd = targetSvd({ a0, b0, s0: 1 });
  const strategy = { kind: 'budget' as const, target: { maxError: 0.1 }, rank: 'auto' as const, quants: ['rice' as const] };
  const layer = chooseLayer({ a0, b0, s0: 1, svd }, spec, { strategy, seed: 1, fit: {} });
  assert.equal(layer.error, 0);
  const { a, b } = expandLayer(layer.settings, spec.dIn, spec.dOut, layer.blockA, layer.blockB);
  assert.ok(b.data.every((x) => x === 0) && a.data.every(Number.isFinite));
  const table = candidateTable({ a0, b0, s0: 1, svd }, spec, { ...strategy, target: { ratio: 4 } }, 1, {});
  assert.ok(table.length > 0 && table.every((c) => c.error === 0 && c.bytes > 0));
});
