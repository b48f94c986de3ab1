/**
 * The linear-time pattern matcher (src/formats/pattern.ts) against an independent second method:
 * JavaScript's own RegExp, on many generated patterns and strings of the subset (small alphabets, so
 * that matches and near-misses are both common). Then the hostile patterns of issue 14, which a
 * backtracking engine takes exponential time on, and the refusals of what is outside the subset.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compilePattern, compilePeftKey, PatternError, MAX_PATTERN_PROGRAM } from '../../src/formats/pattern.js';
import { matchPatternKey } from '../../src/formats/common.js';
import { FormatError } from '../../src/errors.js';
import { genPattern, genText, rng } from './pattern-gen.js';

test('whole-string matches agree with RegExp on 3000 generated patterns x 20 strings', () => {
  const r = rng(14);
  let matched = 0, total = 0;
  for (let p = 0; p < 3000; p++) {
    const pattern = genPattern(r, 2);
    const ours = compilePattern(pattern);
    const ref = new RegExp(`^(?:${pattern})$`);
    const peft = compilePeftKey(pattern);
    const refPeft = new RegExp(`^(?:.*\\.)?(?:${pattern})$`);
    for (let t = 0; t < 20; t++) {
      const text = genText(r);
      const want = ref.test(text);
      assert.equal(ours.matches(text), want, `pattern ${JSON.stringify(pattern)} on ${JSON.stringify(text)}`);
      assert.equal(peft.matches(text), refPeft.test(text), `PEFT key ${JSON.stringify(pattern)} on ${JSON.stringify(text)}`);
      matched += want ? 1 : 0;
      total++;
    }
  }
  // Both outcomes are well represented, so the comparison says something about each.
  assert.ok(matched > total * 0.05 && matched < total * 0.95, `${matched} of ${total} matched`);
});

test('PEFT-style keys on real module paths (hand-checked against peft get_pattern_key)', () => {
  const path = 'base_model.model.distilbert.transformer.layer.0.attention.q_lin';
  assert.equal(compilePeftKey('q_lin').matches(path), true); // a dotted suffix
  assert.equal(compilePeftKey('lin').matches(path), false); // not at a dot boundary
  assert.equal(compilePeftKey('layer\\.0\\.attention\\.q_lin').matches(path), true);
  assert.equal(compilePeftKey('layer\\.[1-5]\\.attention\\.q_lin').matches(path), false);
  assert.equal(compilePeftKey('^base_model.*q_lin').matches(path), true);
  assert.equal(compilePeftKey('(?P<which>q|v)_lin').matches(path), true);
  assert.equal(compilePeftKey('transformer\\.layer\\.\\d{1,2}\\.attention\\.(q|k)_lin').matches(path), true);
});

test('hostile patterns finish: (a+)+$ and (.*)*X on long texts, the answers RegExp would give', () => {
  // RegExp takes exponential time on both (2^n steps for the failing match); the Pike VM is linear.
  const long = `${'a'.repeat(20_000)}b`;
  assert.equal(compilePeftKey('(a+)+$').matches(long), false);
  assert.equal(compilePeftKey('(a+)+$').matches('a'.repeat(20_000)), true);
  const path = 'base_model.model.distilbert.transformer.layer.0.attention.q_lin'.repeat(200);
  assert.equal(compilePeftKey('(.*)*X').matches(path), false);
  assert.equal(compilePeftKey('(.*)*X').matches(`${path}X`), true);
  assert.equal(compilePeftKey('(a|a)*(a|a)*(a|aa)*c').matches('a'.repeat(5000)), false);
  assert.equal(compilePeftKey('((a*)*)*').matches('a'.repeat(5000)), true);
});

test('patterns outside the subset are refused, each with a reason', () => {
  for (const p of ['(a)\\1', '(?=a)a', '(?!a)b', '(?<=a)b', '\\bq', '(?i)Q', 'a{,3}', 'a{', '*a', 'a**', '[]a]', '[a', '(a', 'a)', '\\', '^*', '\\x41', '[[a]]']) {
    assert.throws(() => compilePattern(p), PatternError, p);
  }
  assert.throws(() => compilePattern('a{1001}'), /exceeds 1000/);
  assert.throws(() => compilePattern('((a{100}){100}){100}'), new RegExp(`limit of ${MAX_PATTERN_PROGRAM}`));
  // As a config's pattern key: a FormatError (exit 3) naming the file and the key.
  assert.throws(() => matchPatternKey({ '(a)\\1': 4 }, 'x.a', 'cfg.json: rank_pattern'),
    (e: unknown) => e instanceof FormatError && /^cfg\.json: rank_pattern: pattern key "\(a\)\\\\1" is not supported: escape/.test(e.message));
});
