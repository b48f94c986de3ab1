/**
 * `npm run bench [-- options]`: wall time, throughput, peak memory and error of nola against a
 * straightforward numpy implementation of the same fit (scripts/reference/nola_ref.py: dense
 * least squares through the k×k normal equations, 5 ALS rounds, the same bases) run in the same
 * invocation. Never a test: numbers depend on the machine and its load.
 *
 *   --full                 every case below at its full size (tens of minutes on 2 cores)
 *   --layers 1,2           synthetic decoder blocks per case (default quick: 1; full: 1,2,4)
 *   --modules q,k,v,o      synthetic modules per block (quick: q,v)
 *   --d 4096 --rank 16 --coeffs 512
 *   --threads N            nola worker threads (default: all cores)
 *   --no-numpy --no-synthetic --no-real --no-memory --no-kernels
 *   --numpy-real all       numpy also on the two Stable Diffusion files (88 layers each; default only
 *                          with --full: at k = 1024 the numpy fit takes tens of minutes on 2 cores)
 *   --json FILE            also write every number as JSON
 *
 * Issue #10's LLM-scale cases (bench/llm.ts) run instead of the above with --case:
 *   --case 7b,70b,uniform64  LLaMA-7B / 70B-shaped BF16 PEFT adapters through the default compress
 *                          and expand against numpy yardsticks; the 64-layer uniform-basis expand
 *   --blocks N             decoder blocks of the 7b/70b adapters (default 32 / 80; uniform64: 32)
 *   --check-threads        also compress with --threads 1 and compare the bytes
 *   --cli DIR              time the nola of another compiled tree (DIR holds src/cli/main.js)
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeSyntheticAdapter } from './synthetic-adapter.js';
import { measureKernels, measureRice, type KernelRate, type RiceRate } from './kernels.js';
import { runLlmCases } from './llm.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The compiled tree (dist/ or any --outDir) and the checkout holding package.json above it. */
const distRoot = path.resolve(here, '..');
const repoRoot = ((): string => {
  for (let d = distRoot; d !== path.dirname(d); d = path.dirname(d)) if (existsSync(path.join(d, 'package.json'))) return d;
  return path.resolve(distRoot, '..');
})();
const realRoot = path.resolve(repoRoot, '../shared/real-loras');
const refScript = path.join(repoRoot, 'scripts/reference/nola_ref.py');

interface Options {
  full: boolean;
  layers: number[];
  modules: string[];
  d: number;
  rank: number;
  coeffs: number;
  threads: number;
  numpy: boolean;
  synthetic: boolean;
  real: boolean;
  numpyAllReal: boolean;
  memory: boolean;
  kernels: boolean;
  json?: string;
  cases: string[];
  blocks?: number;
  checkThreads: boolean;
  cli?: string;
}

function parseArgs(argv: string[]): Options {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const next = argv[i + 1];
    if (next !== undefined && !next.startsWith('--')) { flags.set(a.slice(2), next); i++; } else flags.set(a.slice(2), true);
  }
  const full = flags.has('full');
  const str = (k: string, d: string): string => (typeof flags.get(k) === 'string' ? (flags.get(k) as string) : d);
  const short = (m: string): string => (m.endsWith('_proj') ? m : `${m}_proj`);
  return {
    full,
    layers: str('layers', full ? '1,2,4' : '1').split(',').map(Number),
    modules: str('modules', full ? 'q,k,v,o' : 'q,v').split(',').map(short),
    d: Number(str('d', '4096')),
    rank: Number(str('rank', '16')),
    coeffs: Number(str('coeffs', '512')),
    threads: Number(str('threads', String(availableParallelism()))),
    numpy: !flags.has('no-numpy'),
    synthetic: !flags.has('no-synthetic'),
    real: !flags.has('no-real'),
    numpyAllReal: full || flags.get('numpy-real') === 'all',
    memory: !flags.has('no-memory'),
    kernels: !flags.has('no-kernels'),
    ...(typeof flags.get('json') === 'string' ? { json: flags.get('json') as string } : {}),
    cases: typeof flags.get('case') === 'string' ? (flags.get('case') as string).split(',') : [],
    ...(typeof flags.get('blocks') === 'string' ? { blocks: Number(flags.get('blocks')) } : {}),
    checkThreads: flags.has('check-threads'),
    ...(typeof flags.get('cli') === 'string' ? { cli: flags.get('cli') as string } : {}),
  };
}

interface Run { seconds: number; stdout: string; stderr: string; code: number }

function run(cmd: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d; });
    child.stderr.on('data', (d: Buffer) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ seconds: Number(process.hrtime.bigint() - t) / 1e9, stdout, stderr, code: code ?? -1 }));
  });
}

