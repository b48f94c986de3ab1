/**
 * Progress of a run over many files, on stderr. On a terminal: one redrawn line with files and bytes
 * done, elapsed time and an ETA (from the bytes per second of the files actually worked on, so skipped
 * files do not make it optimistic), with failures printed above it. Otherwise (pipes, CI logs): one
 * line per finished file, whatever its status.
 */
import type { BatchRecord } from '../pipeline/batch-summary.js';
import { formatBytes, formatSizeRatio } from '../report/report.js';

export interface BatchProgress {
  start: (input: string, bytes: number) => void;
  layer: (done: number, total: number) => void;
  finish: (r: BatchRecord, bytes: number) => void;
  done: () => void;
}

export function createBatchProgress(command: string, files: number, totalBytes: number, tty = process.stderr.isTTY === true): BatchProgress {
  const t0 = Date.now();
  let finished = 0, bytesDone = 0, workedBytes = 0, workedMs = 0;
  let current = '', currentBytes = 0, currentStart = 0, layerFrac = 0;
  let shown = false;
  const write = (s: string): void => { process.stderr.write(s); };
  const draw = (): void => {
    if (!tty) return;
    const elapsed = Date.now() - t0;
    const partial = bytesDone + currentBytes * layerFrac;
    const remaining = totalBytes - partial;
    const rate = workedBytes > 0 && workedMs > 0 ? workedBytes / workedMs : 0;
    const eta = rate > 0 ? clock(remaining / rate) : '--:--';
    const name = current.length > 36 ? `…${current.slice(-35)}` : current;
    write(`\r${command} ${finished}/${files} files  ${formatBytes(Math.round(partial))}/${formatBytes(totalBytes)}  ${clock(elapsed)} elapsed  ETA ${eta}  ${name}\x1b[K`);
    shown = true;
  };
  const above = (line: string): void => {
    if (shown) write('\r\x1b[K');
    write(`${line}\n`);
    draw();
  };
  return {
    start(input, bytes) {
      current = input;
      currentBytes = bytes;
      currentStart = Date.now();
      layerFrac = 0;
      draw();
    },
    layer(done, total) {
      layerFrac = total > 0 ? Math.min(1, done / total) : 0;
      draw();
    },
    finish(r, bytes) {
      finished++;
      bytesDone += bytes;
      currentBytes = 0;
      layerFrac = 0;
      if (r.status !== 'skipped') {
        workedBytes += bytes;
        workedMs += Date.now() - currentStart;
      }
      const line = `nola: [${finished}/${files}] ${describe(r)}`;
      if (!tty) write(`${line}\n`);
      else if (r.status === 'failed') above(line);
      else draw();
    },
    done() {
      if (tty && shown) write('\r\x1b[K');
    },
  };
}

function describe(r: BatchRecord): string {
  if (r.status === 'failed') return `failed ${r.input} (exit ${r.exit_code}): ${r.reason}`;
  const known = r.bytes_before !== null && r.bytes_after !== null;
  const sizes = known ? `${formatBytes(r.bytes_before!)} -> ${formatBytes(r.bytes_after!)}` : '';
  const ratio = known && r.bytes_before! > 0 && r.bytes_after! > 0 ? `, ${formatSizeRatio(r.bytes_before!, r.bytes_after!)}` : '';
  const err = r.worst_error !== null ? `, worst error ${r.worst_error.toPrecision(3)}` : '';
  if (r.status === 'skipped') return `skipped ${r.input} -> ${r.output} (up to date${err})`;
  return `done ${r.input} -> ${r.output} (${sizes}${ratio}${err}, ${r.seconds.toFixed(1)} s)`;
}

function clock(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const mm = String(m).padStart(h > 0 ? 2 : 1, '0'), ss = String(sec).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}
