/**
 * compress / expand over many inputs in one process: each file through the same per-file pipeline
 * (compress(), expand()) a single-file run uses, one file after another. Files go one at a time
 * because a file's layers are already spread over --threads workers, and one file at a time keeps
 * memory at one file's working set (a few layers and the file's coefficient blocks) however many
 * files there are. A file that fails is recorded with its reason and exit code and the run goes on;
 * an output already made from the same source with the same settings is skipped.
 */
import path from 'node:path';
import { mkdir, rmdir, stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { compress, defaultNolaPath } from './compress.js';
import { expand, resolveExpandOutput } from './expand.js';
import { readSiblingConfig } from './source.js';
import { openNola } from './nola-source.js';
import { settingsFingerprint, canonicalJson } from './batch-fingerprint.js';
import type { CompressSettings } from './settings.js';
import type { FormatVersion } from '../core/constants.js';
import { createFitPool, jobsHoldThread, type FitPool } from './parallel.js';
import { LIBRARY_OLD_GENERATION_MB } from './worker-pool.js';
import type { BatchCommand, BatchItem } from './batch-inputs.js';
import type { BatchRecord } from './batch-summary.js';
import type { Device } from '../backends/index.js';
import type { Family } from '../formats/layer.js';
import type { NolaDocument } from '../container/document.js';
import { hashDataSection, openSafetensors, removeStaleTempFiles } from '../io/index.js';
import { EXIT, NolaError, UsageError } from '../errors.js';
import { onceLogger } from './once-logger.js';

export interface BatchCompressOptions {
  settings: CompressSettings;
  formatVersion: FormatVersion;
  threads: number;
  device: Device;
  family?: Family;
}

export interface BatchRequest {
  command: BatchCommand;
  items: readonly BatchItem[];
  /** Outputs mirror the items' relative paths under this folder; undefined: beside each input. */
  outDir?: string;
  force: boolean;
  compress?: BatchCompressOptions;
  /** expand --to. */
  to?: Family;
  /** expand --threads (undefined: expand's default). */
  expandThreads?: number;
  /** Each file's warnings go here, each once, bound to its input (`input=…`). */
  log?: Logger;
  onStart?: (item: BatchItem, index: number) => void;
  onLayer?: (done: number, total: number, layer: string) => void;
  onFinish?: (record: BatchRecord, item: BatchItem, index: number) => void | Promise<void>;
}

/**
 * The one rule for where a compressed file goes: the single-file default name (defaultNolaPath) of
 * the input, mirrored under `outDir` when there is one. defaultNolaPath gets what compress() gives
 * it for a single file (the LoRA file itself, a PEFT folder's adapter_model.safetensors).
 */
export function compressOutputFor(item: BatchItem, outDir: string | undefined): string {
  const mirrored = (own: string, rel: string): string => (outDir === undefined ? own : path.join(outDir, rel));
  // The single-file rule names the output after the input (a PEFT folder, not its weights file).
  return defaultNolaPath(mirrored(item.input, item.inputRel));
}

/** The same for expand: the single-file default (resolveExpandOutput) of the mirrored NOLA path. */
export async function expandOutputFor(item: BatchItem, outDir: string | undefined, doc: NolaDocument): Promise<string> {
  return resolveExpandOutput(outDir === undefined ? item.input : path.join(outDir, item.rel), undefined, doc.source.file, doc.source.family);
}

export async function runBatch(req: BatchRequest): Promise<BatchRecord[]> {
  const records: BatchRecord[] = [];
  // One set of fit workers for the whole run (started when a file first needs them), their old
  // generation kept close to what is live so finished files' garbage does not pile up in them.
  const o = req.compress;
  const newPool = (): FitPool => createFitPool(o!.threads, { oldGenerationMb: LIBRARY_OLD_GENERATION_MB, callingThread: !jobsHoldThread(o!.settings.strategy) });
  let pool = o !== undefined && o.threads > 1 && o.device === 'cpu' ? newPool() : undefined;
  try {
    for (let i = 0; i < req.items.length; i++) {
      const item = req.items[i];
      req.onStart?.(item, i);
      const started = process.hrtime.bigint();
      const seconds = (): number => Number(process.hrtime.bigint() - started) / 1e9;
      let record: BatchRecord;
      try {
        record = req.command === 'compress' ? await compressItem(req, item, seconds, pool) : await expandItem(req, item, seconds);
      } catch (e) {
        record = failedRecord(req.command, item, e, seconds());
        // A worker that crashed leaves its pool failed: the next file gets fresh workers.
        if (pool !== undefined && !(e instanceof NolaError)) {
          await pool.close();
          pool = newPool();
        }
      }
      records.push(record);
      await req.onFinish?.(record, item, i);
    }
  } finally {
    await pool?.close();
  }
  return records;
}

/** Warnings name the file they are about (one log serves every file of the run), each once. */
function fileLog(req: BatchRequest, item: BatchItem): Logger | undefined {
  return req.log === undefined ? undefined : onceLogger(req.log.child({ input: item.input }));
}

function failedRecord(command: BatchCommand, item: BatchItem, e: unknown, seconds: number, output: string | null = null): BatchRecord {
  const message = (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, ' ');
  // The record names the input already; the reason is what is wrong with it.
  const prefix = [`${item.input}: `, `${item.file}: `].find((p) => message.startsWith(p));
  const reason = prefix === undefined ? message : message.slice(prefix.length);
  return {
    command, input: item.input, output, status: 'failed', family: null, layers: null, bytes_before: null, bytes_after: null,
    ratio: null, worst_error: null, weighted_error: null, seconds,
    reason: e instanceof NolaError ? reason : `internal error: ${reason}`,
    exit_code: e instanceof NolaError ? e.exitCode : EXIT.internal,
  };
}

async function compressItem(req: BatchRequest, item: BatchItem, seconds: () => number, pool: FitPool | undefined): Promise<BatchRecord> {
  const o = req.compress!;
  const output = compressOutputFor(item, req.outDir);
  await removeStaleTempFiles(output);
  const fingerprint = settingsFingerprint({ settings: o.settings, formatVersion: o.formatVersion, family: o.family });
  if (!req.force && await exists(output)) {
    const doc = await upToDateNola(output, item, fingerprint);
    if (doc === null) {
      throw new UsageError(`${output} exists and was not made from ${item.input} with these settings; pass --force to replace it`);
    }
    const after = (await stat(output)).size;
    const worst = doc.layers.reduce((m, l) => Math.max(m, l.error), 0);
    return {
      command: 'compress', input: item.input, output, status: 'skipped', family: doc.source.family, layers: doc.layers.length,
      bytes_before: doc.source.bytes, bytes_after: after, ratio: ratio(doc.source.bytes, after), worst_error: worst, weighted_error: null, seconds: seconds(),
    };
  }
  // The plan's warnings are logged as they arise, the report's (a bound breached, a file larger than its source) after.
  const log = fileLog(req, item);
  const { report } = await inFolderOf(output, () => compress({
    input: item.input, output, force: req.force, family: o.family, settings: o.settings, formatVersion: o.formatVersion,
    threads: o.threads, device: o.device, log, onProgress: req.onLayer, pool,
  }));
  for (const w of report.warnings) log?.warn(w);
  const t = report.totals;
  return {
    command: 'compress', input: item.input, output, status: 'done', family: report.family, layers: t.layers,
    bytes_before: t.inputBytes, bytes_after: t.outputBytes, ratio: ratio(t.inputBytes, t.outputBytes),
    worst_error: t.maxError, weighted_error: t.energyWeightedError, seconds: seconds(),
    ...(report.warnings.length > 0 ? { warnings: report.warnings } : {}),
  };
}

/**
 * The existing output's document when it records this source (same size, same tensor bytes by
 * SHA-256, same metadata and adapter config) and this settings fingerprint; null otherwise
 * (including an output nola cannot read, or one written before files recorded their settings).
 */
async function upToDateNola(output: string, item: BatchItem, fingerprint: string): Promise<NolaDocument | null> {
  let doc: NolaDocument;
  try {
    const nola = await openNola(output);
    doc = nola.doc;
    await nola.reader.close();
  } catch {
    return null;
  }
  if (doc.settings_sha256 !== fingerprint) return null;
  const size = await stat(item.file).then((s) => s.size, () => -1);
  if (size !== doc.source.bytes) return null;
  const src = await openSafetensors(item.file).catch(() => null);
  if (src === null) return null;
  try {
    if (canonicalJson(src.metadata) !== canonicalJson(doc.source.metadata)) return null;
    if (canonicalJson(await readSiblingConfig(item.file)) !== canonicalJson(doc.source.config ?? null)) return null;
    return (await hashDataSection(src)) === doc.source.tensors_sha256 ? doc : null;
  } catch {
    return null;
  } finally {
    await src.close();
  }
}

async function expandItem(req: BatchRequest, item: BatchItem, seconds: () => number): Promise<BatchRecord> {
  const nola = await openNola(item.file);
  const doc = nola.doc;
  await nola.reader.close();
  const output = await expandOutputFor(item, req.outDir, doc);
  const config = path.join(path.dirname(output), 'adapter_config.json');
  await removeStaleTempFiles(output);
  await removeStaleTempFiles(config);
  const before = (await stat(item.file)).size;
  const worst = doc.layers.reduce((m, l) => Math.max(m, l.error_expanded ?? l.error), 0);
  if (!req.force && await exists(output)) {
    if (!(await upToDateExpansion(output, config, item, doc, req.to))) {
      throw new UsageError(`${output} exists and is older than ${item.input} (or unreadable); pass --force to replace it`);
    }
    const after = (await stat(output)).size;
    return {
      command: 'expand', input: item.input, output, status: 'skipped', family: req.to ?? doc.source.family, layers: doc.layers.length,
      bytes_before: before, bytes_after: after, ratio: ratio(before, after), worst_error: worst, weighted_error: null, seconds: seconds(),
    };
  }
  const r = await inFolderOf(output, () => expand({ input: item.file, output, to: req.to, force: req.force, threads: req.expandThreads, onProgress: req.onLayer }));
  const log = fileLog(req, item);
  for (const w of r.warnings) log?.warn(w);
  return {
    command: 'expand', input: item.input, output: r.output, status: 'done', family: r.family, layers: r.layers,
    bytes_before: before, bytes_after: r.bytes, ratio: ratio(before, r.bytes), worst_error: worst, weighted_error: null, seconds: seconds(),
    ...(r.warnings.length > 0 ? { warnings: r.warnings } : {}),
  };
}

/**
 * make's rule: an expanded LoRA keeps its source's metadata byte for byte, so it has no place to
 * record which NOLA file it came from. It is up to date when it is a complete safetensors file
 * (writes are atomic), newer than the NOLA file, and has its adapter_config.json where one belongs.
 */
async function upToDateExpansion(output: string, config: string, item: BatchItem, doc: NolaDocument, to: Family | undefined): Promise<boolean> {
  const [out, src] = await Promise.all([stat(output).catch(() => null), stat(item.file).catch(() => null)]);
  if (out === null || src === null || out.mtimeMs < src.mtimeMs) return false;
  const needsConfig = doc.source.config !== null && doc.source.config !== undefined && (to === undefined || to === 'peft');
  if (needsConfig && !(await exists(config))) return false;
  const f = await openSafetensors(output).catch(() => null);
  if (f === null) return false;
  await f.close();
  return true;
}

function ratio(before: number, after: number): number | null {
  return after > 0 ? before / after : null;
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(() => true, () => false);
}

/**
 * Runs `write` with the output's folder made (as under --out-dir it may not exist yet); when it
 * fails, the folders it made are removed again, so a refused input leaves nothing behind.
 */
async function inFolderOf<T>(output: string, write: () => Promise<T>): Promise<T> {
  const dir = path.resolve(path.dirname(output));
  // A folder that cannot be made is reported by the pipeline's assertWritable, as one line naming the output.
  const first = await mkdir(dir, { recursive: true }).catch(() => undefined);
  try {
    return await write();
  } catch (e) {
    if (first !== undefined) {
      for (let d = dir; d.length >= first.length; d = path.dirname(d)) {
        if (!(await rmdir(d).then(() => true, () => false))) break;
      }
    }
    throw e;
  }
}
