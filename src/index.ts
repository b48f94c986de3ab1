/**
 * nola as a library: `import { compress, expand, inspect, load } from 'nola'`.
 *
 * A thin layer over src/pipeline: each function takes a path and options, returns data, and throws the
 * typed errors of src/errors.ts (each carries the exit code the CLI would use). Nothing here writes to
 * stdout or stderr, logs, or exits the process; files are written only by compress and expand, atomically.
 */
import { compress as compressPipeline } from './pipeline/compress.js';
import { expand as expandPipeline, type ExpandResult } from './pipeline/expand.js';
import { inspect as inspectPipeline, type Inspection } from './pipeline/inspect.js';
import { loadExpanded, type LoadedLora, type LoadedTensor } from './pipeline/load.js';
import { defaultThreads } from './pipeline/parallel.js';
import { parseInteger, resolveStrategy } from './cli/options.js';
import { parseDevice } from './backends/index.js';
import { decodeToFloat32 } from './io/safetensors/dtypes.js';
import { UsageError } from './errors.js';
import type { Family } from './formats/layer.js';
import type { CompressReport } from './report/report.js';

export {
  EXIT, NolaError, UsageError, FormatError, PairingError, NumericError, BackendUnavailableError, IoError, InterruptedError,
  type ExitCode,
} from './errors.js';
export type { Family } from './formats/layer.js';
export type { DType } from './io/safetensors/dtypes.js';
export type { CompressReport, LayerReport } from './report/report.js';
export type { Inspection, LoraInspection, NolaInspection } from './pipeline/inspect.js';
export type { ExpandResult } from './pipeline/expand.js';
export type { LoadedLora, LoadedTensor } from './pipeline/load.js';

export type Progress = (done: number, total: number, layer: string) => void;

/** The options of `nola compress`, by the same names (camelCase); each is checked as the CLI checks its flag. */
export interface CompressOptions {
  /** Output NOLA file (default: beside the input, as the CLI names it). */
  output?: string;
  force?: boolean;
  /** Override format detection. */
  format?: Family;
  preset?: 'faithful' | 'paper';
  /** Per-layer relative error bound (default 0.1 unless ratio or a fixed setting is given). */
  maxError?: number;
  ratio?: number;
  rank?: number | 'keep' | 'auto';
  coeffs?: number;
  coeffsA?: number;
  coeffsB?: number;
  basis?: 'uniform' | 'orthogonal';
  quant?: string;
  /**
   * 3 (default: rice or rANS blocks, whichever is shorter; the file states 2 where no block used
   * rANS), 2 (rice blocks only, for readers of version 2) or 1 (the default with preset 'paper').
   */
  formatVersion?: 1 | 2 | 3;
  seed?: number;
  iters?: number;
  alsRounds?: number;
  /** Worker threads fitting layers (default: all cores; all of them workers, so the host's event loop stays free, unlike the CLI's, whose main thread is one of its lanes); the output does not depend on it. */
  threads?: number;
  device?: 'cpu' | 'gpu' | 'auto';
  onProgress?: Progress;
}

export interface CompressResult {
  output: string;
  report: CompressReport;
}

const str = (v: number | string | undefined): string | undefined => (v === undefined ? undefined : String(v));

/** Compresses a LoRA file (or PEFT adapter folder) into a NOLA file; returns its path and the report. */
export async function compress(input: string, options: CompressOptions = {}): Promise<CompressResult> {
  const o = options;
  const strategy = resolveStrategy({
    preset: o.preset, maxError: str(o.maxError), ratio: str(o.ratio), rank: str(o.rank), coeffs: str(o.coeffs),
    coeffsA: str(o.coeffsA), coeffsB: str(o.coeffsB), basis: o.basis, quant: o.quant,
  });
  // The CLI's rule: the paper's construction keeps the version-1 layout unless told otherwise.
  const formatVersion = o.formatVersion ?? (o.preset === 'paper' ? 1 : 3);
  if (formatVersion !== 1 && formatVersion !== 2 && formatVersion !== 3) throw new UsageError(`formatVersion must be 1, 2 or 3, got ${String(formatVersion)}`);
  return compressPipeline({
    input,
    ...(o.output !== undefined ? { output: o.output } : {}),
    force: o.force === true,
    family: checkFamily('format', o.format),
    settings: {
      strategy,
      seed: parseInteger('seed', String(o.seed ?? 0), 0, 0xffffffff),
      fit: { refineIters: parseInteger('iters', String(o.iters ?? 30), 0, 100000), alsRounds: parseInteger('alsRounds', String(o.alsRounds ?? 5), 0, 100000) },
    },
    threads: o.threads === undefined ? defaultThreads() : checkThreads(o.threads),
    device: parseDevice(o.device ?? 'cpu'),
    formatVersion,
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  });
}

export interface ExpandOptions {
  /** Output file or folder (default: as `nola expand` chooses). */
  output?: string;
  /** Write another family where the mapping is unambiguous. */
  to?: Family;
  force?: boolean;
  /** Worker threads synthesizing layers (default: all cores, all of them workers; small files run inline); the output does not depend on it. */
  threads?: number;
  onProgress?: Progress;
}

/** Writes the ordinary LoRA a NOLA file holds (and adapter_config.json for PEFT); returns what was written. */
export async function expand(input: string, options: ExpandOptions = {}): Promise<ExpandResult> {
  return expandPipeline({
    input,
    ...(options.output !== undefined ? { output: options.output } : {}),
    to: checkFamily('to', options.to),
    force: options.force === true,
    ...(options.threads !== undefined ? { threads: checkThreads(options.threads) } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
}

/** Size and structure of a LoRA or NOLA file (what `nola inspect --json` prints). */
export async function inspect(input: string, options: { format?: Family } = {}): Promise<Inspection> {
  return inspectPipeline(input, checkFamily('format', options.format));
}

/**
 * The LoRA a NOLA file holds, in memory: every tensor (name, dtype, shape, bytes) exactly as
 * `nola expand` would write it, with the metadata and the PEFT adapter config it would write. No file is written.
 */
export async function load(input: string, options: { to?: Family; threads?: number } = {}): Promise<LoadedLora> {
  return loadExpanded(input, checkFamily('to', options.to), options.threads === undefined ? undefined : checkThreads(options.threads));
}

/** A loaded tensor's values as float32 (F16/BF16/F32 exactly; F64 rounded to nearest). */
export function toFloat32Array(t: LoadedTensor): Float32Array {
  return decodeToFloat32(t.bytes, t.dtype);
}

function checkThreads(v: number): number {
  return parseInteger('threads', String(v), 1, 1024);
}

function checkFamily(option: string, v: unknown): Family | undefined {
  if (v === undefined || v === 'peft' || v === 'kohya' || v === 'diffusers') return v;
  throw new UsageError(`${option} must be peft, kohya or diffusers, got ${JSON.stringify(v)}`);
}
