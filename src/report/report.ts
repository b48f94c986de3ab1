/**
 * The compress report is data first (JSON with --json / --report), rendered to text for people.
 * Every layer appears; nothing is dropped, and the honest totals come first.
 */
import type { Strategy } from '../pipeline/settings.js';
import type { Family, LayerKind } from '../formats/layer.js';
import type { BasisFamily } from '../core/basis.js';
import { describeQuant, type QuantSpec } from '../core/quantize.js';

export interface LayerReport {
  name: string;
  kind: LayerKind;
  dOut: number;
  dIn: number;
  sourceRank: number;
  rank: number;
  basis: BasisFamily;
  k: number;
  l: number;
  quantA: QuantSpec;
  quantB: QuantSpec;
  paramsBefore: number;
  paramsAfter: number;
  /** The layer's factors stored as fp16 (the usual LoRA distribution format). */
  fp16BytesBefore: number;
  /** Coefficient bytes actually stored (codes + scales). */
  bytesAfter: number;
  /** Relative Frobenius error of what is stored. */
  error: number;
  /** Error of the expanded LoRA, whose factors are rounded to the source dtypes. */
  deliveredError: number;
  /** Error of the fit before rounding coefficients. */
  fitError: number;
  /** ‖ΔW‖² of the source layer. */
  energy: number;
  /** Best SVD truncation with the same number of parameters (Eckart–Young). */
  svdErrorSameParams: number;
  /** Best SVD truncation stored in fp16 within the same bytes (what kohya's resize_lora can do). */
  svdFp16ErrorSameBytes: number;
  /** Rate–distortion estimates at this layer's error (src/core/rd-estimate.ts): Gaussian model and isotropic rank-1 bound, bytes. */
  rdGaussianBytes: number;
  rdBoundBytes: number;
  /** Bits per kept degree of freedom the stored coefficients spend above the rank-1 bound. */
  rdGapBitsPerDof: number;
}

export interface CompressTotals {
  layers: number;
  paramsBefore: number;
  paramsAfter: number;
  fp16BytesBefore: number;
  coefficientBytes: number;
  passthroughBytes: number;
  inputBytes: number;
  outputBytes: number;
  /** sqrt(Σ energy·err² / Σ energy): the error of the whole adapter's update. */
  energyWeightedError: number;
  maxError: number;
  /** Worst layer of the expanded LoRA (factors rounded to the source dtypes). */
  maxDeliveredError: number;
  /** inputBytes / outputBytes */
  fileRatio: number;
  /** fp16 LoRA factor bytes / coefficient bytes */
  fp16Ratio: number;
  /**
   * fp16 LoRA factor bytes / (outputBytes - passthroughBytes): like fp16Ratio, but charging the NOLA
   * file's whole description (safetensors header, document) to the coefficients.
   */
  fileFp16Ratio: number;
  /** fp16 LoRA factor bytes / Σ rdGaussianBytes, and / Σ rdBoundBytes: the ratios the estimates allow at each layer's error. */
  rdGaussianRatio: number;
  rdBoundRatio: number;
  /** parameters before / after */
  paramRatio: number;
  /** Largest resident set of the compress process (all threads), bytes; 0 where unknown. */
  peakRssBytes: number;
}

export interface CompressReport {
  tool: 'nola';
  command: 'compress';
  input: string;
  output: string;
  family: Family;
  strategy: Strategy;
  totals: CompressTotals;
  layers: LayerReport[];
  warnings: string[];
}

