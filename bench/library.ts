/**
 * `npm run bench:library [-- options]` (issue #12 item 9): a library of generated adapters compressed
 * by one `nola compress DIR --out-dir OUT` process against a loop of single-file `nola compress FILE`
 * calls (what a shell loop does: one node start-up, module load and worker start per file), in the
 * same invocation. Reports files per second of each, their ratio, and peak resident memory: the one
 * process's against the largest any single-file call needed. Never a test: numbers depend on the load.
 *
 *   --count N        adapters in the library (default 200)
 *   --size S         sd15: SD-1.5 UNet LoRAs as diffusers writes them (128 attention layers, rank 4,
 *                    F32, 3.2 MB, the shape of ../shared/real-loras/diffusers-sd15; the default);
 *                    tiny: 4 layers of 64 x 64 at rank 4 (start-up dominates)
 *   --threads N      passed to both (default: nola's default, all cores)
 *   --no-loop        one single-file call instead of the loop (for memory checks: its peak, the one process's)
 *   --json FILE      also write the numbers as JSON
 *
 * Environment: both sides inherit it; MALLOC_ARENA_MAX (glibc's arena count) is printed when set.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sd15Layers, tinyLayers, writeDiffusersAdapter } from './synthetic-adapter.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
const bin = path.join(repoRoot, 'bin', 'nola.js');

interface Options { count: number; size: 'sd15' | 'tiny'; threads?: string; json?: string; loop: boolean }

function parseArgs(argv: string[]): Options {
  const o: Options = { count: 200, size: 'sd15', loop: true };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, v] = [argv[i], argv[i + 1]];
    if (flag === '--no-loop') { o.loop = false; i--; continue; }
    if (v === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--count') o.count = Number(v);
    else if (flag === '--size' && (v === 'sd15' || v === 'tiny')) o.size = v;
    else if (flag === '--threads') o.threads = v;
    else if (flag === '--json') o.json = v;
    else throw new Error(`unknown option ${flag} ${v}`);
  }
  if (!Number.isInteger(o.count) || o.count < 1) throw new Error('--count must be a positive whole number');
  return o;
}

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const dir = await mkdtemp(path.join(tmpdir(), 'nola-bench-library-'));
  try {
    const lib = path.join(dir, 'lib');
    await mkdir(lib);
    const layers = o.size === 'sd15' ? sd15Layers() : tinyLayers();
    for (let i = 0; i < o.count; i++) await writeDiffusersAdapter(path.join(lib, `adapter-${String(i).padStart(4, '0')}.safetensors`), layers, i + 1);
    const files = (await readdir(lib)).sort().map((f) => path.join(lib, f));
    const threads = o.threads !== undefined ? ['--threads', o.threads] : [];
    const load0 = loadavg()[0];

    // A loop of single-file calls, one after another, as `for f in lib/*; do nola compress "$f" -o …; done` runs them.
    const loopOut = path.join(dir, 'loop');
    await mkdir(loopOut);
    const singlePeaks: number[] = [];
    const t0 = process.hrtime.bigint();
    for (const f of o.loop ? files : files.slice(0, 1)) {
      const r = await run(['compress', f, '-o', path.join(loopOut, path.basename(f, '.safetensors') + '.nola.safetensors'), '--json', ...threads]);
      if (r.code !== 0) throw new Error(`single-file call failed on ${f}: ${r.stderr}`);
      singlePeaks.push((JSON.parse(r.stdout) as { totals: { peakRssBytes: number } }).totals.peakRssBytes);
    }
    // The yardstick is the largest single call; the spread of the calls (same shape, other values)
    // says how much of a difference against it is the calls' own variation.
    singlePeaks.sort((a, b) => a - b);
    const loopPeak = singlePeaks[singlePeaks.length - 1];
    const medianPeak = singlePeaks[Math.floor((singlePeaks.length - 1) / 2)];
    const smallestPeak = singlePeaks[0];
    const loopSeconds = Number(process.hrtime.bigint() - t0) / 1e9;

    const t1 = process.hrtime.bigint();
    const r = await run(['compress', lib, '--out-dir', path.join(dir, 'one'), '--json', ...threads]);
    const oneSeconds = Number(process.hrtime.bigint() - t1) / 1e9;
    if (r.code !== 0) throw new Error(`one-process run failed: ${r.stderr}`);
    const one = JSON.parse(r.stdout) as { totals: { done: number }; peakRssBytes: number };
    if (one.totals.done !== files.length) throw new Error(`one-process run did ${one.totals.done} of ${files.length}`);

    const result = {
      machine: `${cpus().length} x ${cpus()[0]?.model ?? 'unknown cpu'}`, load_before: load0, load_after: loadavg()[0],
      // glibc's arena count changes both sides' memory (docs/PERFORMANCE.md "Libraries"): say when it was set.
      malloc_arena_max: process.env.MALLOC_ARENA_MAX ?? null,
      size: o.size, count: files.length, threads: o.threads ?? 'default',
      loop: {
        seconds: loopSeconds, files_per_s: files.length / loopSeconds,
        peak_rss_max_single: loopPeak, peak_rss_median_single: medianPeak, peak_rss_min_single: smallestPeak,
      },
      one_process: { seconds: oneSeconds, files_per_s: files.length / oneSeconds, peak_rss: one.peakRssBytes },
      speedup: loopSeconds / oneSeconds,
      rss_vs_largest_single: one.peakRssBytes / loopPeak,
    };
    const mb = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MiB`;
    process.stdout.write([
      `library: ${files.length} ${o.size} adapters (${result.machine}; load ${load0.toFixed(1)} -> ${result.load_after.toFixed(1)}` +
        `${result.malloc_arena_max === null ? '' : `; MALLOC_ARENA_MAX=${result.malloc_arena_max}`})`,
      `  loop of single-file calls: ${loopSeconds.toFixed(1)} s, ${result.loop.files_per_s.toFixed(2)} files/s, peak RSS of the largest call ${mb(loopPeak)}` +
        (singlePeaks.length > 1 ? ` (calls: smallest ${mb(smallestPeak)}, median ${mb(medianPeak)})` : ''),
      `  one process:               ${oneSeconds.toFixed(1)} s, ${result.one_process.files_per_s.toFixed(2)} files/s, peak RSS ${mb(one.peakRssBytes)}`,
      `  one process is ${result.speedup.toFixed(2)}x the loop's speed at ${result.rss_vs_largest_single.toFixed(3)}x its largest call's memory`,
    ].join('\n') + '\n');
    if (o.json !== undefined) await writeFile(o.json, `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exitCode = 1;
});
