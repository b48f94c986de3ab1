/** pino, writing to stderr (fd 2) so stdout stays for results. */
import { pino, type Logger } from 'pino';
import { escapeControl } from './escape.js';

export function createLogger(level: string): Logger {
  return pino({
    level, base: undefined, timestamp: false,
    // Messages carry names from files: control characters are escaped (JSON leaves C1 and U+2028 raw).
    hooks: { logMethod(args, method) { method.apply(this, args.map((a) => (typeof a === 'string' ? escapeControl(a) : a)) as Parameters<typeof method>); } },
  }, pino.destination({ fd: 2, sync: true }));
}
