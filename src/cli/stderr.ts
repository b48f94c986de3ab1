/**
 * The one writer of human lines to stderr. The progress line (a terminal only) is redrawn in place;
 * any other line first clears it, so a warning never lands in the middle of a bar.
 */
let barShown = false;

/** Control characters from file contents would move the cursor or recolour the terminal: show them escaped. */
export function escapeControls(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Writes one complete line (a newline is added), clearing a progress bar first. */
export function writeLine(line: string): void {
  if (barShown) { process.stderr.write('\r\x1b[K'); barShown = false; }
  process.stderr.write(line.endsWith('\n') ? line : `${line}\n`);
}

/** Draws the progress bar in place (terminal only). */
export function drawBar(text: string): void {
  process.stderr.write(`\r${text}\x1b[K`);
  barShown = true;
}

/** Erases the bar, if one is drawn. */
export function clearBar(): void {
  if (barShown) { process.stderr.write('\r\x1b[K'); barShown = false; }
}

/** Ends a drawn bar with a newline, keeping it visible (e.g. before the interrupt message). */
export function breakBar(): void {
  if (barShown) { process.stderr.write('\n'); barShown = false; }
}
