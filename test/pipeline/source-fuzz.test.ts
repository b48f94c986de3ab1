/**
 * Generated sources with hostile names, configs and metadata (source-fuzz-target.ts), compressed and
 * loaded with every `to`: each step works or refuses with a NolaError, and python/nola_reader, an
 * independent port, gives the same bytes, metadata and config as nola on every file that compressed
 * (or refuses with nola's words). A longer run: npm run fuzz -- --target sources --cases 2000.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { caseRandom } from '../io/fuzz-core.js';
import { digestDifferences, makeSourceCase, pythonLoads, runSourceCase, type SourceOutcome } from './source-fuzz-target.js';

import { REPO } from '../cli/cli-helpers.js';
const numpy = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

test('source fuzz: 60 generated adapters compress or refuse cleanly, load with every to=, and the Python reader agrees', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nola-source-fuzz-'));
  try {
    const outcomes: SourceOutcome[] = [];
    for (let i = 0; i < 60; i++) {
      const caseDir = path.join(dir, `case-${i}`);
      const c = await makeSourceCase(caseRandom(20261202, i), caseDir);
      if (c === null) continue;
      outcomes.push(await runSourceCase(c, path.join(dir, `case-${i}.nola`)));
    }
    const ok = outcomes.filter((o) => o.result === 'ok');
    // Both outcomes occur at this seed: the generator reaches compress's refusals and its success path.
    assert.ok(ok.length >= 15 && outcomes.length - ok.length >= 10, `${ok.length} compressed, ${outcomes.length - ok.length} refused`);
    if (!numpy) return;
    const py = pythonLoads(ok.map((o) => o.nola!), REPO);
    for (const o of ok) assert.deepEqual(digestDifferences(o.loads!, py[o.nola!]), [], o.nola);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
