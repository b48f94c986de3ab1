/**
 * The default path at LLM scale (issue #10): `npm run bench -- --case 7b[,70b,uniform64]`.
 *
 *   7b, 70b    a LLaMA-7B / LLaMA-70B-shaped BF16 PEFT adapter (bench/synthetic-adapter.ts, generated
 *              here, deterministic, never committed); default `nola compress` (--max-error 0.1) and
 *              `nola expand`, against the numpy SVD resize and the vectorized numpy decoder
 *              (bench/yardsticks.py, OPENBLAS_NUM_THREADS=1), with the worst layer error of the
 *              expanded adapter checked by the numpy reader and the file ratio.
 *   uniform64  64 layers (q, v of 32 blocks) at d = 4096, r = 16, k = l = 512 in the uniform basis
 *              (--preset paper --coeffs 512; the fit is cut to one round, it is not what is timed):
 *              `nola expand` against the chunked numpy expand (uint32 mix32 + one BLAS product).
 *
 * Wall times are of the child process (node start included); peak RSS is the child's maximum
 * resident set from /usr/bin/time -v (or, without it, the compress report's own peak).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { loadavg } from 'node:os';
import path from 'node:path';
import { LLAMA_70B, LLAMA_7B, writeLlamaAdapter, writeSyntheticAdapter } from './synthetic-adapter.js';

export interface LlmOptions {
  cases: string[];
  /** Decoder blocks (default: the model's own, 32 / 80). */
  blocks?: number;
  threads: number;
  numpy: boolean;
  /** Also compress with --threads 1 and compare the bytes. */
  checkThreads: boolean;
  /** nola's compiled CLI shim and the python yardsticks. */
  shim: string;
  yardsticks: string;
  tmp: string;
}

export interface LlmResult {
  case: string;
  layers: number;
  parameters: number;
  sourceBytes: number;
  nolaBytes?: number;
  fileRatio?: number;
  compressSeconds?: number;
  compressPeakRssMB?: number;
  expandSeconds: number;
  expandPeakRssMB: number;
  worstError?: number;
  layersOver?: number;
  threadsIdentical?: boolean;
  numpy?: { svdResizeSeconds?: number; svdMeanRank?: number; decodeSeconds?: number; readerSeconds?: number; uniformSeconds?: number; basisValues?: number };
  ratios?: { compressToSvdResize?: number; expandToDecoder?: number; readerToDecoder?: number; uniformSpeedup?: number };
  loadAverage: [number, number];
}

interface Timed { seconds: number; stdout: string; stderr: string; code: number; peakRssMB: number | null }

const TIME = '/usr/bin/time';
const hasTime = existsSync(TIME);

function runTimed(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Timed> {
  const [c, a] = hasTime ? [TIME, ['-v', cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const child = spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d; });
    child.stderr.on('data', (d: Buffer) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
      resolve({
        seconds: Number(process.hrtime.bigint() - t) / 1e9, stdout, stderr, code: code ?? -1,
        peakRssMB: m ? Math.round(Number(m[1]) / 1024) : null,
      });
    });
  });
}

async function nola(o: LlmOptions, args: string[]): Promise<Timed> {
  const r = await runTimed(process.execPath, [o.shim, ...args]);
  if (r.code !== 0) throw new Error(`nola ${args.join(' ')} failed (${r.code}): ${r.stderr.trim().split('\n').slice(-3).join(' ')}`);
  return r;
}