async function nola(shim: string, args: string[]): Promise<Run> {
  const r = await run(process.execPath, [shim, ...args]);
  if (r.code !== 0) throw new Error(`nola ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r;
}

async function python(args: string[]): Promise<{ seconds: number; out: any } | null> {
  const r = await run('python3', [refScript, ...args]);
  if (r.code !== 0) throw new Error(`nola_ref.py ${args[0]} failed: ${r.stderr.trim().split('\n').pop()}`);
  return { seconds: r.seconds, out: JSON.parse(r.stdout) };
}

async function numpyAvailable(): Promise<string | null> {
  try {
    const r = await run('python3', ['-c', 'import numpy; print(numpy.__version__)']);
    return r.code === 0 ? r.stdout.trim() : null;
  } catch {
    return null;
  }
}

interface CaseResult {
  name: string;
  layers: number;
  compressSeconds: number;
  compressPeakRssMB: number;
  expandSeconds: number;
  error: number;
  maxError: number;
  numpy?: { alsSeconds: number; basisSeconds: number; expandSeconds: number; error: number; compressSpeedup: number; expandSpeedup: number; errorNoWorse: boolean };
  note?: string;
}

const mb = (b: number): number => Math.round(b / 1048576);

/** Energy-weighted error of per-layer errors. */
function weighted(rows: Array<{ err: number; energy: number }>): number {
  const e = rows.reduce((a, r) => a + r.energy, 0);
  return e > 0 ? Math.sqrt(rows.reduce((a, r) => a + r.energy * r.err * r.err, 0) / e) : 0;
}

async function benchCase(
  o: Options, shim: string, tmp: string, name: string, input: string, sourceFile: string, compressArgs: string[], withNumpy: boolean,
): Promise<CaseResult> {
  const nolaFile = path.join(tmp, `${name}.nola.safetensors`);
  const reportFile = path.join(tmp, `${name}.report.json`);
  const c = await nola(shim, ['compress', input, '-o', nolaFile, '--force', '--report', reportFile, '--threads', String(o.threads), ...compressArgs]);
  const report = JSON.parse(await readFile(reportFile, 'utf8'));
  const e = await nola(shim, ['expand', nolaFile, '-o', path.join(tmp, `${name}.expanded.safetensors`), '--force']);
  const res: CaseResult = {
    name, layers: report.totals.layers, compressSeconds: c.seconds, compressPeakRssMB: mb(report.totals.peakRssBytes),
    expandSeconds: e.seconds, error: report.totals.energyWeightedError, maxError: report.totals.maxError,
  };
  if (withNumpy) {
    const als = await python(['als-gram', nolaFile, sourceFile, '5']);
    const ex = await python(['expand', nolaFile, path.join(tmp, `${name}.numpy-expanded.safetensors`)]);
    if (als !== null && ex !== null) {
      const rows = als.out.layers as Array<{ als: number; energy: number }>;
      const npErr = weighted(rows.map((r) => ({ err: r.als, energy: r.energy })));
      const ours = report.layers as Array<{ error: number }>;
      res.numpy = {
        alsSeconds: als.seconds, basisSeconds: als.out.basis_seconds, expandSeconds: ex.seconds, error: npErr,
        compressSpeedup: als.seconds / c.seconds, expandSpeedup: ex.seconds / e.seconds,
        errorNoWorse: ours.every((l, i) => l.error <= rows[i].als + 1e-9),
      };
    }
  }
  return res;
}

function printCase(r: CaseResult): void {
  const np = r.numpy;
  process.stdout.write(
    `${r.name}: ${r.layers} layers (load ${loadavg()[0].toFixed(1)}) | compress ${r.compressSeconds.toFixed(1)} s, peak ${r.compressPeakRssMB} MB, error ${r.error.toFixed(5)} (max ${r.maxError.toFixed(5)})` +
      ` | expand ${r.expandSeconds.toFixed(2)} s` +
      (np ? ` | numpy: ALS ${np.alsSeconds.toFixed(1)} s (bases ${np.basisSeconds.toFixed(1)} s), error ${np.error.toFixed(5)}, expand ${np.expandSeconds.toFixed(2)} s` +
        ` | nola ${np.compressSpeedup.toFixed(1)}x faster compress, ${np.expandSpeedup.toFixed(1)}x faster expand, error no worse on every layer: ${np.errorNoWorse}` : '') +
      (r.note ? ` | ${r.note}` : '') + '\n',
  );
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const numpyVersion = o.numpy ? await numpyAvailable() : null;
  const machine = { nproc: availableParallelism(), cpu: cpus()[0]?.model ?? 'unknown', node: process.version, numpy: numpyVersion, loadAverageAtStart: loadavg()[0] };
  process.stdout.write(
    `machine: ${machine.nproc} cores, ${machine.cpu}, node ${machine.node}, numpy ${numpyVersion ?? 'absent'}; nola threads ${o.threads}; ` +
      `load average ${machine.loadAverageAtStart.toFixed(1)} (other processes slow every number below)\n`,
  );
  if (o.numpy && numpyVersion === null) process.stdout.write('note: python3 with numpy not found; the numpy reference is skipped\n');
  const withNumpy = numpyVersion !== null;
  const tmp = await mkdtemp(path.join(tmpdir(), 'nola-bench-'));
  const shim = path.join(tmp, 'nola.mjs');
  // --cli DIR: time another compiled tree (e.g. a build of main kept aside for a before/after table).
  const cliRoot = typeof o.cli === 'string' ? path.resolve(o.cli) : distRoot;
  await writeFile(shim, `import(${JSON.stringify(pathToFileURL(path.join(cliRoot, 'src/cli/main.js')).href)}).then((m) => m.main(process.argv));\n`);
  const results: { machine: typeof machine; kernels?: KernelRate[]; rice?: RiceRate[]; cases: CaseResult[]; llm?: unknown[] } = { machine, cases: [] };
  try {
    if (o.cases.length > 0) {
      results.llm = await runLlmCases({
        cases: o.cases, threads: o.threads, numpy: withNumpy, checkThreads: o.checkThreads, shim, tmp,
        yardsticks: path.join(repoRoot, 'bench/yardsticks.py'), ...(o.blocks !== undefined ? { blocks: o.blocks } : {}),
      }, (line) => process.stdout.write(`${line}\n`));
      return;
    }
    if (o.kernels) {
      results.kernels = measureKernels([[o.coeffs, o.rank * o.d], [1024, 6144]]);
      for (const k of results.kernels) {
        process.stdout.write(`kernel ${k.kernels} k=${k.k} n=${k.n}: synthesis ${(k.synthPerSecond / 1e9).toFixed(2)} G basis values/s/core, analysis ${(k.analyzePerSecond / 1e9).toFixed(2)} G/s/core (float32 analysis ${(k.analyzeF32PerSecond / 1e9).toFixed(2)})\n`);
      }
      results.rice = measureRice();
      for (const r of results.rice) {
        process.stdout.write(`rice n=${r.n} step=${r.step}σ: ${r.bitsPerValue.toFixed(2)} bits/value, encode ${(r.encodePerSecond / 1e6).toFixed(1)} M values/s, decode ${(r.decodePerSecond / 1e6).toFixed(1)} M values/s (one core)\n`);
      }
    }
    for (const blocks of o.synthetic ? o.layers : []) {
      const name = `llama-${o.modules.map((m) => m[0]).join('')}-x${blocks}-d${o.d}-r${o.rank}-k${o.coeffs}`;
      const dir = await writeSyntheticAdapter(path.join(tmp, name), { layers: blocks, d: o.d, rank: o.rank, modules: o.modules });
      const r = await benchCase(o, shim, tmp, name, dir, path.join(dir, 'adapter_model.safetensors'), ['--coeffs', String(o.coeffs)], withNumpy);
      results.cases.push(r);
      printCase(r);
    }
    if (o.real) {
      for (const folder of ['peft-distilbert-imdb', 'diffusers-sd15', 'diffusers-sd2-bf16']) {
        const dir = path.join(realRoot, folder);
        const file = folder.startsWith('peft') ? path.join(dir, 'adapter_model.safetensors') : path.join(dir, 'pytorch_lora_weights.safetensors');
        const numpyHere = withNumpy && (o.numpyAllReal || folder.startsWith('peft'));
        const paper = await benchCase(o, shim, tmp, `${folder}-paper`, dir, file, ['--preset', 'paper'], numpyHere);
        if (withNumpy && !numpyHere) paper.note = 'numpy reference skipped (--numpy-real all to include it)';
        results.cases.push(paper);
        printCase(paper);
        const budget = await benchCase(o, shim, tmp, `${folder}-default`, dir, file, [], false);
        budget.note = 'default budget mode (orthogonal basis, --max-error 0.1): no numpy counterpart';
        results.cases.push(budget);
        printCase(budget);
      }
    }
    if (o.memory) {
      // The memory case: 32 blocks of q,v at d = 4096, r = 16, 512 coefficients per factor.
      // Quick runs cut the iterations (the working set does not depend on them).
      const name = 'memory-llama-qv-x32-d4096-r16-k512';
      const dir = await writeSyntheticAdapter(path.join(tmp, name), { layers: 32, d: 4096, rank: 16, modules: ['q_proj', 'v_proj'] });
      const extra = o.full ? [] : ['--als-rounds', '1', '--iters', '1'];
      const r = await benchCase(o, shim, tmp, name, dir, '', ['--coeffs', '512', ...extra], false);
      r.note = `peak RSS ${r.compressPeakRssMB} MB (target < 600 MB)${o.full ? '' : '; quick run: --als-rounds 1 --iters 1'}`;
      results.cases.push(r);
      printCase(r);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
    if (o.json !== undefined) await writeFile(o.json, `${JSON.stringify(results, null, 2)}\n`);
  }
}

await main();
