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
import { bitsPerValue, MAX_SEGMENTS, quantizedBytes, type QuantMode, type QuantRequest, type QuantSpec } from '../core/quantize.js';
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

function fullSpanSettings(spec: LayerSpec, rank: number, quant: QuantMode, seed: number, fit: CompressSettings['fit'], basis: Layout = 'orthogonal'): LayerSettings {
  const seeds = deriveLayerSeeds(seed, spec.name);
  return {
    rank, k: rank * spec.dIn, l: spec.dOut * rank, basis,
    quantA: quant, quantB: quant, seedA: seeds.seedA, seedB: seeds.seedB, fit,
  };
}

export function settingsBytes(s: LayerSettings): number {
  return quantizedBytes(s.k, s.quantA) + quantizedBytes(s.l, s.quantB);
}

/**
 * The layer's bytes had its entropy-coded blocks all been rice blocks: what the Rice model's
 * predictions are compared with (rans blocks are ~2% shorter, which the model does not price).
 */
function riceEquivalentBytes(layer: CompressedLayer): number {
  const delta = (b: CompressedLayer['blockA']): number => (b.riceBytes === undefined ? 0 : b.riceBytes - b.codes.length);
  return settingsBytes(layer.settings) + delta(layer.blockA) + delta(layer.blockB);
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
    // One rice segment per component: the component layout needs rank ≤ MAX_SEGMENTS.
    .flatMap((rank) => LAYOUTS.filter((layout) => layout === 'orthogonal' || rank <= MAX_SEGMENTS).map((layout) => {
      const model = RiceModel.fromSpectrum(layout, sigma, target.s0, rank, spec.dIn, spec.dOut);
      const room2 = roomFor(maxError, truncationError(sigma, rank));
      return { rank, layout, bytes: model.bytes(model.tFor(room2)) };
    }))
    .sort((x, y) => x.bytes - y.bytes);
  let best: CompressedLayer | undefined;
  let closest: CompressedLayer | undefined;
  for (const { rank, layout, bytes } of candidates) {
    if (best !== undefined && bytes >= riceEquivalentBytes(best) * (1 + RANK_SLACK)) break;
    const fitter = new LayerFitter(target, fullSpanSettings(spec, rank, 'f32', seed, fit, layout));
    const { best: rankBest, closest: rankClosest } = landOnBound(fitter, layout, target, spec, rank, maxError, strategy.rans === true);
    if (closest === undefined || boundError(rankClosest) < boundError(closest)) closest = rankClosest;
    if (rankBest !== undefined && (best === undefined || settingsBytes(rankBest.settings) < settingsBytes(best.settings))) best = rankBest;
  }
  return best ?? closest!;
}

/** How far inside the bound a stored layer may land and be kept without another store. */
const LANDING = 0.006;

/** The layouts the default search chooses between, per layer. */
const LAYOUTS: readonly Layout[] = ['orthogonal', 'orthogonal-components'];

/** A candidate whose prediction is this much above the best stored size is not tried (predicted bytes land within ~0.1% of the stored ones). */
const RANK_SLACK = 0.004;

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
function landOnBound(fitter: LayerFitter, layout: Layout, target: LayerTarget, spec: LayerSpec, rank: number, maxError: number, rans: boolean): { best?: CompressedLayer; closest: CompressedLayer } {
  const tail = truncationError(target.svd!.sigma, rank);
  const room2 = roomFor(maxError, tail);
  const model = RiceModel.fromFit(layout, fitter, target, spec, rank);
  let calibration = 1;
  let t = model.tFor(room2);
  let best: CompressedLayer | undefined;
  let closest: CompressedLayer | undefined;
  for (let iter = 0; iter < 6 && Number.isFinite(t) && t > 0; iter++) {
    const { quantA, quantB } = model.request(t, rans);
    const layer = fitter.store(quantA, quantB);
    const e = boundError(layer);
    if (closest === undefined || e < boundError(closest)) closest = layer;
    if (e <= maxError && (best === undefined || settingsBytes(layer.settings) < settingsBytes(best.settings))) best = layer;
    const predicted = model.rounding2(t);
    if (!(predicted > 0)) break;
    calibration = Math.max(e * e - tail * tail, 1e-300) / predicted;
    // Landed: within LANDING of the bound. Measured: 0.6% instead of 0.3% costs 0.05-0.07% of the bytes
    // and saves 7-12% of the time (fewer second stores).
    if (e <= maxError && e >= maxError * (1 - LANDING)) break;
    // Aim a hair inside after a miss, so the correction does not land just outside again.
    const next = model.tFor((room2 * (e <= maxError ? 1 : 1 - LANDING)) / calibration);
    t = next;
  }
  return { best, closest: closest! };
}

