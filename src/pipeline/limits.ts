/**
 * What opening a file may cost. A NOLA file is a few seeds and coefficients that expand into factors of
 * any claimed size, and a LoRA header can claim any shape, so every cost a file can ask for is bounded
 * by a stated limit, checked before anything is allocated or computed, and refused with one line naming
 * the file, the layer and the option that raises the limit (README "Limits", docs/FORMAT.md):
 *
 * - values per factor (`--max-factor-values`, default 2^24), and never more than the machine's memory
 *   allows: a fit or a synthesis holds about FACTOR_WORKING_SET float64 copies of a factor at once, and
 *   all of them together may take at most a quarter of the memory;
 * - bytes expand (and verify, which runs the same plan) produces (`--max-output-bytes`, default 2 GiB);
 * - multiply-adds of the uniform basis, Σ k·n over its factors (`--max-basis-work`, default 2^36): its
 *   synthesis costs k·n, so a 19 KB file can ask for k = 65,536 over n = 2^24.
 * The options are global (`nola --max-output-bytes 8e9 expand …`); the CLI sets them once per run.
 */
import os from 'node:os';
import { IoError } from '../errors.js';

export interface Limits {
  maxFactorValues: number;
  maxOutputBytes: number;
  maxBasisWork: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = {
  maxFactorValues: 2 ** 24,
  maxOutputBytes: 2 ** 31,
  maxBasisWork: 2 ** 36,
};

/** float64 copies of one factor a fit or a synthesis holds at once (the factor, its fit, residuals, basis work). */
export const FACTOR_WORKING_SET = 8;

/** Largest adapter_config.json read (real ones are a few KB; the document must stay under its inflate cap). */
export const MAX_CONFIG_BYTES = 16 * 2 ** 20;

let current: Limits = { ...DEFAULT_LIMITS };

/** Sets the limits of this run (the CLI's --max-* options); unspecified ones keep their defaults. */
export function setLimits(l: Partial<Limits>): void {
  current = { ...DEFAULT_LIMITS, ...Object.fromEntries(Object.entries(l).filter(([, v]) => v !== undefined)) };
}

export function getLimits(): Readonly<Limits> {
  return current;
}

/** The machine's memory, read once (os.totalmem() reads /proc/meminfo each call; it is asked per factor). */
let totalMemory: number | undefined;

/** Bytes one float64 factor may take: the --max-factor-values limit, or less where memory is short. */
export function maxFactorBytes(): number {
  totalMemory ??= os.totalmem();
  return Math.min(current.maxFactorValues * 8, Math.floor(totalMemory / 4 / FACTOR_WORKING_SET));
}

/** Throws IoError when a rows x cols factor of `layer` is over the limit (see maxFactorBytes). */
export function assertFactorFits(file: string, layer: string, factor: 'A' | 'B', rows: number, cols: number, limit = maxFactorBytes()): void {
  const bytes = rows * cols * 8;
  if (bytes <= limit) return;
  throw new IoError(
    `${file}: layer ${JSON.stringify(layer)} factor ${factor} is ${rows} x ${cols} values (${size(bytes)} as float64), ` +
    `more than the limit of ${Math.floor(limit / 8)} values per factor (${size(limit)}; --max-factor-values raises it up to what this machine's memory allows)`,
  );
}

/** Throws IoError when expand would produce more than --max-output-bytes. */
export function assertOutputFits(file: string, bytes: number): void {
  const limit = current.maxOutputBytes;
  if (bytes <= limit) return;
  throw new IoError(`${file}: expanding it would produce ${bytes} bytes (${size(bytes)}), more than the limit of ${limit} bytes (--max-output-bytes raises it)`);
}

/** Throws IoError when the uniform-basis synthesis would take more than --max-basis-work multiply-adds. */
export function assertBasisWorkFits(file: string, work: number): void {
  const limit = current.maxBasisWork;
  if (work <= limit) return;
  throw new IoError(`${file}: its uniform-basis layers need ${work.toExponential(3)} multiply-adds (Σ k·n), more than the limit of ${limit} (--max-basis-work raises it)`);
}

function size(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
