/**
 * Issue 5, "Done when" 1: every kind of bad input, made by an independent python script
 * (scripts/make-bad-inputs.py, standard library only, builds the bytes itself), is refused by the built
 * CLI with the exit code of its class (src/errors.ts EXIT, the README table), one `nola: error:` line
 * that names the file, no stack trace, and nothing written: no output and no temp file.
 * The script's two controls (a valid LoRA, a valid NOLA file) must go through, so the bad cases fail for
 * the defect they carry and not because the generator writes broken files in general.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { EXIT } from '../../src/errors.js';
import { makeTempDir } from '../io/helpers.js';
import { REPO, assertCleanRefusal, inBatches, listing, python3Missing, runNola } from './cli-helpers.js';

interface Case { file: string; kind: string; class: string; nola: boolean }

/**
 * What the issue lists, with the class each must report (written here, not read from the script, so the
 * script cannot drop a case or change its class unnoticed): format 3, pairing 4, numeric 5.
 */
const EXPECTED: Record<string, keyof typeof EXIT> = {
  'empty.safetensors': 'format',
  'seven-bytes.safetensors': 'format',
  'header-past-eof.safetensors': 'format',
  'header-2pow63.safetensors': 'format',
  'invalid-json.safetensors': 'format',
  'duplicate-key.safetensors': 'format',
  'overlapping-offsets.safetensors': 'format',
  'gapped-offsets.safetensors': 'format',
  'byte-length-mismatch.safetensors': 'format',
  'trailing-bytes.safetensors': 'format',
  'unknown-dtype.safetensors': 'format',
  'non-string-metadata.safetensors': 'format',
  'zip-checkpoint.bin': 'format',
  'pickle-checkpoint.bin': 'format',
  'truncated.safetensors': 'format',
  'nan-factor.safetensors': 'numeric',
  'inf-factor.safetensors': 'numeric',
  'a-without-b.safetensors': 'pairing',
  'rank-mismatch.safetensors': 'pairing',
  'unknown-version.nola.safetensors': 'format',
  'unknown-generator.nola.safetensors': 'format',
  'coeffs-count-mismatch.nola.safetensors': 'format',
  'coeffs-dtype-mismatch.nola.safetensors': 'format',
  'coeffs-missing.nola.safetensors': 'format',
  'v2-document-not-zlib.nola.safetensors': 'format',
  'v2-coeffs-short.nola.safetensors': 'format',
  'v2-envelope-extra.nola.safetensors': 'format',
};

const skip = python3Missing();
let tmp: { dir: string; cleanup: () => void };
let bad = '';
let cases: Case[] = [];

before(() => {
  if (skip) return;
  tmp = makeTempDir('nola-bad-');
  bad = path.join(tmp.dir, 'bad');
  const r = spawnSync('python3', [path.join(REPO, 'scripts', 'make-bad-inputs.py'), bad], { encoding: 'utf8' });
  assert.equal(r.status, 0, `make-bad-inputs.py failed: ${r.stderr}`);
  cases = JSON.parse(readFileSync(path.join(bad, 'manifest.json'), 'utf8')) as Case[];
});
after(() => tmp?.cleanup());

test('the generator wrote every kind of bad input the issue lists, and two controls', { skip: skip ?? false }, () => {
  const badCases = cases.filter((c) => c.class !== 'ok');
  assert.deepEqual(badCases.map((c) => c.file).sort(), Object.keys(EXPECTED).sort());
  for (const c of badCases) assert.equal(c.class, EXPECTED[c.file], c.file);
  assert.ok(new Set(badCases.map((c) => c.kind)).size >= 15);
  assert.deepEqual(cases.filter((c) => c.class === 'ok').map((c) => c.file).sort(), ['good/lora.safetensors', 'good/model-v2.nola.safetensors', 'good/model.nola.safetensors']);
});

test('every bad input is refused by compress, inspect and (NOLA files) expand: code, one line, nothing written', { skip: skip ?? false, timeout: 120_000 }, async () => {
  const out = path.join(tmp.dir, 'out');
  mkdirSync(out);
  const inputsBefore = listing(bad);
  const runs: Array<{ file: string; code: number; args: string[] }> = [];
  for (const c of cases.filter((x) => x.class !== 'ok')) {
    const file = path.join(bad, c.file);
    const code = EXIT[EXPECTED[c.file]];
    runs.push({ file, code, args: ['compress', file, '-o', path.join(out, `${c.file}.nola.safetensors`)] });
    runs.push({ file, code, args: ['inspect', file] });
    if (c.nola) runs.push({ file, code, args: ['expand', file, '-o', path.join(out, `${c.file}.expanded.safetensors`)] });
  }
  assert.equal(runs.length, 19 * 2 + 8 * 3);
  const results = await inBatches(runs.map((r) => () => runNola(r.args)), 4);
  const problems = results.flatMap((res, i) => assertCleanRefusal(res, runs[i].code, runs[i].file));
  assert.deepEqual(problems, []);
  // Nothing written: no outputs and no temp files where outputs were asked for, nothing beside the inputs.
  assert.deepEqual(listing(out), []);
  assert.deepEqual(listing(bad), inputsBefore);
});

test('the controls go through, so the refusals above are about the defects', { skip: skip ?? false, timeout: 60_000 }, async () => {
  const out = path.join(tmp.dir, 'good-out');
  mkdirSync(out);
  const lora = path.join(bad, 'good', 'lora.safetensors');
  const nola = path.join(bad, 'good', 'model.nola.safetensors');
  const nola2 = path.join(bad, 'good', 'model-v2.nola.safetensors');
  const results = await inBatches([
    () => runNola(['compress', lora, '-o', path.join(out, 'lora.nola.safetensors'), '--threads', '1']),
    () => runNola(['inspect', lora]),
    () => runNola(['inspect', nola]),
    () => runNola(['--log-level', 'error', 'expand', nola, '-o', path.join(out, 'model.safetensors')]),
    () => runNola(['inspect', nola2]),
    () => runNola(['--log-level', 'error', 'expand', nola2, '-o', path.join(out, 'model-v2.safetensors')]),
    () => runNola(['verify', nola2]),
  ]);
  for (const r of results) assert.equal(r.code, 0, `nola ${r.args.join(' ')}: ${r.stderr}`);
  assert.deepEqual(listing(out), ['lora.nola.safetensors', 'model-v2.safetensors', 'model.safetensors']);
  // The two controls hold the same layer in the two layouts: expand writes the same bytes.
  assert.ok(readFileSync(path.join(out, 'model.safetensors')).equals(readFileSync(path.join(out, 'model-v2.safetensors'))));
});

test('--debug adds the stack trace that the plain error line leaves out', { skip: skip ?? false }, async () => {
  const file = path.join(bad, 'duplicate-key.safetensors');
  const r = await runNola(['--debug', 'inspect', file]);
  assert.equal(r.code, EXIT.format);
  assert.match(r.stderr, /^nola: error: .*duplicate-key\.safetensors: header has duplicate key "w"\n/);
  assert.match(r.stderr, /^\s+at /m);
});
