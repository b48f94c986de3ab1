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
import { gaussianRiceBytes, gaussianRiceEstimate } from '../core/rice-model.js';

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
 * --max-error with rice coding (the default). The search runs on estimates and stores only what it
 * may keep (STYLE: estimate in the loop, encode the winner):
 *
 * 1. Every allowed rank is modelled in closed form (RiceModel: the coefficients of a random
 *    orthonormal rotation are near-Gaussian, so bytes and rounding error at a step follow from the
 *    spectrum alone; no fit, no transform). Each rank gets the step that lands its predicted error
 *    on the bound and the bytes that step costs.
 * 2. Ranks are then fitted and stored in order of predicted bytes. At a rank, the step is landed on
 *    the bound by storing, measuring the error of what is stored (after B's re-solve against the
 *    rounded A, after expand's rounding to the source dtype), calibrating the model's rounding error
 *    by the measured one and solving the calibrated model for the next step: usually two or three
 *    stores. The next rank is tried only while its prediction is within RANK_SLACK of the best
 *    stored size.
 *
 * Steps are split between the factors by high-rate theory: with noise variance v per coefficient,
 * A's rounding adds s²·v_A·d_in·‖B‖² to the squared error and B's s²·v_B·d_out·‖A‖², and the fewest
 * bits for a given total spend it in proportion to the coefficient counts (k : l), which gives
 *   step_A = t·√(k / (d_in·‖B‖²)),   step_B = t·√(l / (d_out·‖A‖²)).
 */
function searchRice(target: LayerTarget, spec: LayerSpec, strategy: BudgetStrategy, maxError: number, seed: number, fit: CompressSettings['fit']): CompressedLayer {
  const sigma = target.svd!.sigma;
  const ranks = rankChoices(strategy.rank, spec);
  const last = ranks[ranks.length - 1];
  const candidates = ranks
    .filter((rank) => rank === last || truncationError(sigma, rank) <= maxError)
    .map((rank) => {
      const model = RiceModel.fromSpectrum(sigma, target.s0, rank, spec.dIn, spec.dOut);
      const room2 = roomFor(maxError, truncationError(sigma, rank));
      return { rank, bytes: model.bytes(model.tFor(room2)) };
    })
    .sort((x, y) => x.bytes - y.bytes);
  let best: CompressedLayer | undefined;
  let closest: CompressedLayer | undefined;
  for (const { rank, bytes } of candidates) {
    if (best !== undefined && bytes >= settingsBytes(best.settings) * (1 + RANK_SLACK)) break;
    const fitter = new LayerFitter(target, fullSpanSettings(spec, rank, 'f32', seed, fit));
    const { best: rankBest, closest: rankClosest } = landOnBound(fitter, target, spec, rank, maxError);
    if (closest === undefined || boundError(rankClosest) < boundError(closest)) closest = rankClosest;
    if (rankBest !== undefined && (best === undefined || settingsBytes(rankBest.settings) < settingsBytes(best.settings))) best = rankBest;
  }
  return best ?? closest!;
}

/** How far inside the bound a stored layer may land and be kept without another store. */
const LANDING = 0.003;

/** A rank whose prediction is this much above the best stored size is not tried (the model is good to a few tenths of a percent). */
const RANK_SLACK = 0.01;

/** Squared room for rounding error at a rank; where the truncation alone fills the bound, aim low. */
function roomFor(maxError: number, tail: number): number {
  const room2 = maxError * maxError - tail * tail;
  return room2 > 0 ? room2 : (0.1 * maxError) ** 2;
}

/**
 * Stores the fitted rank at steps that land its error on the bound: store, measure, calibrate the
 * model's rounding error by the measured one, solve for the next t. At most 6 stores; the
 * cheapest stored setting within the bound is kept.
 */
function landOnBound(fitter: LayerFitter, target: LayerTarget, spec: LayerSpec, rank: number, maxError: number): { best?: CompressedLayer; closest: CompressedLayer } {
  const tail = truncationError(target.svd!.sigma, rank);
  const room2 = roomFor(maxError, tail);
  const model = RiceModel.fromFit(fitter, target, spec, rank);
  let calibration = 1;
  let t = model.tFor(room2);
  let best: CompressedLayer | undefined;
  let closest: CompressedLayer | undefined;
  for (let iter = 0; iter < 6 && Number.isFinite(t) && t > 0; iter++) {
    const layer = fitter.store({ rice: model.stepA(t) }, { rice: model.stepB(t) });
    const e = boundError(layer);
    if (closest === undefined || e < boundError(closest)) closest = layer;
    if (e <= maxError && (best === undefined || settingsBytes(layer.settings) < settingsBytes(best.settings))) best = layer;
    const predicted = model.rounding2(t);
    if (!(predicted > 0)) break;
    calibration = Math.max(e * e - tail * tail, 1e-300) / predicted;
    // Landed: within LANDING of the bound (bytes grow by ~0.1% per 0.3% of error given away).
    if (e <= maxError && e >= maxError * (1 - LANDING)) break;
    // Aim a hair inside after a miss, so the correction does not land just outside again.
    const next = model.tFor((room2 * (e <= maxError ? 1 : 1 - LANDING)) / calibration);
    t = next;
  }
  return { best, closest: closest! };
}

/**
 * Closed-form size and rounding error of one rank at full span (src/core/rice-model.ts): the
 * coefficients of A and B are modelled as N(0, ‖A‖²/k) and N(0, ‖B‖²/l), the squared relative
 * rounding error as s²·(k·mse_A·‖B‖² + l·mse_B·‖A‖²) / (rank·‖ΔW‖²).
 */
class RiceModel {
  private constructor(
    private readonly k: number, private readonly l: number,
    private readonly normA2: number, private readonly normB2: number,
    private readonly dIn: number, private readonly dOut: number,
    private readonly weight: number,
  ) {}

  /** Before any fit: the balanced factors of the rank-r truncation, ‖A‖² = ‖B‖² = Σ_{i<r} σ_i / |s|. */
  static fromSpectrum(sigma: Float64Array, s: number, rank: number, dIn: number, dOut: number): RiceModel {
    let kept = 0, energy = 0;
    for (let i = 0; i < sigma.length; i++) { energy += sigma[i] * sigma[i]; if (i < rank) kept += sigma[i]; }
    const norm2 = s === 0 ? 0 : kept / Math.abs(s);
    return new RiceModel(rank * dIn, dOut * rank, norm2, norm2, dIn, dOut, energy > 0 ? (s * s) / (rank * energy) : 0);
  }

  /** For a fitted rank: the norms of its coefficients (= the factors', the basis being orthonormal). */
  static fromFit(fitter: LayerFitter, target: LayerTarget, spec: LayerSpec, rank: number): RiceModel {
    const { alpha, beta } = fitter.fit;
    let energy = 0;
    for (const x of target.svd!.sigma) energy += x * x;
    const s2 = target.s0 * target.s0;
    return new RiceModel(alpha.length, beta.length, sumSquares(alpha), sumSquares(beta), spec.dIn, spec.dOut, energy > 0 ? s2 / (rank * energy) : 0);
  }

  stepA(t: number): number {
    return clampStep(t * Math.sqrt(this.k / (this.dIn * Math.max(this.normB2, 1e-300))));
  }

  stepB(t: number): number {
    return clampStep(t * Math.sqrt(this.l / (this.dOut * Math.max(this.normA2, 1e-300))));
  }

  /** Predicted squared relative rounding error at t. */
  rounding2(t: number): number {
    const a = gaussianRiceEstimate(Math.sqrt(this.normA2 / this.k), this.stepA(t));
    const b = gaussianRiceEstimate(Math.sqrt(this.normB2 / this.l), this.stepB(t));
    return this.weight * (this.k * a.mse * this.normB2 + this.l * b.mse * this.normA2);
  }

  /** Predicted bytes of both blocks at t. */
  bytes(t: number): number {
    return gaussianRiceBytes(this.k, Math.sqrt(this.normA2 / this.k), this.stepA(t))
      + gaussianRiceBytes(this.l, Math.sqrt(this.normB2 / this.l), this.stepB(t));
  }

  /** The high-rate solution of rounding2(t) = room2: s²·t²·(k + l)/12 / ‖ΔW‖² = room2 (rank·weight = s²/‖ΔW‖²). */
  highRateT(room2: number): number {
    const rank = this.k / this.dIn;
    return this.weight > 0 ? Math.sqrt((12 * room2) / (this.weight * rank * (this.k + this.l))) : 1;
  }

  /** The t whose predicted rounding error is room2 (bisection in log t from the high-rate solution; the error grows with t). */
  tFor(room2: number): number {
    if (!(this.weight > 0) || !(this.normA2 > 0) || !(this.normB2 > 0)) return 1;
    const highRate = this.highRateT(room2);
    let lo = highRate / 16, hi = highRate * 16;
    while (this.rounding2(lo) > room2 && lo > MIN_STEP) lo /= 16;
    while (this.rounding2(hi) < room2 && hi < MAX_STEP) hi *= 16;
    for (let i = 0; i < 40 && hi / lo > 1 + 1e-5; i++) {
      const mid = Math.sqrt(lo * hi);
      if (this.rounding2(mid) < room2) lo = mid;
      else hi = mid;
    }
    return Math.sqrt(lo * hi);
  }
}

function clampStep(step: number): number {
  // A step must be a normal finite f32; a factor of zeros (an untrained B) takes the largest.
  return Number.isNaN(step) ? MAX_STEP : Math.min(MAX_STEP, Math.max(MIN_STEP, step));
}

/** Range of the rice steps the search uses (normal f32 values). */
const MIN_STEP = 1e-37, MAX_STEP = 1e37;

/** Predicted relative rounding errors of the --ratio rice ladder (geometric, ×1.5). */
export const RICE_LADDER: readonly number[] = Array.from({ length: 15 }, (_, i) => 0.004 * 1.5 ** i);

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
      const model = RiceModel.fromFit(fitter, target, spec, rank);
      for (const e of RICE_LADDER) {
        const t = model.highRateT(e * e);
        const quantA = { rice: model.stepA(t) }, quantB = { rice: model.stepB(t) };
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
