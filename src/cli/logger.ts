/** pino, writing to stderr (fd 2) so stdout stays for results. */
import { pino, type Logger } from 'pino';

export function createLogger(level: string): Logger {
  return pino({ level, base: undefined, timestamp: false }, pino.destination({ fd: 2, sync: true }));
}