/** One rice block as the model sees it: its values, their squared norm, and the squared norm their noise is multiplied by in ΔW. */
interface ModelBlock {
  count: number;
  norm2: number;
  weight: number;
}

/** How a factor's coefficients are rotated and cut into blocks: the whole factor at once, or each rank-1 component apart. */
export type Layout = 'orthogonal' | 'orthogonal-components';

/**
 * Closed-form size and rounding error of one rank at full span (src/core/rice-model.ts). Each
 * block's coefficients are modelled as N(0, norm2/count); rounding noise of variance v per
 * coefficient adds s²·v·count·weight to ‖ΔW − ΔŴ‖², weight being the squared norm of the partner
 * the block's noise is multiplied by: for the whole-factor layout ‖B‖²/rank for A (the rotation
 * spreads the noise evenly over A's rows) and ‖A‖²/rank for B; for the component layout ‖b_i‖² for
 * row a_i and ‖a_i‖² for column b_i (B's columns being orthogonal, the components' errors add).
 * The fewest bits for a given error give every block the step t/√weight (the same noise cost
 * per bit everywhere), which for the whole-factor layout is the high-rate split above.
 */
class RiceModel {
  private constructor(private readonly a: ModelBlock[], private readonly b: ModelBlock[], private readonly errorScale: number) {}

  /** From the squared norms of A's rows and B's columns (component i of each). */
  static of(layout: Layout, rowNorm2: ArrayLike<number>, colNorm2: ArrayLike<number>, dIn: number, dOut: number, s: number, energy: number): RiceModel {
    const rank = rowNorm2.length;
    const errorScale = energy > 0 ? (s * s) / energy : 0;
    if (layout === 'orthogonal-components') {
      const a = Array.from({ length: rank }, (_, i) => ({ count: dIn, norm2: rowNorm2[i], weight: colNorm2[i] }));
      const b = Array.from({ length: rank }, (_, i) => ({ count: dOut, norm2: colNorm2[i], weight: rowNorm2[i] }));
      return new RiceModel(a, b, errorScale);
    }
    const na = sum(rowNorm2), nb = sum(colNorm2);
    return new RiceModel([{ count: rank * dIn, norm2: na, weight: nb / rank }], [{ count: dOut * rank, norm2: nb, weight: na / rank }], errorScale);
  }

  /** Before any fit: the balanced factors of the rank-r truncation, ‖a_i‖² = ‖b_i‖² = σ_i / |s|. */
  static fromSpectrum(layout: Layout, sigma: Float64Array, s: number, rank: number, dIn: number, dOut: number): RiceModel {
    const norm2 = Array.from({ length: rank }, (_, i) => (s === 0 || i >= sigma.length ? 0 : sigma[i] / Math.abs(s)));
    return RiceModel.of(layout, norm2, norm2, dIn, dOut, s, energyOf(sigma));
  }

  /** For a fitted rank: the norms of its coefficients per component (= the factors', every basis here being orthonormal). */
  static fromFit(layout: Layout, fitter: LayerFitter, target: LayerTarget, spec: LayerSpec, rank: number): RiceModel {
    const { alpha, beta } = fitter.fit;
    // Component-major coefficients for the component layout; for the whole-factor layout only the totals matter.
    const parts = layout === 'orthogonal-components' ? rank : 1;
    const spread = (x: number[]): number[] => (x.length === rank ? x : Array.from({ length: rank }, () => x[0] / rank));
    return RiceModel.of(layout, spread(segmentNorms(alpha, parts)), spread(segmentNorms(beta, parts)), spec.dIn, spec.dOut, target.s0, energyOf(target.svd!.sigma));
  }

