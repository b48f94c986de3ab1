/**
 * Per-layer decisions, free of I/O so they can run on worker threads: which setting a layer gets
 * under the fixed strategy, under --max-error (search), and the candidate table --ratio allocates over.
 */
import type { Logger } from 'pino';
import { compressLayer, LayerFitter, type CompressedLayer, type LayerRecipe, type LayerSettings, type LayerTarget } from '../core/compress-layer.js';
import { truncationError } from '../core/lowrank.js';
import { deriveLayerSeeds } from '../core/seeds.js';
import type { Candidate } from '../core/allocate.js';
import type { LayerSpec } from '../formats/layer.js';
import { bitsPerValue, quantizedBytes, type QuantMode, type QuantSpec } from '../core/quantize.js';
import { QUANT_GROUP_SIZE } from '../core/constants.js';
import type { BudgetStrategy, CompressSettings } from './settings.js';

/** The layer's compressed form under the fixed strategy or the --max-error search. */
export function chooseLayer(target: LayerTarget, spec: LayerSpec, settings: CompressSettings, log?: Pick<Logger, 'warn'>): CompressedLayer {
  const { strategy, seed, fit } = settings;
  if (strategy.kind === 'fixed') {
    const rank = chooseFixedRank(strategy.rank, spec, log);
    const seeds = deriveLayerSeeds(seed, spec.name);
    return compressLayer(target, {
      rank,
      k: Math.min(strategy.coeffsA, rank * spec.dIn),
      l: Math.min(strategy.coeffsB, spec.dOut * rank),
      basis: strategy.basis,
      quantA: strategy.quant,
      quantB: strategy.quant,
      seedA: seeds.seedA,
      seedB: seeds.seedB,
      fit,
    });
  }
  if (!('maxError' in strategy.target)) throw new Error('chooseLayer: --ratio needs the candidate tables of all layers');
  return searchMaxError(target, spec, strategy, strategy.target.maxError, seed, fit);
}

function chooseFixedRank(rule: 'keep' | number, spec: LayerSpec, log?: Pick<Logger, 'warn'>): number {
  if (rule === 'keep') return spec.rank;
  if (rule > spec.rank) {
    log?.warn(`${spec.name}: --rank ${rule} exceeds the source rank ${spec.rank}; keeping ${spec.rank}`);
    return spec.rank;
  }
  return rule;
}

/** Ranks a budget strategy may choose for a layer. */
function rankChoices(rule: BudgetStrategy['rank'], spec: LayerSpec): number[] {
  if (rule === 'keep') return [spec.rank];
  if (typeof rule === 'number') return [Math.min(rule, spec.rank)];
  return Array.from({ length: spec.rank }, (_, i) => i + 1);
}

function fullSpanSettings(spec: LayerSpec, rank: number, quant: QuantMode, seed: number, fit: CompressSettings['fit']): LayerSettings {
  const seeds = deriveLayerSeeds(seed, spec.name);
  return {
    rank, k: rank * spec.dIn, l: spec.dOut * rank, basis: 'orthogonal',
    quantA: quant, quantB: quant, seedA: seeds.seedA, seedB: seeds.seedB, fit,
  };
}

export function settingsBytes(s: LayerSettings): number {
  return quantizedBytes(s.k, s.quantA) + quantizedBytes(s.l, s.quantB);
}

/** The error that matters for a bound: what the user gets after expanding, or the NOLA reconstruction if worse. */
export function boundError(layer: CompressedLayer): number {
  return Math.max(layer.error, layer.deliveredError);
}

/** Relative margin kept below --max-error (0.1 becomes 0.09999): far below any use, far above float32 noise in a recomputed error. */
export const BOUND_MARGIN = 1e-4;

/**
 * Fewest bytes with error ≤ E. With rice coding (the default) see searchRice. With fixed-size
 * precisions: ranks are tried upward from the first whose truncation error alone
 * is below E; at each rank every pair of precisions (A, B) is tried, cheapest first, reusing one
 * fit per rank and one re-solve of B per precision of A. The search stops at the first rank whose
 * cheapest setting costs more than the best found.
 */
