/**
 * Progress on stderr. On a terminal: one line redrawn in place (percent, bar, count, elapsed, ETA,
 * the current layer shortened in the middle so both the block and the module stay visible).
 * Elsewhere (pipes, CI logs): a plain line every few seconds while the run lasts, none for a short run.
 */
import { clearBar, drawBar, writeLine } from './stderr.js';
import { escapeControl } from './escape.js';

export type ProgressMode = 'tty' | 'lines' | 'off';

export interface Progress {
  update: (done: number, total: number, item: string) => void;
  done: () => void;
}

/** The seconds between plain lines off a terminal (NOLA_PROGRESS_SECONDS overrides, for tests and slow CI). */
function lineInterval(): number {
  const v = Number(process.env.NOLA_PROGRESS_SECONDS);
  return Number.isFinite(v) && v >= 0 ? v : 5;
}

export function progressMode(quiet: boolean): ProgressMode {
  if (quiet) return 'off';
  return process.stderr.isTTY === true ? 'tty' : 'lines';
}

/** "unet.down_blocks.1.attentions.0…attn2.to_out.0": the first and last parts of a long name. */
export function shortenMiddle(s: string, max: number): string {
  if (s.length <= max) return s;
  const tail = Math.ceil((max - 1) / 2);
  return `${s.slice(0, max - 1 - tail)}…${s.slice(s.length - tail)}`;
}

/** 75 → "1:15", 3725 → "1:02:05". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = h > 0 ? String(m).padStart(2, '0') : String(m);
  return `${h > 0 ? `${h}:` : ''}${mm}:${String(r).padStart(2, '0')}`;
}

export function createProgress(label: string, mode: ProgressMode = progressMode(false), now: () => number = Date.now): Progress {
  const start = now();
  let state: { done: number; total: number; item: string } | undefined;
  const interval = lineInterval() * 1000;
  const describe = (withBar: boolean): string => {
    const elapsed = (now() - start) / 1000;
    const { done, total, item } = state ?? { done: 0, total: 0, item: '' };
    const frac = total > 0 ? Math.min(1, done / total) : 0;
    const eta = frac > 0 && frac < 1 ? `, ETA ${formatDuration((elapsed * (1 - frac)) / frac)}` : '';
    const width = 24;
    const filled = Math.round(frac * width);
    const bar = withBar ? ` [${'#'.repeat(filled)}${'.'.repeat(width - filled)}]` : '';
    const columns = process.stderr.columns ?? 100;
    const head = `${label} ${String(Math.floor(100 * frac)).padStart(3)}%${bar} ${Math.floor(done)}/${total}  ${formatDuration(elapsed)} elapsed${eta}`;
    const room = Math.max(12, Math.min(60, columns - head.length - 3));
    return item ? `${head}  ${escapeControl(shortenMiddle(item, room))}` : head;
  };
  // Off a terminal nothing calls update between slow layers (the sweep's paper point takes minutes): a timer keeps the lines coming.
  const timer = mode === 'lines' && interval > 0 ? setInterval(() => {
    writeLine(describe(false));
  }, interval) : undefined;
  timer?.unref();
  return {
    update(done, total, item) {
      state = { done, total, item };
      if (mode === 'tty') drawBar(describe(true));
      else if (mode === 'lines' && interval === 0) writeLine(describe(false));
    },
    done() {
      if (timer) clearInterval(timer);
      if (mode === 'tty') clearBar();
    },
  };
}