  private steps(blocks: ModelBlock[], t: number): number[] {
    return blocks.map((x) => clampStep(t / Math.sqrt(Math.max(x.weight, 1e-300))));
  }

  /** The requests of A and B at t (one step per block; with `rans`, each block rice or rANS, whichever is shorter). */
  request(t: number, rans: boolean): { quantA: QuantRequest; quantB: QuantRequest } {
    const one = (steps: number[]): QuantRequest => ({ rice: steps.length === 1 ? steps[0] : steps, ...(rans ? { rans } : {}) });
    return { quantA: one(this.steps(this.a, t)), quantB: one(this.steps(this.b, t)) };
  }

  /** Predicted squared relative rounding error at t. */
  rounding2(t: number): number {
    let acc = 0;
    for (const blocks of [this.a, this.b]) {
      const steps = this.steps(blocks, t);
      blocks.forEach((x, i) => {
        if (x.count > 0 && x.weight > 0) acc += x.count * gaussianRiceEstimate(Math.sqrt(x.norm2 / x.count), steps[i]).mse * x.weight;
      });
    }
    return this.errorScale * acc;
  }

  /** Predicted bytes of all blocks at t. */
  bytes(t: number): number {
    let acc = 0;
    for (const blocks of [this.a, this.b]) {
      const steps = this.steps(blocks, t);
      blocks.forEach((x, i) => { acc += gaussianRiceBytes(x.count, Math.sqrt(x.norm2 / x.count), steps[i]); });
    }
    return acc;
  }

  /** The high-rate solution of rounding2(t) = room2: each block adds s²·(t²/12)·count (its step being t/√weight). */
  highRateT(room2: number): number {
    const count = [...this.a, ...this.b].reduce((acc, x) => acc + (x.weight > 0 ? x.count : 0), 0);
    return this.errorScale > 0 && count > 0 ? Math.sqrt((12 * room2) / (this.errorScale * count)) : 1;
  }

