/** Parsing and checking flag values: every bad value is a one-line UsageError. */
import { UsageError } from '../errors.js';
import { QUANT_MODES, type QuantMode } from '../container/document.js';
import type { BasisFamily } from '../core/basis.js';
import type { Family } from '../formats/layer.js';
import {
  BUDGET_QUANTS, DEFAULT_MAX_ERROR, PAPER_PRESET, type RankRule, type Strategy,
} from '../pipeline/settings.js';

export function parseInteger(flag: string, v: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^[0-9]+$/.test(v.trim())) throw new UsageError(`${flag} expects a whole number, got "${v}"`);
  const n = Number(v);
  if (n < min || n > max) throw new UsageError(`${flag} must be between ${min} and ${max}, got ${n}`);
  return n;
}

/** --threads N (1..1024), or undefined where it was not given: the caller's default applies. */
export function parseThreads(o: Record<string, unknown>): number | undefined {
  return o.threads === undefined ? undefined : parseInteger('--threads', String(o.threads), 1, 1024);
}

export function parsePositive(flag: string, v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} expects a positive number, got "${v}"`);
  return n;
}

/** A relative error bound: 0 would ask for a lossless file, 1 or more lets every layer be dropped. */
export function parseMaxError(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0 || n >= 1) {
    throw new UsageError(`--max-error is a relative error between 0 and 1 (exclusive), e.g. 0.1 for 10%; got "${v}"`);
  }
  return n;
}

export function parseRank(v: string): RankRule {
  if (v === 'keep' || v === 'auto') return v;
  return parseInteger('--rank', v, 1);
}

export function parseFamily(flag: string, v: string | undefined): Family | undefined {
  if (v === undefined) return undefined;
  if (v === 'peft' || v === 'kohya' || v === 'diffusers') return v;
  throw new UsageError(`${flag} must be peft, kohya or diffusers, got "${v}"`);
}

export function parseBasis(v: string | undefined): BasisFamily | undefined {
  if (v === undefined) return undefined;
  if (v === 'uniform' || v === 'orthogonal') return v;
  throw new UsageError(`--basis must be uniform or orthogonal, got "${v}"`);
}

export function parseQuant(v: string | undefined): QuantMode | 'auto' | 'rice' | 'fixed' | undefined {
  if (v === undefined || v === 'auto' || v === 'rice' || v === 'fixed') return v;
  if ((QUANT_MODES as readonly string[]).includes(v)) return v as QuantMode;
  throw new UsageError(`--quant must be one of auto, rice, fixed, ${QUANT_MODES.join(', ')}; got "${v}"`);
}

export interface StrategyFlags {
  preset?: string;
  maxError?: string;
  ratio?: string;
  rank?: string;
  coeffs?: string;
  coeffsA?: string;
  coeffsB?: string;
  basis?: string;
  quant?: string;
}

/**
 * One place decides the strategy from the flags:
 *   --preset paper                      the paper's construction (uniform, 1024 per factor, source rank, f32)
 *   --coeffs/--coeffs-a/--coeffs-b      fixed coefficient counts (uniform basis unless --basis orthogonal)
 *   otherwise                           budget: --max-error E (default 0.1) or --ratio X
 */
export function resolveStrategy(f: StrategyFlags): Strategy {
  const preset = f.preset ?? 'faithful';
  if (preset !== 'faithful' && preset !== 'paper') throw new UsageError(`--preset must be faithful or paper, got "${f.preset}"`);
  const basis = parseBasis(f.basis);
  const quant = parseQuant(f.quant);
  const rank = f.rank === undefined ? undefined : parseRank(f.rank);
  const both = f.coeffs === undefined ? undefined : parseInteger('--coeffs', f.coeffs, 1);
  const ka = f.coeffsA === undefined ? both : parseInteger('--coeffs-a', f.coeffsA, 1);
  const kb = f.coeffsB === undefined ? both : parseInteger('--coeffs-b', f.coeffsB, 1);
  const fixed = preset === 'paper' || ka !== undefined || kb !== undefined || basis === 'uniform';
  if (fixed) {
    if (f.maxError !== undefined || f.ratio !== undefined) {
      throw new UsageError('--max-error and --ratio choose coefficients per layer; they cannot be combined with --preset paper, --coeffs or --basis uniform');
    }
    if (rank === 'auto') throw new UsageError('--rank auto needs a budget (--max-error or --ratio), not fixed --coeffs');
    if (quant === 'auto' || quant === 'rice' || quant === 'fixed') throw new UsageError(`--quant ${quant} needs a budget (--max-error or --ratio)`);
    return {
      kind: 'fixed',
      rank: rank ?? PAPER_PRESET.rank,
      coeffsA: ka ?? PAPER_PRESET.coeffsA,
      coeffsB: kb ?? PAPER_PRESET.coeffsB,
      basis: basis ?? 'uniform',
      quant: quant ?? PAPER_PRESET.quant,
    };
  }
  if (f.maxError !== undefined && f.ratio !== undefined) throw new UsageError('give either --max-error or --ratio, not both');
  const target = f.ratio !== undefined
    ? { ratio: parsePositive('--ratio', f.ratio) }
    : { maxError: f.maxError === undefined ? DEFAULT_MAX_ERROR : parseMaxError(f.maxError) };
  // Entropy-coded levels by default; --quant fixed: every fixed-size precision; or the one given.
  const quants = quant === 'fixed' ? BUDGET_QUANTS : quant === undefined || quant === 'auto' ? ['rice' as const] : [quant];
  return { kind: 'budget', target, rank: rank ?? 'auto', quants };
}