function searchMaxError(target: LayerTarget, spec: LayerSpec, strategy: BudgetStrategy, userBound: number, seed: number, fit: CompressSettings['fit']): CompressedLayer {
  // Layers land on the bound itself (searchRice, spendSlack): keep a hair inside it, so that a reader who
  // recomputes the error in float32 or in another order still finds it within the bound.
  const maxError = userBound * (1 - BOUND_MARGIN);
  if (strategy.quants.includes('rice')) return searchRice(target, spec, strategy, maxError, seed, fit);
  const sigma = target.svd!.sigma;
  const ranks = rankChoices(strategy.rank, spec);
  const pairs = precisionPairs(fixedQuants(strategy));
  let best: CompressedLayer | undefined;
  let bestFitter: LayerFitter | undefined;
  let closest: CompressedLayer | undefined;
  for (const rank of ranks) {
    if (rank < ranks[ranks.length - 1] && truncationError(sigma, rank) > maxError) continue;
    const base = fullSpanSettings(spec, rank, pairs[0][0], seed, fit);
    const byBytes = pairs
      .map(([qa, qb]) => ({ qa, qb, bytes: quantizedBytes(base.k, qa) + quantizedBytes(base.l, qb) }))
      .sort((x, y) => x.bytes - y.bytes);
    if (best !== undefined && byBytes[0].bytes >= settingsBytes(best.settings)) break;
    const fitter = new LayerFitter(target, base);
    for (const { qa, qb, bytes } of byBytes) {
      if (best !== undefined && bytes >= settingsBytes(best.settings)) break;
      const layer = fitter.store(qa, qb);
      if (closest === undefined || boundError(layer) < boundError(closest)) closest = layer;
      if (boundError(layer) <= maxError) {
        best = layer;
        bestFitter = fitter;
        break;
      }
    }
  }
  return best === undefined ? closest! : spendSlack(bestFitter!, best, maxError, fixedQuants(strategy));
}

function fixedQuants(strategy: BudgetStrategy): QuantMode[] {
  const quants = strategy.quants.filter((q): q is QuantMode => q !== 'rice');
  if (quants.length !== strategy.quants.length) throw new Error('internal: rice is not a fixed-size precision');
  return quants;
}

/**
 * --max-error with rice coding (the default). Per rank, one fit; then the step t of the uniform
 * quantizer is searched so that the stored layer lands on the bound. Steps are allocated between
 * the factors by high-rate theory: with noise variance v per coefficient, A's rounding adds
 * s²·v_A·d_in·‖B‖² to the squared error and B's s²·v_B·d_out·‖A‖², and the fewest bits for a given
 * total spend it in proportion to the coefficient counts (k : l), which gives
 *   step_A = t·√(k / (d_in·‖B‖²)),   step_B = t·√(l / (d_out·‖A‖²)).
 * The error's quantization part grows linearly in t, so t is found by a few secant steps on the
 * measured error (what is stored, after B's re-solve against the rounded A), keeping the cheapest
 * setting within the bound. Ranks go upward from the first whose truncation error is below the
 * bound, and stop at the first rank that costs more than the best so far.
 */
function searchRice(target: LayerTarget, spec: LayerSpec, strategy: BudgetStrategy, maxError: number, seed: number, fit: CompressSettings['fit']): CompressedLayer {
  const sigma = target.svd!.sigma;
  const ranks = rankChoices(strategy.rank, spec);
  let best: CompressedLayer | undefined;
  let closest: CompressedLayer | undefined;
  for (const rank of ranks) {
    const tail = truncationError(sigma, rank);
    if (rank < ranks[ranks.length - 1] && tail > maxError) continue;
    const fitter = new LayerFitter(target, fullSpanSettings(spec, rank, 'f32', seed, fit));
    const steps = riceSteps(fitter, target, spec);
    const stepA = steps.a, stepB = steps.b;
    // Room for rounding error at this rank; where the truncation alone fills the bound, aim low.
    const room = maxError * maxError - tail * tail > 0 ? Math.sqrt(maxError * maxError - tail * tail) : 0.1 * maxError;
    let t = steps.t(room);
    let rankBest: CompressedLayer | undefined;
    for (let iter = 0; iter < 8 && Number.isFinite(t) && t > 0; iter++) {
      const layer = fitter.store({ rice: stepA(t) }, { rice: stepB(t) });
      const e = boundError(layer);
      if (closest === undefined || e < boundError(closest)) closest = layer;
      if (e <= maxError && (rankBest === undefined || settingsBytes(layer.settings) < settingsBytes(rankBest.settings))) rankBest = layer;
      const rounding = Math.sqrt(Math.max(e * e - tail * tail, 1e-300));
      const next = t * (room / rounding) * (e <= maxError ? 1 : 0.995);
      if (e <= maxError && Math.abs(next / t - 1) < 0.002) break;
      t = next;
    }
    if (rankBest === undefined) continue;
    if (best !== undefined && settingsBytes(rankBest.settings) >= settingsBytes(best.settings)) break;
    best = rankBest;
  }
  return best ?? closest!;
}

