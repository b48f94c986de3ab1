/**
 * --ratio X: the whole file fits the byte budget (fp16 factor bytes / X) with either coding, and
 * at the same budget the rice ladder (the default) leaves less energy-weighted error than the
 * fixed-size table: the allocator (src/core/allocate.ts, checked against brute force elsewhere)
 * chooses among candidates that are each measured as stored. Measuring only the rice candidates
 * near the optimum (the default) is held to measuring every one (the yardstick).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { compress } from '../../src/pipeline/compress.js';
import { sweep, type SweepPoint } from '../../src/pipeline/sweep.js';
import type { CompressReport } from '../../src/report/report.js';
import { resolveStrategy } from '../../src/cli/options.js';
import { writeSyntheticAdapter } from '../../bench/synthetic-adapter.js';
import type { Logger } from 'pino';

/** A generated PEFT adapter in a temp folder (`src` in it), removed after `body` however it ends. */
async function withAdapter(prefix: string, shape: Parameters<typeof writeSyntheticAdapter>[1], body: (dir: string, src: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  try {
    await body(dir, await writeSyntheticAdapter(path.join(dir, 'src'), shape));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('--ratio meets its byte budget on the whole file; rice spends it for less error than fixed-size codes', { timeout: 120_000 }, async () => {
  await withAdapter('nola-ratio-', { layers: 2, d: 128, rank: 8, modules: ['q_proj', 'v_proj'], seed: 11 }, async (dir, src) => {
    for (const ratio of ['3', '6']) {
      const errors: Record<string, number> = {};
      for (const quant of ['auto', 'fixed']) {
        const output = path.join(dir, `r${ratio}-${quant}.nola.safetensors`);
        const { report } = await compress({ input: src, output, settings: { strategy: resolveStrategy({ ratio, quant }), seed: 1, fit: {} } });
        const t = report.totals;
        // The whole file (header and compressed document included, passthrough tensors aside) is at
        // least X times smaller: the container's bytes are priced from the measured layers, exactly.
        const budget = t.fp16BytesBefore / Number(ratio);
        const file = t.outputBytes - t.passthroughBytes;
        assert.ok(file <= budget, `--ratio ${ratio} --quant ${quant}: file ${file} > ${budget}`);
        assert.ok(t.coefficientBytes <= budget, `--ratio ${ratio} --quant ${quant}: coefficients ${t.coefficientBytes} > ${budget}`);
        // Not trivially small either: the budget is used.
        assert.ok(file >= 0.95 * budget, `--ratio ${ratio} --quant ${quant}: ${file} bytes leave the budget unused`);
        errors[quant] = t.energyWeightedError;
        if (quant === 'auto') assert.ok(report.layers.every((l) => Array.isArray(l.quantA) && ['rice', 'rans'].includes((l.quantA[0] as readonly unknown[])[0] as string)));
      }
      assert.ok(errors.auto < errors.fixed, `--ratio ${ratio}: rice ${errors.auto} vs fixed ${errors.fixed}`);
    }
  });
});

test('--ratio with format version 1 (a tensor per block, the document in the header) keeps the whole file within the budget', async () => {
  await withAdapter('nola-ratio-v1-', { layers: 2, d: 256, rank: 8, modules: ['q_proj', 'v_proj'], seed: 13 }, async (dir, src) => {
    // (Its header holds the whole document uncompressed: at --ratio 5 this adapter is already too small for it.)
    for (const ratio of ['2', '3']) {
      const output = path.join(dir, `v1-${ratio}.nola.safetensors`);
      const { report } = await compress({ input: src, output, formatVersion: 1, settings: { strategy: resolveStrategy({ ratio, quant: 'int8' }), seed: 1, fit: {} } });
      const t = report.totals;
      const budget = t.fp16BytesBefore / Number(ratio);
      // The file on disk (its real size, stat by the report) against the budget the ratio sets.
      assert.ok(t.outputBytes - t.passthroughBytes <= budget, `--ratio ${ratio}: file ${t.outputBytes} > ${budget}`);
      assert.ok(t.outputBytes - t.passthroughBytes >= 0.9 * budget, `--ratio ${ratio}: ${t.outputBytes} bytes leave the budget unused`);
    }
  });
});

test('--ratio on an adapter too small for its own container: the coefficients get the whole budget, with a warning', async () => {
  // Two 8 x 8 layers of rank 2: 128 fp16 bytes of factors, so --ratio 4 leaves 32 bytes, far less than any header.
  await withAdapter('nola-ratio-small-', { layers: 1, d: 8, rank: 2, modules: ['q_proj', 'v_proj'], seed: 2 }, async (dir, src) => {
    const warnings: string[] = [];
    const log = { warn: (m: string) => warnings.push(m) } as unknown as Logger;
    const { report } = await compress({ input: src, output: path.join(dir, 'x.nola.safetensors'), log, settings: { strategy: resolveStrategy({ ratio: '4' }), seed: 1, fit: {} } });
    const budget = report.totals.fp16BytesBefore / 4;
    assert.ok(report.totals.coefficientBytes <= budget);
    assert.ok(report.totals.coefficientBytes > 0);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0], /^--ratio 4: the file's header and layer document take about \d+ bytes, more than half of the 32-byte budget/);
  });
});

test('--ratio (either coding) measures only the candidates near the optimum, and ends where measuring every candidate ends', { timeout: 120_000 }, async () => {
  await withAdapter('nola-ratio-near-', { layers: 2, d: 128, rank: 8, modules: ['q_proj', 'v_proj'], seed: 23 }, async (dir, src) => {
    for (const [ratio, quant] of [['3', 'auto'], ['6', 'auto'], ['3', 'fixed'], ['6', 'fixed']]) {
      const run = async (measure: 'near' | 'all'): Promise<{ errors: number[]; total: number; debug: string[] }> => {
        const debug: string[] = [];
        const log = { warn: () => {}, debug: (m: string) => debug.push(m) } as unknown as Logger;
        const output = path.join(dir, `${measure}-${ratio}-${quant}.nola.safetensors`);
        const { report } = await compress({ input: src, output, log, ratioMeasure: measure, settings: { strategy: resolveStrategy({ ratio, quant }), seed: 1, fit: {} } });
        const budget = report.totals.fp16BytesBefore / Number(ratio);
        assert.ok(report.totals.outputBytes - report.totals.passthroughBytes <= budget, `--ratio ${ratio} (${measure}): over the budget`);
        return { errors: report.layers.map((l) => l.error), total: report.totals.energyWeightedError, debug };
      };
      const all = await run('all'), near = await run('near');
      // The yardstick measures every candidate: the near-optimal subset may pick differently, but
      // not for more than 1% of its energy-weighted error.
      assert.ok(near.total <= all.total * 1.01, `--ratio ${ratio} --quant ${quant}: near ${near.total} vs all ${all.total}`);
      const counted = /measured (\d+) of (\d+) candidates/.exec(near.debug.join('\n'));
      assert.ok(counted !== null, near.debug.join('\n'));
      assert.ok(Number(counted[1]) < Number(counted[2]) / 2, `measured ${counted[1]} of ${counted[2]}`);
      assert.match(all.debug.join('\n'), new RegExp(`measured ${counted[2]} of ${counted[2]} candidates`));
    }
  });
});

test('--sweep prices its points as compress writes them: --max-error to the byte, --ratio within 1% of the error', { timeout: 120_000 }, async () => {
  await withAdapter('nola-ratio-sweep-', { layers: 2, d: 128, rank: 8, modules: ['q_proj', 'v_proj'], seed: 29 }, async (dir, src) => {
    const result = await sweep({ input: src, seed: 1, includePaper: false });
    const at = (setting: string): SweepPoint => result.points.find((p) => p.setting === setting)!;
    // Second path: compress itself, default settings and --ratio, in the default format.
    const run = async (flags: { ratio?: string }, name: string): Promise<CompressReport['totals']> =>
      (await compress({ input: src, output: path.join(dir, name), settings: { strategy: resolveStrategy(flags), seed: 1, fit: {} } })).report.totals;
    const bounded = await run({}, 'default.nola');
    assert.equal(at('--max-error 0.1').bytes, bounded.coefficientBytes);
    for (const x of [4, 8]) {
      const t = await run({ ratio: String(x) }, `r${x}.nola`);
      const p = at(`--ratio ${x}`);
      // The sweep chooses among every candidate (the yardstick), compress among those near the optimum.
      assert.ok(Math.abs(p.energyWeightedError / t.energyWeightedError - 1) < 0.01, `--ratio ${x}: sweep ${p.energyWeightedError} vs compress ${t.energyWeightedError}`);
      assert.ok(Math.abs(p.bytes / t.coefficientBytes - 1) < 0.02, `--ratio ${x}: sweep ${p.bytes} vs compress ${t.coefficientBytes} bytes`);
    }
  });
});
