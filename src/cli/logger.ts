/**
 * pino, writing to stderr (fd 2) so stdout stays for results. By default each message is one
 * human line (`nola: warning: …`); `--log-format json` writes pino's JSON lines instead.
 * The human format is a destination of our own: pino serializes, we parse its line and print it.
 */
import { pino, type Logger } from 'pino';
import { escapeControls, writeLine } from './stderr.js';
import { escapeControl } from './escape.js';

export type LogFormat = 'human' | 'json';

const LABELS: Record<number, string> = { 10: 'trace: ', 20: 'debug: ', 30: '', 40: 'warning: ', 50: 'error: ', 60: 'fatal: ' };

/** One pino line as a person reads it. */
export function formatLogLine(json: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return `nola: ${escapeControls(json.trim())}`;
  }
  const { level, msg, ...rest } = rec;
  const extra = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
  const text = `${typeof msg === 'string' ? msg : ''}${extra ? ` (${extra})` : ''}`;
  return `nola: ${LABELS[level as number] ?? ''}${escapeControls(text)}`;
}

export function createLogger(level: string, format: LogFormat = 'human'): Logger {
  const options = {
    level, base: undefined, timestamp: false,
    // Messages carry names from files: control characters are escaped (JSON leaves C1 and U+2028 raw).
    hooks: { logMethod(this: Logger, args: unknown[], method: (...a: unknown[]) => void) { method.apply(this, args.map((a) => (typeof a === 'string' ? escapeControl(a) : a))); } },
  };
  if (format === 'json') return pino(options, pino.destination({ fd: 2, sync: true }));
  return pino(options, { write: (line: string) => writeLine(formatLogLine(line)) });
}