/** Range of the rice steps the search uses (normal f32 values). */
const MIN_STEP = 1e-37, MAX_STEP = 1e37;

/** Predicted relative rounding errors of the --ratio rice ladder (geometric, ×1.5). */
export const RICE_LADDER: readonly number[] = Array.from({ length: 15 }, (_, i) => 0.004 * 1.5 ** i);

/**
 * The step allocation of searchRice for one fitted rank: a(t), b(t) the steps of A and B, and t(e)
 * the t whose predicted relative rounding error (high-rate theory, see searchRice) is e.
 */
function riceSteps(fitter: LayerFitter, target: LayerTarget, spec: LayerSpec): { a: (t: number) => number; b: (t: number) => number; t: (e: number) => number } {
  const { alpha, beta } = fitter.fit;
  const normA2 = sumSquares(alpha), normB2 = sumSquares(beta);
  const energy = target.svd!.sigma.reduce((acc, x) => acc + x * x, 0);
  const s2 = target.s0 * target.s0;
  // A step must be a normal finite f32; a factor of zeros (an untrained B) takes the largest.
  const clamp = (step: number): number => (Number.isNaN(step) ? MAX_STEP : Math.min(MAX_STEP, Math.max(MIN_STEP, step)));
  return {
    a: (t) => clamp(t * Math.sqrt(alpha.length / (spec.dIn * Math.max(normB2, 1e-300)))),
    b: (t) => clamp(t * Math.sqrt(beta.length / (spec.dOut * Math.max(normA2, 1e-300)))),
    // relative squared rounding error ≈ s²·t²·(k + l)/12 / ‖ΔW‖²
    t: (e) => (energy > 0 && s2 > 0 ? e * Math.sqrt((12 * energy) / (s2 * (alpha.length + beta.length))) : 1),
  };
}

function sumSquares(v: Float64Array): number {
  let acc = 0;
  for (let i = 0; i < v.length; i++) acc += v[i] * v[i];
  return acc;
}

/**
 * The cheapest whole-factor precisions usually leave the layer well inside the bound (int5/int5 at
 * 0.07 where int4/int5 would be 0.12). Lower a trailing part of each factor one step by as many
 * groups as the bound allows (a lowered A is compensated by B's re-solve; a lowered B is not). The added squared error is close to
 * linear in the number of lowered values, so the count is found by interpolation within a bracket
 * (feasible, infeasible), a few stores per factor. Every candidate is measured as stored.
 * The factor lowered first is the one whose whole step down costs less squared error per byte.
 */
