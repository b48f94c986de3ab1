/**
 * The Python reader's pattern matcher (python/nola_reader/_pattern.py), which decides the rank and
 * alpha of PEFT rank_pattern / alpha_pattern keys stored in a NOLA file. It must match as nola does
 * (src/formats/pattern.ts) and never backtrack: the keys come from the file, and Python's `re` takes
 * exponential time on keys like `(a+)+$`. Two second methods: nola's matcher (the same answers and the
 * same refusals, message for message) and Python's own `re` (what PEFT runs, on the subset's benign
 * generated patterns). Then the hostile keys of issue 14 and the reader's error for a refused key.
 * Skipped, with a note, where python3 is absent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { REPO } from '../cli/cli-helpers.js';
import { compilePattern, compilePeftKey, PatternError } from '../../src/formats/pattern.js';
import { matchPatternKey } from '../../src/formats/common.js';
import { genPattern, genText, rng } from '../formats/pattern-gen.js';

const PYTHONPATH = path.join(REPO, 'python');
const python3 = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;
const NO_PYTHON = 'python3 with numpy not found: the Python reader is not checked here';

function python(script: string, input: string): string {
  const r = spawnSync('python3', ['-c', script], { encoding: 'utf8', env: { ...process.env, PYTHONPATH }, input, maxBuffer: 1 << 26, timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr || `python3 ended by ${r.signal}`);
  return r.stdout;
}

/** Per case [whole-string match, PEFT-key match, re.fullmatch of the whole pattern, of the PEFT form], or the refusal. */
const RUN = `
import sys, json, re
from nola_reader._pattern import compile_pattern, compile_peft_key, PatternError
out = []
for pattern, texts in json.load(sys.stdin):
    try:
        whole, peft = compile_pattern(pattern), compile_peft_key(pattern)
    except PatternError as e:
        out.append(str(e)); continue
    ref, ref_peft = re.compile('(?:' + pattern + ')'), re.compile(r'(?:.*\\.)?(?:' + pattern + ')')
    out.append([[whole.matches(t), peft.matches(t), ref.fullmatch(t) is not None, ref_peft.fullmatch(t) is not None] for t in texts])
print(json.dumps(out))
`;

test('python reader: its pattern matcher answers as nola\'s and as Python re on 1500 generated patterns x 20 strings', (t) => {
  if (!python3) return t.skip(NO_PYTHON);
  const r = rng(12);
  const cases: Array<[string, string[]]> = [];
  for (let p = 0; p < 1500; p++) cases.push([genPattern(r, 2), Array.from({ length: 20 }, () => genText(r))]);
  const got = JSON.parse(python(RUN, JSON.stringify(cases))) as boolean[][][];
  let matched = 0, total = 0;
  cases.forEach(([pattern, texts], i) => {
    const whole = compilePattern(pattern), peft = compilePeftKey(pattern);
    texts.forEach((text, j) => {
      const [pyWhole, pyPeft, reWhole, rePeft] = got[i][j];
      const where = `pattern ${JSON.stringify(pattern)} on ${JSON.stringify(text)}`;
      assert.equal(pyWhole, whole.matches(text), `${where}: nola's matcher`);
      assert.equal(pyPeft, peft.matches(text), `${where} (PEFT key): nola's matcher`);
      assert.equal(pyWhole, reWhole, `${where}: Python re`);
      assert.equal(pyPeft, rePeft, `${where} (PEFT key): Python re`);
      matched += pyWhole ? 1 : 0;
      total++;
    });
  });
  assert.ok(matched > total * 0.05 && matched < total * 0.95, `${matched} of ${total} matched: both outcomes are tested`);
});

test('python reader: patterns outside the subset are refused with nola\'s reasons, word for word', (t) => {
  if (!python3) return t.skip(NO_PYTHON);
  const refused = ['(a)\\1', '(?=a)a', '(?!a)b', '(?<=a)b', '\\bq', '(?i)Q', 'a{,3}', 'a{', '*a', 'a**', '[]a]', '[a', '(a', 'a)', '\\', '^*',
    '\\x41', '[[a]]', 'a{1001}', '((a{100}){100}){100}', '[b-a]', '[\\d-z]', 'x'.repeat(10_001)];
  const got = JSON.parse(python(RUN, JSON.stringify(refused.map((p) => [p, []])))) as unknown[];
  refused.forEach((p, i) => {
    let want = '';
    try { compilePattern(p); compilePeftKey(p); } catch (e) { if (e instanceof PatternError) want = e.message; else throw e; }
    assert.notEqual(want, '', `nola refuses ${JSON.stringify(p.slice(0, 40))}`);
    assert.equal(got[i], want, JSON.stringify(p.slice(0, 40)));
  });
});

test('python reader: hostile keys finish with the answers nola gives, and a refused key is the FormatError nola raises', (t) => {
  if (!python3) return t.skip(NO_PYTHON);
  // Python's re takes exponential time on these (2^n steps for the failing match); the Pike VM is linear.
  const path0 = 'base_model.model.distilbert.transformer.layer.0.attention.q_lin'.repeat(50);
  const hostile: Array<[string, string]> = [
    ['(a+)+$', `${'a'.repeat(5000)}b`], ['(a+)+$', 'a'.repeat(5000)], ['(.*)*X', path0], ['(.*)*X', `${path0}X`],
    ['(a|a)*(a|a)*(a|aa)*c', 'a'.repeat(2000)], ['((a*)*)*', 'a'.repeat(2000)],
  ];
  const out = python(`
import sys, json
from nola_reader._pattern import compile_peft_key
print(json.dumps([compile_peft_key(p).matches(s) for p, s in json.load(sys.stdin)]))
`, JSON.stringify(hostile));
  assert.deepEqual(JSON.parse(out), hostile.map(([p, s]) => compilePeftKey(p).matches(s)));

  let want = '';
  try { matchPatternKey({ '(a)\\1': 4 }, 'x.a', 'cfg.json: rank_pattern'); } catch (e) { want = (e as Error).message; }
  const err = python(`
import sys
from nola_reader._plan import match_pattern_key
from nola_reader import NolaError
try:
    match_pattern_key({'(a)\\\\1': 4}, 'x.a', 'cfg.json: rank_pattern'); print('matched')
except NolaError as e:
    print(type(e).__name__, e.exit_code); print(e)
`, '');
  assert.equal(err, `FormatError 3\n${want}\n`);
});