async function py(o: LlmOptions, args: string[]): Promise<{ seconds: number; out: any }> {
  const r = await runTimed('python3', [o.yardsticks, ...args], { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1' });
  if (r.code !== 0) throw new Error(`yardsticks.py ${args[0]} failed: ${r.stderr.trim().split('\n').pop()}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  return { seconds: r.seconds, out };
}

async function sameBytes(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([readFile(a), readFile(b)]);
  return x.equals(y);
}

const load = (): [number, number] => [Number(loadavg()[0].toFixed(2)), Number(loadavg()[1].toFixed(2))];

async function llamaCase(o: LlmOptions, name: '7b' | '70b'): Promise<LlmResult> {
  const shape = { ...(name === '7b' ? LLAMA_7B : LLAMA_70B), rank: 16 };
  if (o.blocks !== undefined) shape.blocks = o.blocks;
  const label = `llama-${name}-x${shape.blocks}-r16-bf16`;
  const dir = path.join(o.tmp, label);
  await writeLlamaAdapter(dir, shape);
  const source = path.join(dir, 'adapter_model.safetensors');
  const nolaFile = path.join(o.tmp, `${label}.nola.safetensors`);
  const expanded = path.join(o.tmp, `${label}.expanded`);
  await mkdir(expanded, { recursive: true });
  const perBlock = 16 * (4 * shape.hidden + 2 * shape.kv + 2 * shape.hidden) + 3 * 16 * (shape.hidden + shape.ffn);
  const res: LlmResult = {
    case: label, layers: 7 * shape.blocks, parameters: perBlock * shape.blocks, sourceBytes: (await stat(source)).size,
    expandSeconds: 0, expandPeakRssMB: 0, loadAverage: load(),
  };
  const report = path.join(o.tmp, `${label}.report.json`);
  const c = await nola(o, ['compress', dir, '-o', nolaFile, '--force', '--threads', String(o.threads), '--report', report]);
  res.compressSeconds = c.seconds;
  res.compressPeakRssMB = c.peakRssMB ?? Math.round(JSON.parse(await readFile(report, 'utf8')).totals.peakRssBytes / 1048576);
  res.nolaBytes = (await stat(nolaFile)).size;
  res.fileRatio = res.sourceBytes / res.nolaBytes;
  const e = await nola(o, ['expand', nolaFile, '-o', `${expanded}/`, '--force']);
  res.expandSeconds = e.seconds;
  res.expandPeakRssMB = e.peakRssMB ?? 0;
  if (o.checkThreads) {
    const one = path.join(o.tmp, `${label}.t1.nola.safetensors`);
    await nola(o, ['compress', dir, '-o', one, '--force', '--threads', '1']);
    res.threadsIdentical = await sameBytes(nolaFile, one);
    await rm(one, { force: true });
  }
  if (o.numpy) {
    const svd = await py(o, ['svd-resize', source, path.join(o.tmp, `${label}.svd.safetensors`), '0.1']);
    const dec = await py(o, ['decode', nolaFile, path.join(o.tmp, `${label}.numpy-decoded.safetensors`)]);
    // python/nola_reader, as a Python user loads the file (numpy arrays in memory), beside the same decoder.
    const reader = await runTimed('python3', ['-c', 'import sys; from nola_reader import load; load(sys.argv[1])', nolaFile],
      { ...process.env, PYTHONPATH: path.join(path.dirname(o.yardsticks), '..', 'python'), OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1' });
    if (reader.code !== 0) throw new Error(`nola_reader.load failed: ${reader.stderr.trim().split('\n').pop()}`);
    const chk = await py(o, ['check-expanded', dir, expanded]);
    res.worstError = chk.out.worst;
    res.layersOver = chk.out['over_0.1'];
    res.numpy = { svdResizeSeconds: svd.seconds, svdMeanRank: svd.out.mean_rank, decodeSeconds: dec.seconds, readerSeconds: reader.seconds };
    res.ratios = { compressToSvdResize: c.seconds / svd.seconds, expandToDecoder: e.seconds / dec.seconds, readerToDecoder: reader.seconds / dec.seconds };
  }
  await rm(dir, { recursive: true, force: true });
  await rm(expanded, { recursive: true, force: true });
  return res;
}

async function uniformCase(o: LlmOptions): Promise<LlmResult> {
  const blocks = o.blocks ?? 32;
  const label = `uniform-qv-x${blocks}-d4096-r16-k512`;
  const dir = await writeSyntheticAdapter(path.join(o.tmp, label), { layers: blocks, d: 4096, rank: 16, modules: ['q_proj', 'v_proj'] });
  const nolaFile = path.join(o.tmp, `${label}.nola.safetensors`);
  await nola(o, ['compress', dir, '-o', nolaFile, '--force', '--threads', String(o.threads), '--preset', 'paper', '--coeffs', '512', '--als-rounds', '1', '--iters', '1']);
  const res: LlmResult = {
    case: label, layers: 2 * blocks, parameters: 2 * blocks * 16 * 8192, sourceBytes: (await stat(path.join(dir, 'adapter_model.safetensors'))).size,
    nolaBytes: (await stat(nolaFile)).size, expandSeconds: 0, expandPeakRssMB: 0, loadAverage: load(),
  };
  const expanded = path.join(o.tmp, `${label}.expanded.safetensors`);
  const e = await nola(o, ['expand', nolaFile, '-o', expanded, '--force']);
  res.expandSeconds = e.seconds;
  res.expandPeakRssMB = e.peakRssMB ?? 0;
  if (o.numpy) {
    const u = await py(o, ['uniform-expand', nolaFile, path.join(o.tmp, `${label}.numpy.safetensors`)]);
    res.numpy = { uniformSeconds: u.seconds, basisValues: u.out.basis_values };
    res.ratios = { uniformSpeedup: u.seconds / e.seconds };
  }
  await rm(dir, { recursive: true, force: true });
  return res;
}

const f = (x: number | undefined, d = 2): string => (x === undefined ? '-' : x.toFixed(d));

export function formatLlm(r: LlmResult): string {
  const np = r.numpy, q = r.ratios;
  if (r.case.startsWith('uniform')) {
    const gv = np?.basisValues;
    return `${r.case}: ${r.layers} layers (load ${r.loadAverage[0]}) | expand ${f(r.expandSeconds)} s, peak ${r.expandPeakRssMB} MB` +
      (gv ? `, ${f(gv / r.expandSeconds / 1e9)} G basis values/s` : '') +
      (np?.uniformSeconds !== undefined ? ` | numpy chunked expand ${f(np.uniformSeconds)} s (${f(gv! / np.uniformSeconds / 1e9)} G/s) | nola ${f(q?.uniformSpeedup)}x numpy` : '');
  }
  return `${r.case}: ${r.layers} layers, ${(r.parameters / 1e6).toFixed(1)} M parameters, ${(r.sourceBytes / 1e6).toFixed(1)} MB (load ${r.loadAverage[0]})` +
    ` | compress ${f(r.compressSeconds)} s, peak ${r.compressPeakRssMB} MB | expand ${f(r.expandSeconds)} s, peak ${r.expandPeakRssMB} MB` +
    ` | file ${(r.nolaBytes! / 1e6).toFixed(2)} MB, ratio ${f(r.fileRatio, 3)}` +
    (r.worstError !== undefined ? ` | worst layer error (numpy reader) ${r.worstError.toFixed(5)}, ${r.layersOver} over 0.1` : '') +
    (r.threadsIdentical !== undefined ? ` | --threads 1 output identical: ${r.threadsIdentical}` : '') +
    (np ? ` | numpy SVD resize ${f(np.svdResizeSeconds)} s (mean rank ${f(np.svdMeanRank, 1)}), numpy decoder ${f(np.decodeSeconds)} s` +
      ` | compress ${f(q?.compressToSvdResize, 1)}x the SVD resize, expand ${f(q?.expandToDecoder)}x the numpy decoder` +
      (np.readerSeconds !== undefined ? ` | python/nola_reader load ${f(np.readerSeconds)} s, ${f(q?.readerToDecoder)}x the numpy decoder` : '') : '');
}

export async function runLlmCases(o: LlmOptions, print: (line: string) => void): Promise<LlmResult[]> {
  const out: LlmResult[] = [];
  for (const c of o.cases) {
    let r: LlmResult;
    if (c === '7b' || c === '70b') r = await llamaCase(o, c);
    else if (c === 'uniform64') r = await uniformCase(o);
    else throw new Error(`unknown --case ${c} (7b, 70b, uniform64)`);
    out.push(r);
    print(formatLlm(r));
  }
  return out;
}
