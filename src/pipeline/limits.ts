/**
 * Memory limit for one LoRA factor. compress reads a factor as float64 and expand/verify synthesize it
 * as float64, so a factor of rows x cols costs 8·rows·cols bytes at once; a header (or a NOLA document)
 * that claims more than a quarter of this machine's memory for one factor is refused up front, with a
 * line naming the layer, instead of failing deep inside an allocation (or swapping the machine to death).
 */
import os from 'node:os';
import { IoError } from '../errors.js';

/** Bytes one float64 factor may take: a quarter of the machine's memory. */
export function maxFactorBytes(): number {
  return Math.floor(os.totalmem() / 4);
}

/** Throws IoError when a rows x cols float64 factor of `layer` would take more than `limit` bytes. */
export function assertFactorFits(file: string, layer: string, factor: 'A' | 'B', rows: number, cols: number, limit = maxFactorBytes()): void {
  const bytes = rows * cols * 8;
  if (bytes <= limit) return;
  throw new IoError(
    `${file}: layer ${JSON.stringify(layer)} factor ${factor} is ${rows} x ${cols} values (${size(bytes)} as float64), ` +
    `more than this machine allows for one factor (${size(limit)}, a quarter of its memory)`,
  );
}

function size(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