function spendSlack(fitter: LayerFitter, best: CompressedLayer, maxError: number, quants: QuantMode[]): CompressedLayer {
  const lowered = (factor: 'A' | 'B', spec: QuantSpec, base: CompressedLayer): CompressedLayer =>
    factor === 'A' ? fitter.store(spec, base.settings.quantB) : fitter.store(base.settings.quantA, spec);
  // Start with the factor whose whole-factor step down costs the least squared error per byte saved.
  const steps = (['A', 'B'] as const).flatMap((factor) => {
    const spec = factor === 'A' ? best.settings.quantA : best.settings.quantB;
    const lower = typeof spec === 'string' ? lowerMode(spec, quants) : undefined;
    if (typeof spec !== 'string' || lower === undefined) return [];
    const whole = lowered(factor, lower, best);
    const saved = settingsBytes(best.settings) - settingsBytes(whole.settings);
    return [{ factor, spec, lower, cost: (boundError(whole) ** 2 - boundError(best) ** 2) / Math.max(1, saved) }];
  }).sort((x, y) => x.cost - y.cost);
  let current = best;
  for (const { factor, spec, lower } of steps) {
    const count = factor === 'A' ? current.settings.k : current.settings.l;
    const groups = Math.ceil(count / QUANT_GROUP_SIZE);
    const split = (m: number): QuantSpec => {
      const low = Math.min(count, m * QUANT_GROUP_SIZE);
      return low === 0 ? spec : low === count ? lower : [[spec, count - low], [lower, low]];
    };
    const base = current;
    let lo = 0, loErr = boundError(base);
    let hi = groups;
    const whole = lowered(factor, split(hi), base);
    let hiErr = boundError(whole);
    if (hiErr <= maxError) {
      if (settingsBytes(whole.settings) < settingsBytes(current.settings)) current = whole;
      continue;
    }
    for (let iter = 0; iter < 6 && hi - lo > 1; iter++) {
      const t = (maxError ** 2 - loErr ** 2) / Math.max(1e-300, hiErr ** 2 - loErr ** 2);
      const m = Math.min(hi - 1, Math.max(lo + 1, lo + Math.floor(t * (hi - lo))));
      const layer = lowered(factor, split(m), base);
      const e = boundError(layer);
      if (e <= maxError) {
        lo = m;
        loErr = e;
        if (settingsBytes(layer.settings) < settingsBytes(current.settings)) current = layer;
      } else {
        hi = m;
        hiErr = e;
      }
    }
  }
  return current;
}

/** The next precision below `mode` among those the strategy may use (int5 -> int4, f16 -> int8), if any. */
function lowerMode(mode: QuantMode, quants: readonly QuantMode[]): QuantMode | undefined {
  const bits = bitsPerValue(mode);
  return quants.filter((q) => bitsPerValue(q) < bits).sort((a, b) => bitsPerValue(b) - bitsPerValue(a))[0];
}

/**
 * Every candidate of one layer for --ratio, measured as stored: with fixed-size precisions every
 * (rank, precision of A, precision of B); with rice coding, per rank a ladder of steps whose
 * predicted rounding errors run from 0.4% to 120% of the layer (RICE_LADDER), so the allocator can
 * trade bytes for error smoothly. Each row's settings recompute exactly that candidate.
 */
export function candidateTable(target: LayerTarget, spec: LayerSpec, strategy: BudgetStrategy, seed: number, fit: CompressSettings['fit']): Array<Candidate & { settings: LayerRecipe }> {
  const table: Array<Candidate & { settings: LayerRecipe }> = [];
  if (strategy.quants.includes('rice')) {
    for (const rank of rankChoices(strategy.rank, spec)) {
      const fitter = new LayerFitter(target, fullSpanSettings(spec, rank, 'f32', seed, fit));
      const steps = riceSteps(fitter, target, spec);
      for (const e of RICE_LADDER) {
        const quantA = { rice: steps.a(steps.t(e)) }, quantB = { rice: steps.b(steps.t(e)) };
        const layer = fitter.store(quantA, quantB);
        table.push({ bytes: settingsBytes(layer.settings), error: boundError(layer), settings: { ...layer.settings, quantA, quantB } });
      }
    }
    return table;
  }
  const pairs = precisionPairs(fixedQuants(strategy));
  for (const rank of rankChoices(strategy.rank, spec)) {
    const fitter = new LayerFitter(target, fullSpanSettings(spec, rank, pairs[0][0], seed, fit));
    for (const [qa, qb] of pairs) {
      const layer = fitter.store(qa, qb);
      table.push({ bytes: settingsBytes(layer.settings), error: boundError(layer), settings: layer.settings });
    }
  }
  return table;
}

function precisionPairs(quants: QuantMode[]): Array<[QuantMode, QuantMode]> {
  return quants.flatMap((qa) => quants.map((qb): [QuantMode, QuantMode] => [qa, qb]));
}
