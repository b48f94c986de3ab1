/**
 * The record a run over many inputs keeps of each file (one JSON Lines line of --summary), merging
 * the records of several runs (shards, a rerun after a kill) and the totals a run ends with.
 */
import type { Family } from '../formats/layer.js';
import type { BatchCommand } from './batch-inputs.js';
import { FormatError } from '../errors.js';

export type BatchStatus = 'done' | 'skipped' | 'failed';

/** One file's outcome. Field names are the --summary format (docs/BATCH.md); null where unknown. */
export interface BatchRecord {
  command: BatchCommand;
  input: string;
  output: string | null;
  status: BatchStatus;
  family: Family | null;
  layers: number | null;
  bytes_before: number | null;
  bytes_after: number | null;
  /** bytes_before / bytes_after. */
  ratio: number | null;
  /** Worst layer's relative error of what is stored. */
  worst_error: number | null;
  /** The adapter's energy-weighted error (null for a skipped file: the NOLA file does not store the energies). */
  weighted_error: number | null;
  seconds: number;
  /** compress done, only when there were any: the report's warnings (a bound breached, layers left with nothing, a file larger than its source…). */
  warnings?: string[];
  /** failed: the one-line reason and the exit code of its class (src/errors.ts). */
  reason?: string;
  exit_code?: number;
}

/** Fields that measure the run rather than the file: left out when two summaries are compared. */
export const TIMING_FIELDS = ['seconds'] as const;

/**
 * Records of several summaries as one: per input (and command) the latest record, except that a
 * `skipped` record does not replace the `done` record of the same output (it only confirms it: a
 * rerun after a kill keeps the numbers of the run that did the work). Sorted by input.
 */
export function mergeRecords(lists: ReadonlyArray<readonly BatchRecord[]>): BatchRecord[] {
  const byKey = new Map<string, BatchRecord>();
  for (const list of lists) {
    for (const r of list) {
      const key = `${r.command}\u0000${r.input}`;
      const prev = byKey.get(key);
      if (prev !== undefined && r.status === 'skipped' && prev.status === 'done' && prev.output === r.output) continue;
      byKey.set(key, r);
    }
  }
  return [...byKey.values()].sort((a, b) => (a.input < b.input ? -1 : a.input > b.input ? 1 : a.command < b.command ? -1 : 1));
}

export interface BatchTotals {
  files: number;
  done: number;
  skipped: number;
  failed: number;
  /** Over done and skipped files. */
  bytesBefore: number;
  bytesAfter: number;
  worst: { input: string; error: number } | null;
  slowest: { input: string; seconds: number } | null;
  failures: Array<{ input: string; reason: string; exitCode: number }>;
  /** Files whose record carries warnings. */
  warned: number;
}

export function batchTotals(records: readonly BatchRecord[]): BatchTotals {
  const t: BatchTotals = { files: records.length, done: 0, skipped: 0, failed: 0, bytesBefore: 0, bytesAfter: 0, worst: null, slowest: null, failures: [], warned: 0 };
  for (const r of records) {
    t[r.status]++;
    if (r.status === 'failed') {
      t.failures.push({ input: r.input, reason: r.reason ?? '', exitCode: r.exit_code ?? 1 });
      continue;
    }
    if ((r.warnings?.length ?? 0) > 0) t.warned++;
    t.bytesBefore += r.bytes_before ?? 0;
    t.bytesAfter += r.bytes_after ?? 0;
    if (r.worst_error !== null && (t.worst === null || r.worst_error > t.worst.error)) t.worst = { input: r.input, error: r.worst_error };
    if (r.status === 'done' && (t.slowest === null || r.seconds > t.slowest.seconds)) t.slowest = { input: r.input, seconds: r.seconds };
  }
  return t;
}

/**
 * Parses JSON Lines text of a summary. A last line cut short (a run killed while writing it) is
 * dropped and reported in `torn`; any other bad line is an error naming the line.
 */
export function parseSummary(text: string, where: string): { records: BatchRecord[]; torn: boolean } {
  const lines = text.split('\n');
  const records: BatchRecord[] = [];
  let torn = false;
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let r: unknown;
    try {
      r = JSON.parse(line);
    } catch {
      if (i === lines.length - 1) { torn = true; return; }
      throw new FormatError(`${where}:${i + 1}: not a JSON line`);
    }
    if (!isRecord(r)) throw new FormatError(`${where}:${i + 1}: not a nola summary record (needs command, input, status)`);
    records.push(r);
  });
  return { records, torn };
}

function isRecord(r: unknown): r is BatchRecord {
  if (typeof r !== 'object' || r === null) return false;
  const o = r as Record<string, unknown>;
  return (o.command === 'compress' || o.command === 'expand') && typeof o.input === 'string'
    && (o.status === 'done' || o.status === 'skipped' || o.status === 'failed');
}
