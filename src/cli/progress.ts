import { escapeControl } from './escape.js';

/** A one-line progress bar on stderr, only when stderr is a terminal (never in pipes or CI logs). */
export function createProgress(label: string, enabled = process.stderr.isTTY === true): {
  update: (done: number, total: number, item: string) => void;
  done: () => void;
} {
  let shown = false;
  const width = 28;
  return {
    update(done, total, item) {
      if (!enabled) return;
      const frac = total > 0 ? Math.min(1, done / total) : 1;
      const filled = Math.round(frac * width);
      const name = escapeControl(item.length > 40 ? `…${item.slice(-39)}` : item);
      process.stderr.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.floor(done)}/${total} ${name}\x1b[K`);
      shown = true;
    },
    done() {
      if (enabled && shown) process.stderr.write('\r\x1b[K');
    },
  };
}
