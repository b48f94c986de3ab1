/**
 * nola summary: the --summary files of several runs (the shards of a Kubernetes Indexed Job or a
 * Slurm array, a rerun after a kill) merged into one set of records and one totals table. Exits 8
 * (partial) when a file of the merged result failed, so a script can ask "did the whole library go".
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Ctx } from './main.js';
import { renderBatchTotals } from './batch.js';
import { batchTotals, mergeRecords, parseSummary, type BatchRecord } from '../pipeline/batch-summary.js';
import { IoError, PartialRunError } from '../errors.js';
import { writeTextAtomic, assertWritable } from '../io/index.js';

export async function runSummary(ctx: Ctx, inputs: string[], o: Record<string, string | boolean | undefined>): Promise<void> {
  const out = o.output as string | undefined;
  if (out !== undefined) await assertWritable(out, o.force === true);
  const files: string[] = [];
  for (const p of inputs) {
    const st = await stat(p).catch(() => { throw new IoError(`${p}: no such file or folder`); });
    if (st.isDirectory()) {
      const names = (await readdir(p)).filter((n) => n.endsWith('.jsonl') && !n.startsWith('.')).sort();
      if (names.length === 0) throw new IoError(`${p}: no .jsonl summary files in this folder`);
      files.push(...names.map((n) => path.join(p, n)).filter((f) => out === undefined || path.resolve(f) !== path.resolve(out)));
    } else {
      files.push(p);
    }
  }
  const lists: BatchRecord[][] = [];
  for (const f of files) {
    const { records, torn } = parseSummary(await readFile(f, 'utf8'), f);
    if (torn) ctx.log.warn(`${f}: its last line was cut short (a run killed while writing it); that line is left out`);
    lists.push(records);
  }
  const merged = mergeRecords(lists);
  const commands = [...new Set(merged.map((r) => r.command))];
  if (out !== undefined) await writeTextAtomic(out, merged.map((r) => `${JSON.stringify(r)}\n`).join(''), { force: o.force === true });
  const totals = batchTotals(merged);
  if (o.json === true) ctx.out(JSON.stringify({ tool: 'nola', command: 'summary', summaries: files.length, totals, files: merged }, null, 2));
  else ctx.out(`${renderBatchTotals(commands.length === 0 ? 'summary' : commands.join('+'), totals)}\n  (merged from ${files.length} summar${files.length === 1 ? 'y' : 'ies'})`);
  if (totals.failed > 0) throw new PartialRunError(`${totals.failed} of ${totals.files} files failed`);
}
