/**
 * --format-version 1: the layout issue #2 specified (and nola 0.1 wrote), still written for the
 * paper's construction. Checked against the field list of issue #2 and against the version-2 file
 * of the same settings (the same layers must expand to the same bytes).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { compress } from '../../src/pipeline/compress.js';
import { expand } from '../../src/pipeline/expand.js';
import { verify } from '../../src/pipeline/verify.js';
import { resolveStrategy } from '../../src/cli/options.js';
import { UsageError } from '../../src/errors.js';
import { generateFixtures } from '../../fixtures/generate.js';
import { unframe } from './nola-file.js';

/** Issue #2, item 5: the fields every layer object holds "at least". */
const ISSUE2_FIELDS = ['name', 'key_A', 'key_B', 'rank', 'd_in', 'd_out', 'basis', 'seed_A', 'seed_B', 'num_basis_A', 'num_basis_B', 'scale', 'coeffs_A', 'coeffs_B', 'error'];

test('version 1 holds issue #2\'s fields with F32 coefficient tensors, and expands like version 2', { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nola-v1-'));
  try {
    const fixtures = await generateFixtures(path.join(dir, 'fx'));
    const input = fixtures.find((f) => f.path.endsWith('tiny-peft/adapter_model.safetensors'))!.path;
    const settings = { strategy: resolveStrategy({ preset: 'paper' }), seed: 0, fit: { refineIters: 3, alsRounds: 2 } };
    const v1 = path.join(dir, 'v1.nola.safetensors'), v2 = path.join(dir, 'v2.nola.safetensors');
    await compress({ input, output: v1, settings, formatVersion: 1 });
    await compress({ input, output: v2, settings, formatVersion: 2 });

    const f = unframe(new Uint8Array(await readFile(v1)))!;
    const doc = JSON.parse(f.metadata!.nola) as { format_version: number; generator: string; layers: Array<Record<string, unknown>> };
    assert.equal(doc.format_version, 1);
    assert.equal(doc.generator, 'lowbias32-v1');
    assert.ok(doc.layers.length > 0);
    for (const l of doc.layers) {
      for (const key of ISSUE2_FIELDS) assert.ok(key in l, `layer ${String(l.name)} lacks ${key}`);
      for (const factor of ['A', 'B']) {
        const t = f.tensors.find((x) => x.name === l[`coeffs_${factor}`])!;
        assert.deepEqual([t.dtype, t.shape], ['F32', [l[`num_basis_${factor}`]]]);
      }
    }
    const outs: Buffer[] = [];
    for (const file of [v1, v2]) {
      const r = await expand({ input: file, output: `${path.join(dir, path.basename(file, '.nola.safetensors'))}-out/` });
      outs.push(await readFile(r.output));
      assert.equal((await verify(file, input, 1e-4)).ok, true);
    }
    assert.ok(outs[0].equals(outs[1]), 'version 1 and version 2 of the same layers expand to different bytes');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('version 1 refuses what it cannot hold (rice, split precisions) before any work', async () => {
  for (const flags of [{}, { quant: 'fixed' }, { ratio: '4' }]) {
    await assert.rejects(
      compress({ input: '/nonexistent/never-read.safetensors', output: '/nonexistent/x', settings: { strategy: resolveStrategy(flags), seed: 0, fit: {} }, formatVersion: 1 }),
      (e) => e instanceof UsageError && /^--format-version 1 holds one fixed-size precision per factor/.test(e.message),
    );
  }
});
