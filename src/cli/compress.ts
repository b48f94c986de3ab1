import path from 'node:path';
import { stat } from 'node:fs/promises';
import type { Ctx } from './main.js';
import { resolveStrategy, parseFamily, parseInteger, parseThreads } from './options.js';
import { createProgress } from './progress.js';
import { compress, defaultNolaPath } from '../pipeline/compress.js';
import { defaultThreads } from '../pipeline/parallel.js';
import { parseDevice, type Device } from '../backends/index.js';
import type { CompressSettings } from '../pipeline/settings.js';
import type { FormatVersion } from '../core/constants.js';
import type { Family } from '../formats/layer.js';
import { describeRatios, formatBytes, renderCompressText, type CompressReport } from '../report/report.js';
import { describeQuant } from '../core/quantize.js';
import { writeTextAtomic, assertWritable, assertDistinctOutputs, OutputBatch } from '../io/index.js';
import { resolveLoraPath } from '../pipeline/source.js';
import { sweep } from '../pipeline/sweep.js';
import { renderSweepSvg, renderSweepText } from '../report/sweep-render.js';
import { UsageError } from '../errors.js';
import { onceLogger } from '../pipeline/once-logger.js';

/** `-o DIR/` or an existing folder: the default file name inside it. A folder `-o DIR/` creates belongs to `batch`: its abort removes it. */
export async function resolveCompressOutput(input: string, output: string | undefined, batch: OutputBatch): Promise<string | undefined> {
  if (output === undefined) return undefined;
  const named = output.endsWith('/') || output.endsWith(path.sep);
  if (named) await batch.createFolder(output);
  const isDir = named || await stat(output).then((s) => s.isDirectory(), () => false);
  return isDir ? path.join(output, path.basename(defaultNolaPath(input))) : output;
}

export async function runCompress(ctx: Ctx, input: string, o: Record<string, string | boolean | undefined>): Promise<void> {
  if (o.sweep === true) return runSweep(ctx, input, o);
  if (o.svg !== undefined) throw new UsageError('--svg draws the --sweep trade-off; add --sweep');
  const { settings, formatVersion, threads, device, family } = parseCompressFlags(o);
  const force = o.force === true;
  if (typeof o.report === 'string') await assertWritable(o.report, force);
  const log = onceLogger(ctx.log);
  const started = Date.now();
  const progress = createProgress('compress', ctx.progress);
  // The NOLA file and the report are committed together: both or neither (and a folder -o DIR/ made for them).
  const batch = new OutputBatch(force);
  const reportPath = typeof o.report === 'string' ? o.report : undefined;
  let report: Awaited<ReturnType<typeof compress>>['report'];
  try {
    const output = await resolveCompressOutput(input, o.output as string | undefined, batch);
    ({ report } = await compress({
      input,
      output,
      force,
      family,
      settings,
      onProgress: (d, t, name) => progress.update(d, t, name),
      log,
      threads,
      device,
      formatVersion,
      batch,
      otherOutputs: reportPath === undefined ? [] : [reportPath],
    }).finally(() => progress.done()));
    if (reportPath !== undefined) await writeTextAtomic(reportPath, `${JSON.stringify(report, null, 2)}\n`, { force, batch });
    await batch.commit();
  } catch (e) {
    await batch.abort();
    throw e;
  }
  logReport(log, report, (Date.now() - started) / 1000, threads);
  ctx.out(o.json === true ? JSON.stringify(report, null, 2) : renderCompressText(report));
}

