/**
 * Per-layer decisions, free of I/O so they can run on worker threads: which setting a layer gets
 * under the fixed strategy, under --max-error (search), and the candidate table --ratio allocates over.
 */
import type { Logger } from 'pino';
import { compressLayer, LayerFitter, type CompressedLayer, type LayerSettings, type LayerTarget } from '../core/compress-layer.js';
import { truncationError } from '../core/lowrank.js';
import { deriveLayerSeeds } from '../core/seeds.js';
import type { Candidate } from '../core/allocate.js';
import type { LayerSpec } from '../formats/layer.js';
import { coeffBytes, type QuantMode } from '../container/document.js';
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
  return coeffBytes(s.k, s.quantA) + coeffBytes(s.l, s.quantB);
}

/** The error that matters for a bound: what the user gets after expanding, or the NOLA reconstruction if worse. */
export function boundError(layer: CompressedLayer): number {
  return Math.max(layer.error, layer.deliveredError);
}

/**
 * Fewest bytes with error ≤ E. Ranks are tried upward from the first whose truncation error alone
 * is below E; at each rank every pair of precisions (A, B) is tried, cheapest first, reusing one
 * fit per rank and one re-solve of B per precision of A. The search stops at the first rank whose
 * cheapest setting costs more than the best found.
 */
function searchMaxError(target: LayerTarget, spec: LayerSpec, strategy: BudgetStrategy, maxError: number, seed: number, fit: CompressSettings['fit']): CompressedLayer {
  const sigma = target.svd!.sigma;
  const ranks = rankChoices(strategy.rank, spec);
  const pairs = precisionPairs(strategy.quants);
  let best: CompressedLayer | undefined;
  let closest: CompressedLayer | undefined;
  for (const rank of ranks) {
    if (rank < ranks[ranks.length - 1] && truncationError(sigma, rank) > maxError) continue;
    const base = fullSpanSettings(spec, rank, pairs[0][0], seed, fit);
    const byBytes = pairs
      .map(([qa, qb]) => ({ qa, qb, bytes: coeffBytes(base.k, qa) + coeffBytes(base.l, qb) }))
      .sort((x, y) => x.bytes - y.bytes);
    if (best !== undefined && byBytes[0].bytes >= settingsBytes(best.settings)) break;
    const fitter = new LayerFitter(target, base);
    for (const { qa, qb, bytes } of byBytes) {
      if (best !== undefined && bytes >= settingsBytes(best.settings)) break;
      const layer = fitter.store(qa, qb);
      if (closest === undefined || boundError(layer) < boundError(closest)) closest = layer;
      if (boundError(layer) <= maxError) {
        best = layer;
        break;
      }
    }
  }
  return best ?? closest!;
}

/** Every (rank, precision of A, precision of B) candidate of one layer, measured. */
export function candidateTable(target: LayerTarget, spec: LayerSpec, strategy: BudgetStrategy, seed: number, fit: CompressSettings['fit']): Array<Candidate & { settings: LayerSettings }> {
  const table: Array<Candidate & { settings: LayerSettings }> = [];
  const pairs = precisionPairs(strategy.quants);
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
