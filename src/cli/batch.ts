/**
 * `nola compress` / `nola expand` over many inputs: which invocations are runs over a library, the
 * flags only such runs have, the --summary file, and the totals table on stdout. With one input and
 * none of these flags the single-file commands run exactly as they always did.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, open, readFile, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Ctx } from './main.js';
import { parseCompressFlags } from './compress.js';
import { parseFamily, parseThreads } from './options.js';
import { createBatchProgress } from './batch-progress.js';
import {
  assertDistinctRelatives, discoverInputs, hasGlobMagic, parseList, parseShard, shardOf, type BatchCommand,
} from '../pipeline/batch-inputs.js';
import { runBatch } from '../pipeline/batch.js';
import { collectGarbageIfGrown } from './collect-garbage.js';
import { batchTotals, type BatchRecord, type BatchTotals } from '../pipeline/batch-summary.js';
import { resolveLoraPath } from '../pipeline/source.js';
import { resolveNolaPath } from '../pipeline/expand.js';
import { formatBytes, formatSizeRatio } from '../report/report.js';
import { IoError, PartialRunError, UsageError } from '../errors.js';

type Flags = Record<string, string | boolean | undefined>;

const BATCH_FLAGS = ['outDir', 'beside', 'fromList', 'root', 'shard', 'shards', 'summary'] as const;

/**
 * A run over many inputs: several arguments, a flag only such runs have, a pattern that is not a
 * path, or one folder that is not a single input's folder (compress: a LoRA's; expand: one holding
 * exactly one NOLA file).
 */
export async function wantsBatch(command: BatchCommand, inputs: readonly string[], o: Flags): Promise<boolean> {
  if (inputs.length !== 1 || BATCH_FLAGS.some((f) => o[f] !== undefined)) return true;
  const input = inputs[0];
  if (!existsSync(input)) return hasGlobMagic(input);
  if (!statSync(input).isDirectory()) return false;
  // A folder that the single-file rules resolve (a LoRA's folder; a folder holding one NOLA file) is one
  // input; any other folder is a library.
  return (command === 'expand' ? resolveNolaPath(input) : resolveLoraPath(input)).then(() => false, () => true);
}

export async function runBatchCommand(ctx: Ctx, command: BatchCommand, inputs: string[], o: Flags): Promise<void> {
  if (inputs.length === 0 && o.fromList === undefined) {
    throw new UsageError(`missing input: give a ${command === 'compress' ? 'LoRA file' : 'NOLA file'} (or several, a folder, a pattern, or --from-list FILE)`);
  }
  for (const [flag, why] of [
    ['output', '-o names one output; with several inputs give --out-dir DIR'],
    ['report', '--report is the report of one file; with several inputs give --summary FILE (one line per file)'],
    ['sweep', '--sweep studies one file; give it one LoRA'],
    ['svg', '--svg draws the --sweep of one file'],
  ] as const) {
    if (o[flag] !== undefined) throw new UsageError(why);
  }
  if (o.outDir !== undefined && o.beside === true) throw new UsageError('give either --out-dir DIR or --beside, not both');
  if (o.outDir === undefined && o.beside !== true) {
    throw new UsageError(`${inputs.length === 1 && o.fromList === undefined ? `${inputs[0]} holds several inputs` : 'several inputs'}: give --out-dir DIR for the outputs (mirroring the inputs' folders), or --beside to write each beside its input`);
  }
  const shard = o.shard === undefined ? undefined : parseShard(String(o.shard), o.shards as string | undefined, process.env);
  if (o.shard === undefined && o.shards !== undefined) throw new UsageError('--shards N goes with --shard auto');
  // Every per-file setting is checked before the first file is touched.
  const compressOpts = command === 'compress' ? parseCompressFlags(o) : undefined;
  const to = command === 'expand' ? parseFamily('--to', o.to as string | undefined) : undefined;
  const expandThreads = command === 'expand' ? parseThreads(o) : undefined;
  const outDir = o.outDir as string | undefined;
  if (outDir !== undefined && await stat(outDir).then((s) => !s.isDirectory(), () => false)) throw new UsageError(`--out-dir ${outDir} is a file`);
  const summaryPath = o.summary as string | undefined;

  const args = [...inputs];
  if (o.fromList !== undefined) args.push(...parseList(await readList(String(o.fromList))));
  if (args.length === 0) throw new UsageError(`nothing to ${command}: give files, folders or --from-list FILE`);
  const root = o.root as string | undefined;
  if (root !== undefined && !(await stat(root).then((s) => s.isDirectory(), () => false))) throw new UsageError(`--root ${root} is not a folder`);
  let items = await discoverInputs(args, { command, root, exclude: outDir === undefined ? [] : [outDir] });
  if (items.length === 0) {
    // One folder holding nothing to do: the single-file command's own reason says what is there instead.
    if (inputs.length === 1 && command === 'compress') await resolveLoraPath(inputs[0]);
    throw new UsageError(`no ${command === 'compress' ? 'LoRA (.safetensors)' : 'NOLA (.nola.safetensors)'} files in ${args.join(', ')}`);
  }
  if (outDir !== undefined) assertDistinctRelatives(items);
  const all = items.length;
  if (shard !== undefined) {
    items = items.filter((it) => shardOf(it.rel, shard.count) === shard.index);
    ctx.log.info(`shard ${shard.index}/${shard.count}: ${items.length} of ${all} inputs`);
  }

  const sizes = await Promise.all(items.map((it) => stat(it.file).then((s) => s.size, () => 0)));
  const progress = createBatchProgress(command, items.length, sizes.reduce((a, b) => a + b, 0));
  const summary = summaryPath === undefined ? undefined : await openSummary(summaryPath);
  const t0 = Date.now();
  let records: BatchRecord[];
  try {
    records = await runBatch({
      command, items, outDir, force: o.force === true, compress: compressOpts, to, expandThreads, log: ctx.log,
      onStart: (it, i) => progress.start(it.input, sizes[i]),
      onLayer: (d, t) => progress.layer(d, t),
      onFinish: async (r, _it, i) => {
        progress.finish(r, sizes[i]);
        // One write per line, appended as each file finishes: a killed run keeps the lines of the files it finished.
        if (summary !== undefined) await summary.write(`${JSON.stringify(r)}\n`);
        // Finished files' garbage goes now, not when it has piled up (the fit workers are held the same way, batch.ts).
        collectGarbageIfGrown();
      },
    });
  } finally {
    progress.done();
    await summary?.close();
  }
  const totals = batchTotals(records);
  const seconds = (Date.now() - t0) / 1000;
  if (o.json === true) {
    // peakRssBytes: the largest resident set of the whole run (all threads), as the single-file report gives it.
    const peakRssBytes = process.resourceUsage().maxRSS * 1024;
    ctx.out(JSON.stringify({ tool: 'nola', command, ...(shard ? { shard } : {}), seconds, peakRssBytes, totals, files: records }, null, 2));
  } else {
    ctx.out(renderBatchTotals(command, totals, { seconds, ...(shard ? { shard, of: all } : {}) }));
  }
  if (totals.failed > 0) throw new PartialRunError(`${totals.failed} of ${totals.files} files failed (each is named above with its reason)`);
}

