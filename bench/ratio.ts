/**
 * `npm run bench:ratio [-- options]`: `--ratio X` measuring only the candidates near the optimum
 * (the default, src/pipeline/ratio-budget.ts) against measuring every candidate (the yardstick,
 * what --ratio did before), in the same invocation and the same process, alternating: wall time,
 * the energy-weighted error each reaches, and the file ratio. Never a test: times depend on the load.
 *
 *   --ratio X        (default 8)
 *   --quant Q        passed to --quant (default auto: rice or rANS blocks; fixed: fixed-size codes)
 *   --repeats N      runs of each, alternating (default 2; the figure is each side's fastest)
 *   --blocks N       decoder blocks of the generated LLaMA-7B-shaped rank-16 adapter (default 1; 0: none)
 *   --threads N      fit workers (default all cores)
 *   --json FILE      also write the numbers as JSON
 *
 * Inputs: the three compressible adapters of ../shared/real-loras (when present) and the generated one.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compress } from '../src/pipeline/compress.js';
import { setCallingThreadLane } from '../src/pipeline/worker-pool.js';
import { resolveStrategy } from '../src/cli/options.js';
import { LLAMA_7B, writeLlamaAdapter } from './synthetic-adapter.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const realRoot = path.resolve(here, '..', '..', '..', 'shared', 'real-loras');
const REAL = ['diffusers-sd15', 'diffusers-sd2-bf16', 'peft-distilbert-imdb'];

interface Options { ratio: number; quant: string; repeats: number; blocks: number; threads: number; json?: string }

function parseArgs(argv: string[]): Options {
  const o: Options = { ratio: 8, quant: 'auto', repeats: 2, blocks: 1, threads: availableParallelism() };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, v] = [argv[i], argv[i + 1]];
    if (v === undefined) throw new Error(`${flag} needs a value`);
    const n = Number(v);
    if (flag === '--ratio') o.ratio = n;
    else if (flag === '--quant') o.quant = v;
    else if (flag === '--repeats') o.repeats = n;
    else if (flag === '--blocks') o.blocks = n;
    else if (flag === '--threads') o.threads = n;
    else if (flag === '--json') o.json = v;
    else throw new Error(`unknown option ${flag}`);
  }
  return o;
}

interface Side { seconds: number[]; error: number; coefficientBytes: number; fileRatio: number }

async function once(input: string, output: string, o: Options, measure: 'near' | 'all'): Promise<{ seconds: number; error: number; coefficientBytes: number; fileRatio: number }> {
  const started = process.hrtime.bigint();
  const { report } = await compress({
    input, output, force: true, threads: o.threads, ratioMeasure: measure,
    settings: { strategy: resolveStrategy({ ratio: String(o.ratio), quant: o.quant }), seed: 0, fit: { refineIters: 30, alsRounds: 5 } },
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const t = report.totals;
  return { seconds, error: t.energyWeightedError, coefficientBytes: t.coefficientBytes, fileRatio: t.fileFp16Ratio };
}

async function main(): Promise<void> {
  setCallingThreadLane(true); // as the CLI runs
  const o = parseArgs(process.argv.slice(2));
  const dir = await mkdtemp(path.join(tmpdir(), 'nola-bench-ratio-'));
  try {
    const inputs: Array<[string, string]> = REAL.map((n): [string, string] => [n, path.join(realRoot, n)]).filter(([, p]) => existsSync(p));
    if (o.blocks > 0) inputs.push([`llama7b-shaped, ${o.blocks} block${o.blocks === 1 ? '' : 's'}, rank 16`, await writeLlamaAdapter(path.join(dir, 'llama'), { ...LLAMA_7B, blocks: o.blocks, rank: 16 })]);
    const load0 = loadavg()[0];
    console.log(`--ratio ${o.ratio} --quant ${o.quant}: near-optimal candidates measured (default) vs every candidate (yardstick); ${cpus().length} x ${cpus()[0]?.model ?? '?'}, ${o.threads} threads, Node ${process.version}`);
    const rows: Array<{ input: string; near: Side; all: Side }> = [];
    for (const [name, input] of inputs) {
      const sides: Record<'near' | 'all', Side | undefined> = { near: undefined, all: undefined };
      for (let r = 0; r < o.repeats; r++) {
        for (const m of (r % 2 === 0 ? ['near', 'all'] : ['all', 'near']) as Array<'near' | 'all'>) {
          const x = await once(input, path.join(dir, `${m}.nola`), o, m);
          const s = (sides[m] ??= { seconds: [], error: x.error, coefficientBytes: x.coefficientBytes, fileRatio: x.fileRatio });
          s.seconds.push(x.seconds);
        }
      }
      const near = sides.near!, all = sides.all!;
      const best = (s: Side): number => Math.min(...s.seconds);
      rows.push({ input: name, near, all });
      console.log(`  ${name}: near ${best(near).toFixed(2)} s, error ${near.error.toFixed(5)}, ${near.fileRatio.toFixed(3)}x | all ${best(all).toFixed(2)} s, error ${all.error.toFixed(5)}, ${all.fileRatio.toFixed(3)}x | ` +
        `${(best(all) / best(near)).toFixed(2)}x faster, error ${(near.error / all.error).toFixed(4)}x the yardstick's`);
    }
    console.log(`  load average ${load0.toFixed(1)} -> ${loadavg()[0].toFixed(1)}`);
    if (o.json !== undefined) await writeFile(o.json, JSON.stringify({ options: o, cpus: cpus().length, model: cpus()[0]?.model, rows }, null, 2));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
