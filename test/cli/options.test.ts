/**
 * How the compress flags become a strategy (src/cli/options.ts resolveStrategy), as the README's
 * option table documents it: the default budget codes coefficients with rice, `--quant fixed` picks
 * among the fixed-size precisions, one mode fixes it, and the budget-only choices are refused with
 * fixed coefficient counts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveStrategy } from '../../src/cli/options.js';
import { BUDGET_QUANTS, DEFAULT_MAX_ERROR, PAPER_PRESET } from '../../src/pipeline/settings.js';
import { UsageError } from '../../src/errors.js';

test('defaults: --max-error 0.1 with rice; --ratio also rice; --quant fixed / a mode / auto', () => {
  assert.deepEqual(resolveStrategy({}), { kind: 'budget', target: { maxError: DEFAULT_MAX_ERROR }, rank: 'auto', quants: ['rice'] });
  assert.deepEqual(resolveStrategy({ ratio: '8' }), { kind: 'budget', target: { ratio: 8 }, rank: 'auto', quants: ['rice'] });
  assert.deepEqual(resolveStrategy({ quant: 'auto', maxError: '0.05' }), { kind: 'budget', target: { maxError: 0.05 }, rank: 'auto', quants: ['rice'] });
  assert.deepEqual(resolveStrategy({ quant: 'rice', ratio: '4' }), { kind: 'budget', target: { ratio: 4 }, rank: 'auto', quants: ['rice'] });
  assert.deepEqual(resolveStrategy({ quant: 'fixed' }), { kind: 'budget', target: { maxError: DEFAULT_MAX_ERROR }, rank: 'auto', quants: BUDGET_QUANTS });
  assert.deepEqual(resolveStrategy({ quant: 'int4', rank: 'keep' }), { kind: 'budget', target: { maxError: DEFAULT_MAX_ERROR }, rank: 'keep', quants: ['int4'] });
  assert.deepEqual(resolveStrategy({ preset: 'paper' }), PAPER_PRESET);
});

test('budget-only storage with fixed counts, and unknown modes, are usage errors', () => {
  for (const quant of ['rice', 'fixed', 'auto']) {
    assert.throws(() => resolveStrategy({ quant, coeffs: '64' }), (e) => e instanceof UsageError && e.message === `--quant ${quant} needs a budget (--max-error or --ratio)`);
  }
  assert.throws(() => resolveStrategy({ quant: 'int7' }), (e) => e instanceof UsageError && /^--quant must be one of auto, rice, fixed, f32/.test(e.message));
  assert.throws(() => resolveStrategy({ maxError: '0.1', ratio: '4' }), UsageError);
});