async function readList(file: string): Promise<string> {
  try {
    return file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new IoError(`--from-list ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The --summary file, opened for appending (its folder made, as --out-dir's is). */
async function openSummary(file: string): Promise<FileHandle> {
  try {
    await mkdir(path.dirname(path.resolve(file)), { recursive: true });
    return await open(file, 'a');
  } catch (e) {
    throw new IoError(`cannot write --summary ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** The short table a run (or `nola summary`) ends with. */
export function renderBatchTotals(command: string, t: BatchTotals, run: { seconds?: number; shard?: { index: number; count: number }; of?: number } = {}): string {
  const head = `nola ${command}: ${t.files} file${t.files === 1 ? '' : 's'}: ${t.done} done, ${t.skipped} skipped, ${t.failed} failed`;
  const extra = [
    run.shard ? `shard ${run.shard.index}/${run.shard.count} of ${run.of} inputs` : '',
    run.seconds !== undefined ? `${run.seconds.toFixed(1)} s` : '',
  ].filter((s) => s !== '');
  const lines = [extra.length > 0 ? `${head} (${extra.join(', ')})` : head];
  if (t.done + t.skipped > 0) {
    const change = t.bytesAfter <= t.bytesBefore
      ? `${formatBytes(t.bytesBefore - t.bytesAfter)} saved`
      : `${formatBytes(t.bytesAfter - t.bytesBefore)} more`;
    const ratio = t.bytesAfter > 0 && t.bytesBefore > 0 ? `, ${formatSizeRatio(t.bytesBefore, t.bytesAfter)}` : '';
    lines.push(`  bytes:   ${formatBytes(t.bytesBefore)} -> ${formatBytes(t.bytesAfter)} (${change}${ratio})`);
  }
  if (t.worst !== null) lines.push(`  worst error: ${t.worst.error.toPrecision(4)} (${t.worst.input})`);
  if (t.slowest !== null) lines.push(`  slowest: ${t.slowest.seconds.toFixed(1)} s (${t.slowest.input})`);
  if (t.warned > 0) lines.push(`  warnings: ${t.warned} file${t.warned === 1 ? '' : 's'} (each warning is in the log above and in the file's summary record)`);
  if (t.failures.length > 0) {
    lines.push('  failed:');
    for (const f of t.failures) lines.push(`    ${f.input} (exit ${f.exitCode}): ${f.reason}`);
  }
  return lines.join('\n');
}
