/**
 * Worker threads change nothing in the output: a compress with --threads 2 writes the same bytes
 * as one with a single thread (fixed uniform strategy and the default budget strategy), and typed
 * errors raised on a worker keep their type.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { compress } from '../../src/pipeline/compress.js';
import { resolveStrategy } from '../../src/cli/options.js';
import { chooseThreads } from '../../src/pipeline/parallel.js';
import { deserializeError, serializeError } from '../../src/pipeline/worker-pool.js';
import type { LayerSpec } from '../../src/formats/layer.js';
import { NumericError } from '../../src/errors.js';
import { writeSyntheticAdapter } from '../../bench/synthetic-adapter.js';

test('threads = 2 writes byte-identical files to threads = 1', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nola-parallel-'));
  try {
    const src = await writeSyntheticAdapter(path.join(dir, 'src'), { layers: 3, d: 48, rank: 4, modules: ['q_proj', 'v_proj'], seed: 3 });
    const strategies = [
      resolveStrategy({ coeffs: '40' }),
      resolveStrategy({}),
      resolveStrategy({ ratio: '3' }),
      resolveStrategy({ ratio: '3', quant: 'fixed' }),
    ];
    for (const [s, strategy] of strategies.entries()) {
      const files: Buffer[] = [];
      const reports: number[][] = [];
      for (const threads of [1, 2]) {
        const output = path.join(dir, `out-${s}-${threads}.nola.safetensors`);
        const { report } = await compress({ input: src, output, settings: { strategy, seed: 5, fit: { refineIters: 5 } }, threads, forceThreads: true });
        files.push(await readFile(output));
        reports.push(report.layers.map((l) => l.error));
        assert.ok(report.totals.peakRssBytes > 0);
      }
      assert.ok(files[0].equals(files[1]), `strategy ${strategy.kind}: outputs differ between 1 and 2 threads`);
      assert.deepEqual(reports[0], reports[1]);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('short fits stay in this thread; long ones get workers', () => {
  const layer = { rank: 16, dIn: 4096, dOut: 4096 } as LayerSpec;
  const paper = resolveStrategy({ coeffs: '512' });
  assert.equal(chooseThreads(8, [layer], paper), 1, 'one layer: nothing to spread');
  assert.equal(chooseThreads(8, [layer, layer, layer], paper), 3);
  assert.equal(chooseThreads(1, [layer, layer], paper), 1);
  const small = { rank: 8, dIn: 768, dOut: 768 } as LayerSpec;
  assert.equal(chooseThreads(2, Array(12).fill(small), resolveStrategy({})), 1, 'budget mode on a small adapter');
});

test('typed errors cross the thread boundary with their exit code', () => {
  const e = deserializeError(serializeError(new NumericError('bad factor')));
  assert.ok(e instanceof NumericError);
  assert.equal(e.message, 'bad factor');
});
