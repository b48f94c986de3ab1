/**
 * The TensorFlow.js backend code path (the one --device gpu runs) on tfjs's pure-JS CPU backend,
 * checked against the CPU kernels: basis products, and whole compress runs whose layer errors
 * must agree within float32 tolerance. Also: --device gpu without @tensorflow/tfjs-node-gpu fails
 * with BackendUnavailableError (exit code 6) and --device auto falls back with a warning.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadBackend, GPU_PACKAGE } from '../../src/backends/index.js';
import { createUniformBasis } from '../../src/core/uniform-basis.js';
import { compress } from '../../src/pipeline/compress.js';
import { resolveStrategy } from '../../src/cli/options.js';
import { BackendUnavailableError, EXIT } from '../../src/errors.js';
import { writeSyntheticAdapter } from '../../bench/synthetic-adapter.js';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

const rel = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); m = Math.max(m, Math.abs(b[i])); }
  return d / m;
};

test('tfjs-cpu basis products match the CPU kernels (float32 tolerance)', async () => {
  const backend = await loadBackend('tfjs-cpu');
  assert.equal(backend.name, 'tfjs-cpu');
  try {
    for (const [k, n] of [[64, 1025], [33, 4001]] as Array<[number, number]>) {
      const dev = backend.uniformBasis(9, k, n);
      assert.ok(dev !== undefined, 'large enough bases go to the device');
      const cpu = createUniformBasis(9, k, n);
      const rnd = lcg(k + n);
      const c = Float64Array.from({ length: k }, rnd), x = Float64Array.from({ length: n }, rnd);
      const o1 = new Float64Array(n), o2 = new Float64Array(n), a1 = new Float64Array(k), a2 = new Float64Array(k);
      dev.synthesize(c, o1); cpu.synthesize(c, o2);
      dev.analyze(x, a1); cpu.analyze(x, a2);
      assert.ok(rel(o1, o2) < 1e-5, `synthesis k=${k} n=${n}: ${rel(o1, o2)}`);
      assert.ok(rel(a1, a2) < 1e-5, `analysis k=${k} n=${n}: ${rel(a1, a2)}`);
    }
    assert.equal(backend.uniformBasis(9, 4, 100), undefined, 'tiny bases stay on the CPU kernels');
  } finally {
    backend.releaseLayer();
  }
});

test('compress on the tfjs code path agrees with the CPU path', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nola-tfjs-'));
  try {
    const src = await writeSyntheticAdapter(path.join(dir, 'src'), { layers: 1, d: 128, rank: 4, modules: ['q_proj', 'v_proj'], seed: 4 });
    const strategy = resolveStrategy({ coeffs: '130' });
    const errors: number[][] = [];
    for (const device of ['cpu', 'tfjs-cpu'] as const) {
      const { report } = await compress({
        input: src, output: path.join(dir, `${device}.nola.safetensors`), settings: { strategy, seed: 1, fit: { refineIters: 5 } }, device,
      });
      errors.push(report.layers.map((l) => l.error));
    }
    for (let i = 0; i < errors[0].length; i++) {
      assert.ok(errors[0][i] < 1, 'the fit explains part of the update');
      assert.ok(Math.abs(errors[0][i] - errors[1][i]) < 1e-4, `layer ${i}: cpu ${errors[0][i]} vs tfjs ${errors[1][i]}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('--device gpu without the package fails with exit code 6; auto falls back with a warning', async (t) => {
  try {
    await import(GPU_PACKAGE);
    return t.skip(`${GPU_PACKAGE} is installed here`);
  } catch {
    // expected: not installed
  }
  await assert.rejects(loadBackend('gpu'), (e: unknown) => {
    assert.ok(e instanceof BackendUnavailableError);
    assert.equal(e.exitCode, EXIT.backend);
    assert.match(e.message, /npm install @tensorflow\/tfjs-node-gpu/);
    assert.ok(!e.message.includes('\n'));
    return true;
  });
  const warnings: string[] = [];
  const b = await loadBackend('auto', (m) => warnings.push(m));
  assert.equal(b.name, 'cpu');
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /using the CPU/);
});
