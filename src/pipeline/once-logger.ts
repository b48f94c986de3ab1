/** A logger that prints each distinct warning once: the same message from the plan, the workers and the report is one line. */
import type { Logger } from 'pino';

export interface OnceLogger {
  warn: (msg: string) => void;
  info: (msg: string) => void;
  debug: (msg: string) => void;
}

export function onceLogger(log: Logger): OnceLogger & Logger {
  const seen = new Set<string>();
  const wrapped = Object.create(log) as Logger;
  (wrapped as unknown as OnceLogger).warn = (msg: string) => {
    if (seen.has(msg)) return;
    seen.add(msg);
    log.warn(msg);
  };
  (wrapped as unknown as OnceLogger).info = (msg: string) => log.info(msg);
  (wrapped as unknown as OnceLogger).debug = (msg: string) => log.debug(msg);
  return wrapped as OnceLogger & Logger;
}
