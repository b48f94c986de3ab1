/**
 * Issue 14, "Done when": every hostile input of the issue, made by the independent python generator
 * (scripts/make-bad-inputs.py, OUT/issue14/), is refused by the built CLI with the exit code of its
 * class, one `nola: error:` line naming the input (with control characters escaped: no raw ESC reaches
 * the terminal), nothing written where an output was asked for, and the inputs unchanged. The classes
 * are written here, not read from the generator, so it cannot drop a case or change a class unnoticed.
 * (Speed and memory are measured by the report's /usr/bin/time run, not asserted: tests are not timed;
 * a case that hung would hit the test's timeout.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { EXIT } from '../../src/errors.js';
import { makeTempDir } from '../io/helpers.js';
import { REPO, assertCleanRefusal, inBatches, listing, python3Missing, runNola } from './cli-helpers.js';

interface Case { input: string; kind: string; class: keyof typeof EXIT; commands: string[] }

const EXPECTED: Record<string, [keyof typeof EXIT, string[]]> = {
  'pattern-nested-plus': ['pairing', ['compress', 'inspect']],
  'pattern-star-star': ['pairing', ['compress', 'inspect']],
  'pattern-unsupported': ['format', ['compress', 'inspect']],
  'nola-pattern-nested-plus/x.nola.safetensors': ['format', ['expand', 'verify']],
  'nola-huge-factor/x.nola.safetensors': ['io', ['expand', 'verify']],
  'nola-huge-output/x.nola.safetensors': ['io', ['expand', 'verify']],
  'nola-uniform-work/x.nola.safetensors': ['io', ['expand', 'verify']],
  'nola-many-layers/x.nola.safetensors': ['format', ['expand', 'inspect', 'verify']],
  'nola-rank-above-source/x.nola.safetensors': ['format', ['expand', 'inspect', 'verify']],
  'header-many-tensors/x.safetensors': ['format', ['compress', 'inspect']],
  'huge-factor-lora': ['io', ['compress', 'inspect']],
  'deep-config': ['format', ['compress', 'inspect']],
  'nola-deep-config/x.nola.safetensors': ['format', ['expand', 'inspect', 'verify']],
  'fifo-input/x.safetensors': ['io', ['compress', 'inspect']],
  'fifo-config': ['io', ['compress', 'inspect']],
  'escape-name/x.safetensors': ['format', ['compress', 'inspect']],
  'factor-I32': ['format', ['compress']],
  'factor-U8': ['format', ['compress']],
  'factor-BOOL': ['format', ['compress']],
  'factor-I64': ['format', ['compress']],
  'factor-F8_E4M3': ['format', ['compress']],
  'kohya-bool-alpha/x.safetensors': ['format', ['compress']],
  'big-config': ['format', ['compress', 'inspect']],
};

const skip = python3Missing();
let tmp: { dir: string; cleanup: () => void };
let root = '';
let cases: Case[] = [];

before(() => {
  if (skip) return;
  tmp = makeTempDir('nola-hostile-');
  const r = spawnSync('python3', [path.join(REPO, 'scripts', 'make-bad-inputs.py'), path.join(tmp.dir, 'bad')], { encoding: 'utf8' });
  assert.equal(r.status, 0, `make-bad-inputs.py failed: ${r.stderr}`);
  root = path.join(tmp.dir, 'bad', 'issue14');
  cases = JSON.parse(readFileSync(path.join(root, 'manifest.json'), 'utf8')) as Case[];
});
after(() => tmp?.cleanup());

test('the generator wrote every hostile input of issue 14 with its class and commands', { skip: skip ?? false }, () => {
  assert.deepEqual(cases.map((c) => c.input).sort(), Object.keys(EXPECTED).sort());
  for (const c of cases) assert.deepEqual([c.class, c.commands], EXPECTED[c.input], c.input);
});

test('every hostile input is refused: its class code, one escaped line naming it, nothing written, inputs unchanged', { skip: skip ?? false, timeout: 300_000 }, async () => {
  const out = path.join(tmp.dir, 'out');
  mkdirSync(out);
  const inputsBefore = listing(root);
  const runs: Array<{ file: string; code: number; args: string[] }> = [];
  for (const c of cases) {
    const [cls, commands] = EXPECTED[c.input];
    const file = path.join(root, c.input);
    const slug = c.input.replace(/[/.]/g, '_');
    for (const cmd of commands) {
      const args = cmd === 'compress' ? ['compress', file, '-o', path.join(out, `${slug}.nola.safetensors`), '--threads', '1']
        : cmd === 'expand' ? ['expand', file, '-o', `${path.join(out, slug)}/`]
          : [cmd, file];
      runs.push({ file, code: EXIT[cls], args });
    }
  }
  const results = await inBatches(runs.map((r) => () => runNola(r.args)), 3);
  const problems = results.flatMap((res, i) => [
    ...assertCleanRefusal(res, runs[i].code, runs[i].file),
    ...(res.stderr.includes('\x1b') || res.stderr.includes('\r') ? [`nola ${res.args.join(' ')}: raw control character on stderr`] : []),
  ]);
  assert.deepEqual(problems, []);
  // Nothing written (expand's -o folder/ is not even created), nothing beside the inputs.
  assert.deepEqual(listing(out), []);
  assert.deepEqual(listing(root), inputsBefore);
});
