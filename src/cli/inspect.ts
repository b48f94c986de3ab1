/**
 * `nola inspect`: one file's statistics as they always were; several inputs (files, folders, patterns)
 * one line each, LoRA and NOLA files alike, and the library's totals. A file that cannot be read is
 * listed with its reason and exit code, the rest are inspected, and the run exits 8 (`partial`).
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Ctx } from './main.js';
import { parseFamily } from './options.js';
import { discoverInputs, hasGlobMagic, type BatchItem } from '../pipeline/batch-inputs.js';
import { inspect, type Inspection } from '../pipeline/inspect.js';
import type { Family } from '../formats/layer.js';
import { resolveLoraPath } from '../pipeline/source.js';
import { renderInspectText } from '../report/inspect-text.js';
import { formatBytes, formatSizeRatio } from '../report/report.js';
import { EXIT, NolaError, PartialRunError, UsageError } from '../errors.js';

type Flags = Record<string, string | boolean | undefined>;

export async function runInspect(ctx: Ctx, inputs: string[], o: Flags): Promise<void> {
  const family = parseFamily('--format', o.format as string | undefined);
  if (!(await wantsMany(inputs))) {
    const result = await inspect(inputs[0], family);
    ctx.out(o.json === true ? JSON.stringify(result, null, 2) : renderInspectText(result, o.layers === true));
    return;
  }
  if (o.layers === true) throw new UsageError('--layers lists the layers of one file; give it one file');
  const items = await findInputs(inputs);
  if (items.length === 0) throw new UsageError(`no LoRA or NOLA (.safetensors, .nola) files in ${inputs.join(', ')}`);
  // Text: each file's line as soon as it is inspected (a long library shows its progress on stdout), the totals last.
  const entries: InspectEntry[] = [];
  const totals = emptyTotals();
  for (const item of items) {
    const entry = await inspectEntry(item.input, family);
    addToTotals(totals, entry);
    if (o.json === true) entries.push(entry);
    else ctx.out(renderInspectLine(entry));
  }
  ctx.out(o.json === true ? JSON.stringify({ tool: 'nola', command: 'inspect', totals, files: entries }, null, 2) : renderInspectTotals(totals));
  if (totals.failed > 0) throw new PartialRunError(`${totals.failed} of ${totals.files} files could not be inspected (each is named above with its reason)`);
}

async function inspectEntry(input: string, family: Family | undefined): Promise<InspectEntry> {
  try {
    return { input, inspection: await inspect(input, family) };
  } catch (e) {
    const message = (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, ' ');
    const reason = message.startsWith(`${input}: `) ? message.slice(input.length + 2) : message;
    return { input, reason: e instanceof NolaError ? reason : `internal error: ${reason}`, exit_code: e instanceof NolaError ? e.exitCode : EXIT.internal };
  }
}

/** One input of a library inspect: what inspect found, or why it could not. */
export type InspectEntry = { input: string; inspection: Inspection } | { input: string; reason: string; exit_code: number };

export interface InspectTotals {
  files: number;
  lora: { files: number; bytes: number; layers: number };
  nola: { files: number; bytes: number; layers: number; sourceBytes: number; worstError: number | null };
  failed: number;
}

function emptyTotals(): InspectTotals {
  return { files: 0, lora: { files: 0, bytes: 0, layers: 0 }, nola: { files: 0, bytes: 0, layers: 0, sourceBytes: 0, worstError: null }, failed: 0 };
}

function addToTotals(t: InspectTotals, e: InspectEntry): void {
  t.files++;
  if (!('inspection' in e)) { t.failed++; return; }
  const i = e.inspection;
  const side = i.kind === 'lora' ? t.lora : t.nola;
  side.files++;
  side.bytes += i.bytes.file;
  side.layers += i.totals.layers;
  if (i.kind === 'nola') {
    t.nola.sourceBytes += i.source.bytes;
    t.nola.worstError = Math.max(t.nola.worstError ?? 0, i.totals.maxError);
  }
}

/** A file's line: kind, family, layers, bytes; a LoRA's ranks, a NOLA file's size against its source and its worst error. */
export function renderInspectLine(e: InspectEntry): string {
  if (!('inspection' in e)) return `failed ${e.input} (exit ${e.exit_code}): ${e.reason}`;
  const i = e.inspection;
  const layers = `${i.totals.layers} layer${i.totals.layers === 1 ? '' : 's'}`;
  return i.kind === 'lora'
    ? `lora   ${i.family.padEnd(9)} ${layers.padStart(11)} ${formatBytes(i.bytes.file).padStart(10)}  ranks ${i.totals.ranks.join(',') || '-'}  ${e.input}`
    : `nola   ${i.source.family.padEnd(9)} ${layers.padStart(11)} ${formatBytes(i.bytes.file).padStart(10)}  ${formatSizeRatio(i.source.bytes, i.bytes.file)} than its source, worst error ${i.totals.maxError.toFixed(4)}  ${e.input}`;
}

/** The last line: files of each kind, their bytes and layers, the NOLA files against their sources, the failures. */
export function renderInspectTotals(t: InspectTotals): string {
  const parts = [
    t.lora.files > 0 ? `${t.lora.files} LoRA (${formatBytes(t.lora.bytes)}, ${t.lora.layers} layers)` : '',
    t.nola.files > 0 ? `${t.nola.files} NOLA (${formatBytes(t.nola.bytes)} from ${formatBytes(t.nola.sourceBytes)} of sources, ${formatSizeRatio(t.nola.sourceBytes, t.nola.bytes)}, worst error ${(t.nola.worstError ?? 0).toFixed(4)})` : '',
    t.failed > 0 ? `${t.failed} failed` : '',
  ].filter((s) => s !== '');
  return `nola inspect: ${t.files} file${t.files === 1 ? '' : 's'}: ${parts.join(', ')}`;
}

/** Several arguments, a pattern, or a folder that is not one LoRA's (a PEFT adapter's, a folder holding one LoRA or one NOLA file). */
async function wantsMany(inputs: readonly string[]): Promise<boolean> {
  if (inputs.length !== 1) return true;
  const input = inputs[0];
  if (!existsSync(input)) return hasGlobMagic(input);
  if (!statSync(input).isDirectory()) return false;
  return resolveLoraPath(input).then(() => false, () => true);
}

/** Every LoRA input (files, PEFT folders) and every NOLA file the arguments name or hold, each once, per argument in path order. */
async function findInputs(args: readonly string[]): Promise<BatchItem[]> {
  const out: BatchItem[] = [];
  const seen = new Set<string>();
  for (const arg of args) {
    const found = [...await discoverInputs([arg], { command: 'compress' }), ...await discoverInputs([arg], { command: 'expand' })];
    found.sort((a, b) => (a.input < b.input ? -1 : a.input > b.input ? 1 : 0));
    for (const item of found) {
      const key = path.resolve(item.input);
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(item);
    }
  }
  return out;
}
