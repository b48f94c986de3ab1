/**
 * How compress chooses each layer's setting. Two strategies share one layer compressor:
 *
 * - fixed: the same rank rule, coefficient counts, basis and precision for every layer
 *   (`--coeffs`, `--preset paper`: the paper's construction);
 * - budget: per-layer rank and precision chosen from the layer's spectrum to meet
 *   `--max-error E` with the fewest bytes, or `--ratio X` with the least energy-weighted error
 *   (orthogonal basis at full span of the chosen rank). This is the default, with E = 0.1.
 */
import type { BasisFamily } from '../core/basis.js';
import type { QuantMode } from '../container/document.js';
import type { FitOptions } from '../core/fit.js';

export type RankRule = 'keep' | 'auto' | number;

export interface FixedStrategy {
  kind: 'fixed';
  rank: Exclude<RankRule, 'auto'>;
  coeffsA: number;
  coeffsB: number;
  basis: BasisFamily;
  quant: QuantMode;
}

export interface BudgetStrategy {
  kind: 'budget';
  target: { maxError: number } | { ratio: number };
  rank: RankRule;
  /**
   * Precisions to choose from; one entry when the user fixed --quant. ['rice'] (the --max-error
   * default): entropy-coded levels with a per-factor step searched to meet the bound.
   */
  quants: BudgetQuant[];
  /**
   * Rice-coded blocks may be written as rANS blocks where those are shorter (format version 3; the
   * same levels either way). Set by compress from the format version, not by the user.
   */
  rans?: boolean;
}

export type Strategy = FixedStrategy | BudgetStrategy;

export const PAPER_PRESET: FixedStrategy = { kind: 'fixed', rank: 'keep', coeffsA: 1024, coeffsB: 1024, basis: 'uniform', quant: 'f32' };
export const DEFAULT_MAX_ERROR = 0.1;
export type BudgetQuant = QuantMode | 'rice';
/** Fixed-size precisions a budget chooses from (--ratio; --max-error with --quant fixed). */
export const BUDGET_QUANTS: QuantMode[] = ['int3', 'int4', 'int5', 'int6', 'int8', 'f16'];

export interface CompressSettings {
  strategy: Strategy;
  seed: number;
  fit: Partial<FitOptions>;
}
