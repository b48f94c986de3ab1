/**
 * Expand on worker threads (issue #10) writes the same bytes as expand on the calling thread, for the
 * orthogonal (default budget) and the uniform basis, and a layer that cannot be written still fails
 * with its typed error and the file and layer in the message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { compress } from '../../src/pipeline/compress.js';
import { expand, expandThreads } from '../../src/pipeline/expand.js';
import { resolveStrategy } from '../../src/cli/options.js';
import type { NolaLayerEntry } from '../../src/container/document.js';
import { writeLlamaAdapter } from '../../bench/synthetic-adapter.js';

test('expand with 1, 2 and 3 threads writes byte-identical files (orthogonal and uniform bases)', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nola-expand-par-'));
  try {
    // A small LLaMA-shaped BF16 adapter: 2 blocks x 7 modules, mixed widths (d_in != d_out).
    const src = await writeLlamaAdapter(path.join(dir, 'src'), { blocks: 2, hidden: 64, kv: 32, ffn: 96, rank: 4, seed: 2 });
    for (const [s, strategy] of [resolveStrategy({}), resolveStrategy({ coeffs: '60' })].entries()) {
      const nola = path.join(dir, `m${s}.nola.safetensors`);
      await compress({ input: src, output: nola, settings: { strategy, seed: 1, fit: { refineIters: 2 } }, threads: 1 });
      const files: Buffer[] = [];
      for (const threads of [1, 2, 3]) {
        const out = path.join(dir, `e${s}-${threads}`, 'adapter_model.safetensors');
        await expand({ input: nola, output: `${path.dirname(out)}/`, force: true, threads });
        files.push(await readFile(out));
      }
      assert.ok(files[0].length > 1000);
      assert.ok(files[0].equals(files[1]), `strategy ${s}: 1 vs 2 threads differ`);
      assert.ok(files[0].equals(files[2]), `strategy ${s}: 1 vs 3 threads differ`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('expand uses workers only where they pay, and exactly the count asked for', () => {
  const small = { rank: 8, d_in: 768, d_out: 768, basis: 'orthogonal', num_basis_A: 6144, num_basis_B: 6144 } as NolaLayerEntry;
  const big = { rank: 16, d_in: 4096, d_out: 11008, basis: 'orthogonal', num_basis_A: 65536, num_basis_B: 176128 } as NolaLayerEntry;
  assert.equal(expandThreads(undefined, Array(12).fill(small)), 1, 'a small adapter stays on this thread');
  assert.ok(expandThreads(undefined, Array(224).fill(big)) >= 1);
  assert.equal(expandThreads(2, [small, small, small]), 2, 'an explicit count is honoured');
  assert.equal(expandThreads(8, [small, small]), 2, 'never more threads than layers');
  assert.equal(expandThreads(0, [small]), 1);
});