export function buildCompressReport(a: {
  input: string;
  output: string;
  family: Family;
  strategy: Strategy;
  layers: LayerReport[];
  passthroughBytes: number;
  inputBytes: number;
  outputBytes: number;
  warnings: string[];
  peakRssBytes?: number;
}): CompressReport {
  const sum = (f: (l: LayerReport) => number): number => a.layers.reduce((acc, l) => acc + f(l), 0);
  const energy = sum((l) => l.energy);
  const totals: CompressTotals = {
    layers: a.layers.length,
    paramsBefore: sum((l) => l.paramsBefore),
    paramsAfter: sum((l) => l.paramsAfter),
    fp16BytesBefore: sum((l) => l.fp16BytesBefore),
    coefficientBytes: sum((l) => l.bytesAfter),
    passthroughBytes: a.passthroughBytes,
    inputBytes: a.inputBytes,
    outputBytes: a.outputBytes,
    energyWeightedError: energy > 0 ? Math.sqrt(sum((l) => l.energy * l.error * l.error) / energy) : 0,
    maxError: a.layers.reduce((m, l) => Math.max(m, l.error), 0),
    maxDeliveredError: a.layers.reduce((m, l) => Math.max(m, l.deliveredError), 0),
    fileRatio: a.inputBytes / a.outputBytes,
    fp16Ratio: sum((l) => l.fp16BytesBefore) / Math.max(1, sum((l) => l.bytesAfter)),
    fileFp16Ratio: sum((l) => l.fp16BytesBefore) / Math.max(1, a.outputBytes - a.passthroughBytes),
    paramRatio: sum((l) => l.paramsBefore) / Math.max(1, sum((l) => l.paramsAfter)),
    rdGaussianRatio: sum((l) => l.fp16BytesBefore) / Math.max(1, sum((l) => l.rdGaussianBytes)),
    rdBoundRatio: sum((l) => l.fp16BytesBefore) / Math.max(1, sum((l) => l.rdBoundBytes)),
    peakRssBytes: a.peakRssBytes ?? 0,
  };
  const warnings = [...a.warnings];
  if (totals.energyWeightedError > 0.5) {
    warnings.push(
      `these settings keep only ${pct(1 - totals.energyWeightedError ** 2)} of the adapter's energy ` +
        `(error ${totals.energyWeightedError.toFixed(3)}): a fixed random subspace captures about (k/d_in)·(l/d_out) of each ` +
        `component, so the compressed adapter will not behave like the original. Use the default (--max-error 0.1) or --ratio for a faithful file.`,
    );
  }
  return { tool: 'nola', command: 'compress', input: a.input, output: a.output, family: a.family, strategy: a.strategy, totals, layers: a.layers, warnings };
}

/** "int5", or "int4/int6", or with segments "int5×20480+int4×12288/int5". */
export function describePair(a: QuantSpec, b: QuantSpec): string {
  const da = describeQuant(a), db = describeQuant(b);
  return da === db ? da : `${da}/${db}`;
}

export function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(2)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** Short human summary: totals, the worst layers, warnings. */
export function renderCompressText(r: CompressReport, worst = 5): string {
  const t = r.totals;
  const lines = [
    `nola compress: ${r.input} -> ${r.output}`,
    `  format ${r.family}, ${t.layers} layers, strategy ${describeStrategy(r)}`,
    `  size   ${formatBytes(t.inputBytes)} -> ${formatBytes(t.outputBytes)} (${t.fileRatio.toFixed(2)}x smaller file; ` +
      `coefficients ${formatBytes(t.coefficientBytes)} vs fp16 factors ${formatBytes(t.fp16BytesBefore)}: ${t.fp16Ratio.toFixed(2)}x, ` +
      `${t.fileFp16Ratio.toFixed(2)}x with the file's header and document; passthrough ${formatBytes(t.passthroughBytes)})`,
    `  error  energy-weighted ${t.energyWeightedError.toFixed(4)}, worst layer ${t.maxError.toFixed(4)}` +
      `${t.maxDeliveredError > t.maxError + 5e-5 ? ` (${t.maxDeliveredError.toFixed(4)} once expanded to the source dtypes)` : ''} (relative Frobenius error of ΔW)`,
  ];
  if (t.rdBoundRatio > 0 && Number.isFinite(t.rdBoundRatio)) {
    lines.push(`  limit  at these errors a data-free coder could reach about ${t.rdBoundRatio.toFixed(2)}x vs fp16 (isotropic rank-1 bound; ` +
      `Gaussian estimate ${t.rdGaussianRatio.toFixed(2)}x); this file ${t.fileFp16Ratio.toFixed(2)}x = ${pct(t.fileFp16Ratio / t.rdBoundRatio)} of the bound`);
  }
  const sorted = [...r.layers].sort((a, b) => b.error - a.error).slice(0, worst);
  if (sorted.length > 0) {
    lines.push(`  worst layers (error | svd same params | svd fp16 same bytes | rank k l quant):`);
    for (const l of sorted) {
      lines.push(
        `    ${l.error.toFixed(4)} | ${l.svdErrorSameParams.toFixed(4)} | ${l.svdFp16ErrorSameBytes.toFixed(4)} | ` +
          `r${l.rank} k${l.k} l${l.l} ${describePair(l.quantA, l.quantB)}  ${l.name}`,
      );
    }
  }
  for (const w of r.warnings) lines.push(`  warning: ${w}`);
  return lines.join('\n');
}

function describeStrategy(r: CompressReport): string {
  const s = r.strategy;
  if (s.kind === 'fixed') return `fixed (${s.basis} basis, k=${s.coeffsA}, l=${s.coeffsB}, rank ${s.rank}, ${s.quant})`;
  const target = 'maxError' in s.target ? `max error ${s.target.maxError}` : `ratio ${s.target.ratio}x vs fp16`;
  return `budget (${target}, rank ${s.rank}, precisions ${s.quants.join('/')}, orthogonal basis)`;
}