  /** The t whose predicted rounding error is room2 (bisection in log t from the high-rate solution; the error grows with t). */
  tFor(room2: number): number {
    if (!(this.errorScale > 0) || !(this.rounding2(1) > 0)) return 1;
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

function sum(x: ArrayLike<number>): number {
  let acc = 0;
  for (let i = 0; i < x.length; i++) acc += x[i];
  return acc;
}

function energyOf(sigma: Float64Array): number {
  let acc = 0;
  for (const x of sigma) acc += x * x;
  return acc;
}

/** Squared norms of `parts` equal consecutive segments of v. */
function segmentNorms(v: Float64Array, parts: number): number[] {
  const len = v.length / parts;
  return Array.from({ length: parts }, (_, i) => sumSquares(v.subarray(i * len, (i + 1) * len)));
}

function clampStep(step: number): number {
  // A step must be a normal finite f32; a factor of zeros (an untrained B) takes the largest.
  return Number.isNaN(step) ? MAX_STEP : Math.min(MAX_STEP, Math.max(MIN_STEP, step));
}

/** Range of the rice steps the search uses (normal f32 values). */
const MIN_STEP = 1e-37, MAX_STEP = 1e37;

/**
 * Predicted relative rounding errors of the --ratio rice ladder: 0.4% to 120%, geometric, ×1.25
 * (27 rungs). Against ×1.5 (15 rungs) the denser ladder gives the allocation finer steps: 0.6–1.0%
 * less energy-weighted error at --ratio 8 on the shared adapters and a 7B-shaped block, in about
 * the same time once only the candidates near the optimum are measured (docs/PERFORMANCE.md).
 */
export const RICE_LADDER: readonly number[] = Array.from({ length: 27 }, (_, i) => 0.004 * 1.25 ** i);

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
 * (rank, precision of A, precision of B); with rice coding, per rank and layout a ladder of steps
 * whose predicted rounding errors run from 0.4% to 120% of the layer (RICE_LADDER, measureLadder),
 * so the allocator can trade bytes for error smoothly. Each row's settings recompute exactly that
 * candidate. compress measures only the rice candidates worth it (predictedTable, nearOptimal);
 * the whole table is the yardstick they are tested against, and what `nola sweep` prices.
 */
export function candidateTable(target: LayerTarget, spec: LayerSpec, strategy: BudgetStrategy, seed: number, fit: CompressSettings['fit']): MeasuredRow[] {
  return measureCandidates(target, spec, strategy, seed, fit, candidateIndices(spec, strategy));
}

/** One --ratio candidate with fixed-size precisions: a rank and the precisions of A and B. */
export interface PairIndex { rank: number; quantA: QuantMode; quantB: QuantMode }

/** One --ratio candidate of a layer, as the strategy's coding numbers them. */
export type CandidateIndex = LadderIndex | PairIndex;

/** Every candidate of a layer, in table order: the rice ladder (ladderIndices), or per rank upward every (A, B) pair of precisions. */
export function candidateIndices(spec: LayerSpec, strategy: BudgetStrategy): CandidateIndex[] {
  if (strategy.quants.includes('rice')) return ladderIndices(spec, strategy);
  const pairs = precisionPairs(fixedQuants(strategy));
  return rankChoices(strategy.rank, spec).flatMap((rank) => pairs.map(([quantA, quantB]) => ({ rank, quantA, quantB })));
}

/** The given candidates of one layer, each fitted and stored (one fit per rank, and layout); rows in the order of `indices`. */
export function measureCandidates(target: LayerTarget, spec: LayerSpec, strategy: BudgetStrategy, seed: number, fit: CompressSettings['fit'], indices: readonly CandidateIndex[]): MeasuredRow[] {
  if (strategy.quants.includes('rice')) return measureLadder(target, spec, strategy, seed, fit, indices as readonly LadderIndex[]);
  const pairs = indices as readonly PairIndex[];
  const rows: MeasuredRow[] = new Array(pairs.length);
  for (const members of groupBy(pairs, (x) => String(x.rank))) {
    const fitter = new LayerFitter(target, fullSpanSettings(spec, pairs[members[0]].rank, pairs[members[0]].quantA, seed, fit));
    for (const i of members) {
      const layer = fitter.store(pairs[i].quantA, pairs[i].quantB);
      rows[i] = measuredRow(layer, layer.settings);
    }
  }
  return rows;
}

/** Positions of `items` grouped by key, groups in order of first appearance: one fit per group, so only one is alive at a time. */
function groupBy<T>(items: readonly T[], key: (x: T) => string): number[][] {
  const groups = new Map<string, number[]>();
  items.forEach((x, i) => {
    const k = key(x);
    const g = groups.get(k);
    if (g === undefined) groups.set(k, [i]);
    else g.push(i);
  });
  return [...groups.values()];
}

/**
 * The candidates to measure before a fixed-size table can be predicted: per rank, every precision
 * for both factors; as positions in candidateIndices.
 */
export function pairDiagonal(spec: LayerSpec, strategy: BudgetStrategy): number[] {
  return (candidateIndices(spec, strategy) as PairIndex[]).flatMap((x, c) => (x.quantA === x.quantB ? [c] : []));
}

/**
 * A fixed-size table (candidateIndices' order) predicted from its measured diagonal: bytes exact
 * (fixed-size codes), and the squared error of (a, b) at a rank the mean of the measured (a, a)'s
 * and (b, b)'s, each factor's rounding taken to add half of a diagonal's excess over the rank's
 * truncation: measured/predicted 0.96–1.04 (1st–99th percentile) over 40 layers each of the
 * shared SD 1.5 and DistilBERT adapters (docs/ALGORITHM.md).
 */
export function predictPairs(spec: LayerSpec, strategy: BudgetStrategy, diagonal: readonly number[], measured: readonly Candidate[]): Candidate[] {
  const all = candidateIndices(spec, strategy) as PairIndex[];
  const err2 = new Map(diagonal.map((c, i) => [`${all[c].rank}/${all[c].quantA}`, measured[i].error ** 2]));
  return all.map(({ rank, quantA, quantB }) => ({
    bytes: quantizedBytes(rank * spec.dIn, quantA) + quantizedBytes(spec.dOut * rank, quantB),
    error: Math.sqrt((err2.get(`${rank}/${quantA}`)! + err2.get(`${rank}/${quantB}`)!) / 2),
  }));
}

/** A measured candidate: its stored bytes and error, and the recipe that recomputes it. */
export interface MeasuredRow extends Candidate {
  settings: LayerRecipe;
  /** The stored layer's settings (rice requests resolved to their blocks' specs) and its two errors: what the document records of it. */
  stored: Pick<CompressedLayer, 'settings' | 'error' | 'deliveredError'>;
}

function measuredRow(layer: CompressedLayer, recipe: LayerRecipe): MeasuredRow {
  return {
    bytes: settingsBytes(layer.settings), error: boundError(layer), settings: recipe,
    stored: { settings: layer.settings, error: layer.error, deliveredError: layer.deliveredError },
  };
}

/** One --ratio rice candidate of a layer: a (rank, layout) and a rung of RICE_LADDER. */
export interface LadderIndex { rank: number; layout: Layout; rung: number }

/** Every rice candidate of a layer, in table order: ranks upward, then layouts, then rungs. */
export function ladderIndices(spec: LayerSpec, strategy: BudgetStrategy): LadderIndex[] {
  return rankChoices(strategy.rank, spec).flatMap((rank) => LAYOUTS.filter((x) => x === 'orthogonal' || rank <= MAX_SEGMENTS)
    .flatMap((layout) => RICE_LADDER.map((_, rung) => ({ rank, layout, rung }))));
}

/**
 * The given rice candidates of one layer, each fitted and stored (one fit per rank and layout
 * among them): rung j's steps are those the fitted layer's RiceModel gives the predicted rounding
 * error RICE_LADDER[j] at high rate. Rows in the order of `indices`.
 */
export function measureLadder(target: LayerTarget, spec: LayerSpec, strategy: BudgetStrategy, seed: number, fit: CompressSettings['fit'], indices: readonly LadderIndex[]): MeasuredRow[] {
  const rows: MeasuredRow[] = new Array(indices.length);
  for (const members of groupBy(indices, (x) => `${x.rank}/${x.layout}`)) {
    const { rank, layout } = indices[members[0]];
    const fitter = new LayerFitter(target, fullSpanSettings(spec, rank, 'f32', seed, fit, layout));
    const model = RiceModel.fromFit(layout, fitter, target, spec, rank);
    for (const i of members) {
      const e = RICE_LADDER[indices[i].rung];
      const { quantA, quantB } = model.request(model.highRateT(e * e), strategy.rans === true);
      const layer = fitter.store(quantA, quantB);
      rows[i] = measuredRow(layer, { ...layer.settings, quantA, quantB });
    }
  }
  return rows;
}

/**
 * The rice candidates of one layer (ladderIndices' order), predicted in closed form from the
 * spectrum (RiceModel.fromSpectrum: no fit, no store): the bytes and error of each. On the shared
 * adapters they are within ~2% of the stored bytes (rans blocks are ~2% shorter, which the model
 * does not price) and ~0.5% of the measured error below a predicted error of 0.6, above which B's
 * re-solve against the rounded A recovers more than the model knows (docs/ALGORITHM.md).
 */
export function predictedTable(target: LayerTarget, spec: LayerSpec, strategy: BudgetStrategy): Candidate[] {
  const sigma = target.svd!.sigma;
  const models = new Map<string, { model: RiceModel; tail2: number }>();
  return ladderIndices(spec, strategy).map(({ rank, layout, rung }) => {
    const key = `${rank}/${layout}`;
    let m = models.get(key);
    if (m === undefined) {
      m = { model: RiceModel.fromSpectrum(layout, sigma, target.s0, rank, spec.dIn, spec.dOut), tail2: truncationError(sigma, rank) ** 2 };
      models.set(key, m);
    }
    const e = RICE_LADDER[rung];
    const t = m.model.highRateT(e * e);
    return { bytes: m.model.bytes(t), error: Math.sqrt(m.tail2 + m.model.rounding2(t)) };
  });
}

function precisionPairs(quants: QuantMode[]): Array<[QuantMode, QuantMode]> {
  return quants.flatMap((qa) => quants.map((qb): [QuantMode, QuantMode] => [qa, qb]));
}