/** The flags that decide how files are compressed (one file or a library: the same parse). */
export function parseCompressFlags(o: Record<string, string | boolean | undefined>): {
  settings: CompressSettings; formatVersion: FormatVersion; threads: number; device: Device; family: Family | undefined;
} {
  const strategy = resolveStrategy({
    preset: o.preset as string | undefined,
    maxError: o.maxError as string | undefined,
    ratio: o.ratio as string | undefined,
    rank: o.rank as string | undefined,
    coeffs: o.coeffs as string | undefined,
    coeffsA: o.coeffsA as string | undefined,
    coeffsB: o.coeffsB as string | undefined,
    basis: o.basis as string | undefined,
    quant: o.quant as string | undefined,
  });
  // The paper's construction keeps format version 1, the layout readers of nola 0.1 read.
  const formatVersion = o.formatVersion === undefined ? (o.preset === 'paper' ? 1 : 3) : parseInteger('--format-version', String(o.formatVersion), 1, 3) as FormatVersion;
  const seed = parseInteger('--seed', String(o.seed), 0, 0xffffffff);
  const refineIters = parseInteger('--iters', String(o.iters), 0, 100000);
  const alsRounds = parseInteger('--als-rounds', String(o.alsRounds), 0, 100000);
  const threads = parseThreads(o) ?? defaultThreads();
  const device = parseDevice(o.device === undefined ? 'cpu' : String(o.device));
  const family = parseFamily('--format', o.format as string | undefined);
  return { settings: { strategy, seed, fit: { refineIters, alsRounds } }, formatVersion, threads, device, family };
}

/** What a person asked for with -v / --log-level info|debug, and every warning once. */
function logReport(log: ReturnType<typeof onceLogger>, r: CompressReport, seconds: number, threads: number): void {
  const ranks = [...new Set(r.layers.map((l) => l.sourceRank))].sort((a, b) => a - b);
  log.info(`detected ${r.family}: ${r.totals.layers} layers, source ranks ${ranks.join(',')}, ${formatBytes(r.totals.passthroughBytes)} of other tensors kept verbatim`);
  for (const l of r.layers) {
    log.debug(`${l.name}: ${l.dOut}x${l.dIn} rank ${l.rank}/${l.sourceRank}, k ${l.k}, l ${l.l}, ${describeQuant(l.quantA)}/${describeQuant(l.quantB)}, ` +
      `${l.bytesAfter} B, error ${l.error.toFixed(4)} (fit ${l.fitError.toFixed(4)}, rank alone ${(l.rankError ?? 0).toFixed(4)})`);
  }
  log.info(describeRatios(r));
  log.info(`compressed in ${seconds.toFixed(1)} s with ${threads} thread${threads === 1 ? '' : 's'}, peak memory ${formatBytes(r.totals.peakRssBytes)}`);
  for (const w of r.warnings) log.warn(w);
}

async function runSweep(ctx: Ctx, input: string, o: Record<string, string | boolean | undefined>): Promise<void> {
  for (const flag of ['output', 'report', 'maxError', 'ratio', 'preset', 'coeffs', 'coeffsA', 'coeffsB', 'quant', 'rank', 'basis', 'formatVersion'] as const) {
    if (o[flag] !== undefined) throw new UsageError(`--sweep tries its own settings and writes no NOLA file; drop --${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
  }
  const svg = o.svg as string | undefined;
  if (svg !== undefined) {
    const lora = await resolveLoraPath(input);
    await assertDistinctOutputs([svg], [input, lora, path.join(path.dirname(lora), 'adapter_config.json')]);
    await assertWritable(svg, o.force === true);
  }
  const started = Date.now();
  const progress = createProgress('sweep', ctx.progress);
  const result = await sweep({
    input,
    family: parseFamily('--format', o.format as string | undefined),
    seed: parseInteger('--seed', String(o.seed), 0, 0xffffffff),
    includePaper: o.paper !== false,
    threads: parseThreads(o) ?? defaultThreads(),
    onProgress: (d, t, name) => progress.update(d, t, name),
  }).finally(() => progress.done());
  ctx.log.info(`sweep of ${result.points.length} settings in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (svg !== undefined) await writeTextAtomic(svg, renderSweepSvg(result), { force: o.force === true });
  ctx.out(o.json === true ? JSON.stringify(result, null, 2) : renderSweepText(result) + (svg ? `\n  picture: ${svg}` : ''));
}
