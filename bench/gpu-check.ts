/**
 * `npm run bench:gpu`: the device check for a machine with a GPU and @tensorflow/tfjs-node-gpu
 * installed. Unattended, under 3 minutes, one summary line on stdout: compresses a synthetic
 * LLaMA-like adapter (q,v of one block, d = 4096, r = 16, 512 coefficients per factor) on the CPU
 * and with --device gpu, and compares time and per-layer errors (float32 on the device: the
 * errors must agree within 1e-4).
 *
 *   --dry-run   the same check on TensorFlow.js's pure-JS CPU backend at a small size (no GPU needed)
 * Exit code: 0 pass or skipped (no GPU package), 1 mismatch or timeout.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadBackend, type Device } from '../src/backends/index.js';
import { compress } from '../src/pipeline/compress.js';
import { defaultThreads } from '../src/pipeline/parallel.js';
import { resolveStrategy } from '../src/cli/options.js';
import { BackendUnavailableError } from '../src/errors.js';
import { writeSyntheticAdapter } from './synthetic-adapter.js';

const LIMIT_MS = 170_000;
const TOLERANCE = 1e-4;

async function main(): Promise<number> {
  const dry = process.argv.includes('--dry-run');
  const device: Device = dry ? 'tfjs-cpu' : 'gpu';
  const size = dry ? { layers: 1, d: 256, rank: 8, coeffs: 128 } : { layers: 1, d: 4096, rank: 16, coeffs: 512 };
  try {
    const backend = await loadBackend(device);
    backend.releaseLayer();
  } catch (e) {
    if (e instanceof BackendUnavailableError) {
      process.stdout.write(`bench:gpu: SKIPPED (no device): ${e.message}\n`);
      return 0;
    }
    throw e;
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'nola-gpu-check-'));
  try {
    const src = await writeSyntheticAdapter(path.join(dir, 'src'), { ...size, modules: ['q_proj', 'v_proj'] });
    const strategy = resolveStrategy({ coeffs: String(size.coeffs) });
    const runs: Array<{ seconds: number; errors: number[] }> = [];
    for (const d of ['cpu', device] as const) {
      const t = performance.now();
      const { report } = await compress({
        input: src, output: path.join(dir, `${d}.nola.safetensors`), settings: { strategy, seed: 0, fit: {} },
        device: d, threads: d === 'cpu' ? defaultThreads() : 1, forceThreads: true,
      });
      runs.push({ seconds: (performance.now() - t) / 1000, errors: report.layers.map((l) => l.error) });
    }
    const diff = Math.max(...runs[0].errors.map((e, i) => Math.abs(e - runs[1].errors[i])));
    const ok = diff <= TOLERANCE;
    process.stdout.write(
      `bench:gpu: ${ok ? 'PASS' : 'FAIL'} ${device}: ${runs[1].errors.length} layers d=${size.d} r=${size.rank} k=${size.coeffs} in ${runs[1].seconds.toFixed(1)} s ` +
        `(cpu ${runs[0].seconds.toFixed(1)} s with ${defaultThreads()} threads, ${(runs[0].seconds / runs[1].seconds).toFixed(2)}x), ` +
        `max |error difference| ${diff.toExponential(2)} (tolerance ${TOLERANCE})\n`,
    );
    return ok ? 0 : 1;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const timer = setTimeout(() => {
  process.stdout.write(`bench:gpu: FAIL timeout after ${LIMIT_MS / 1000} s\n`);
  process.exit(1);
}, LIMIT_MS);
timer.unref();
process.exitCode = await main().catch((e: unknown) => {
  process.stdout.write(`bench:gpu: FAIL ${(e as Error).message.split('\n')[0]}\n`);
  return 1;
});
