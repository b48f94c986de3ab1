/**
 * The compress report is data first (JSON with --json / --report), rendered to text for people.
 * Every layer appears; nothing is dropped, and the honest totals come first.
 */
import { PAPER_PRESET, type Strategy } from '../pipeline/settings.js';
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
  /** Error of truncating the source to the NOLA rank alone (Eckart–Young): what the rank choice costs. */
  rankError?: number;
  /** Set when the layer ends above the requested --max-error (see CompressReport.bound). */
  aboveBound?: boolean;
  /** Rate–distortion estimates at this layer's error (src/core/rd-estimate.ts): Gaussian model and isotropic rank-1 bound, bytes. */
  rdGaussianBytes: number;
  rdBoundBytes: number;
  /** Bits per kept degree of freedom the stored coefficients spend above the rank-1 bound. */
  rdGapBitsPerDof: number;
}

/** What limited the fidelity: the rank kept, the random subspace (k, l below full span), or the coefficient precision. */
export type ErrorCause = 'rank' | 'subspace' | 'precision' | 'budget';

/** The --max-error promise and how it was kept. */
export interface BoundCheck {
  maxError: number;
  /** Layers whose stored or expanded error is above maxError. */
  layersAbove: number;
  worst: number;
  worstLayer: string | null;
  /** The option that made them miss (e.g. "--rank 2", "--quant int4"), null when kept. */
  cause: string | null;
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
  /** Present for --max-error (the default): which layers, if any, ended above the bound and why. */
  bound: BoundCheck | null;
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
  const bound = checkBound(a.strategy, a.layers);
  if (bound !== null && bound.layersAbove > 0) warnings.push(boundWarning(bound, a.layers, a.strategy));
  const zeroed = a.layers.filter((l) => Math.max(l.error, l.deliveredError) >= NEARLY_ZEROED);
  if (zeroed.length > 0) warnings.push(zeroedWarning(a.strategy, zeroed));
  if (a.outputBytes > a.inputBytes) {
    warnings.push(
      `the NOLA file is ${formatSizeRatio(a.inputBytes, a.outputBytes)} than its source (${formatBytes(a.outputBytes)} against ${formatBytes(a.inputBytes)}): ` +
        'its own header and document outweigh what the coefficients save, so keep the source file',
    );
  }
  if (totals.energyWeightedError > 0.5) {
    warnings.push(
      `these settings keep only ${pct(1 - totals.energyWeightedError ** 2)} of the adapter's energy ` +
        `(error ${totals.energyWeightedError.toFixed(3)}): ${explainLoss(a.strategy, a.layers)}, ` +
        'so the compressed adapter will not behave like the original. Use the default (--max-error 0.1) or a smaller --ratio for a faithful file.',
    );
  }
  return {
    tool: 'nola', command: 'compress', input: a.input, output: a.output, family: a.family, strategy: a.strategy, totals, bound,
    layers: a.layers, warnings,
  };
}

/** A layer at or above this error keeps (almost) nothing of its update. */
export const NEARLY_ZEROED = 0.9;

function boundError(l: LayerReport): number {
  return Math.max(l.error, l.deliveredError);
}

/** The option behind a setting, as the user typed it. */
/** The rank is the user's choice only when given (--rank N / keep); under a budget with rank auto the budget chose it. */
function userCause(s: Strategy, cause: ErrorCause): ErrorCause {
  if (s.kind === 'budget' && s.rank === 'auto' && cause === 'rank') return 'ratio' in s.target ? 'budget' : 'precision';
  if (s.kind === 'budget' && 'ratio' in s.target && cause === 'precision' && s.quants.length > 1) return 'budget';
  return cause;
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

function optionOf(s: Strategy, cause: ErrorCause): string {
  if (s.kind === 'fixed') {
    if (cause === 'rank') return `--rank ${s.rank}`;
    if (cause === 'precision') return `--quant ${s.quant}`;
    const paper = s.basis === PAPER_PRESET.basis && s.coeffsA === PAPER_PRESET.coeffsA && s.coeffsB === PAPER_PRESET.coeffsB && s.rank === PAPER_PRESET.rank;
    return `${paper ? '--preset paper' : '--coeffs'} (k=${s.coeffsA}, l=${s.coeffsB})`;
  }
  if (cause === 'budget' && 'ratio' in s.target) return `--ratio ${s.target.ratio}`;
  if (cause === 'rank') return `--rank ${s.rank}`;
  return s.quants.length === 1 ? `--quant ${s.quants[0]}` : `--quant fixed (${s.quants.join('/')})`;
}

/**
 * Splits a layer's squared error into what the rank drops (Eckart–Young at the NOLA rank), what the
 * random subspace misses (fit error above that), and what rounding the coefficients adds; the largest part is the cause.
 */
export function causeOf(l: LayerReport): ErrorCause {
  const r2 = (l.rankError ?? 0) ** 2;
  const f2 = Math.max(l.fitError, l.rankError ?? 0) ** 2;
  const e2 = boundError(l) ** 2;
  const parts: Array<[ErrorCause, number]> = [['rank', r2], ['subspace', f2 - r2], ['precision', e2 - f2]];
  return parts.sort((x, y) => y[1] - x[1])[0][0];
}

function checkBound(s: Strategy, layers: LayerReport[]): BoundCheck | null {
  if (s.kind !== 'budget' || !('maxError' in s.target)) return null;
  const maxError = s.target.maxError;
  const above = layers.filter((l) => boundError(l) > maxError);
  for (const l of above) l.aboveBound = true;
  let worst: LayerReport | undefined;
  for (const l of above) if (worst === undefined || boundError(l) > boundError(worst)) worst = l;
  if (worst === undefined) return { maxError, layersAbove: 0, worst: layers.reduce((m, l) => Math.max(m, boundError(l)), 0), worstLayer: null, cause: null };
  return { maxError, layersAbove: above.length, worst: boundError(worst), worstLayer: worst.name, cause: optionOf(s, userCause(s, dominantCause(above))) };
}

function dominantCause(layers: LayerReport[]): ErrorCause {
  const counts = new Map<ErrorCause, number>();
  for (const l of layers) { const c = causeOf(l); counts.set(c, (counts.get(c) ?? 0) + 1); }
  return [...counts].sort((x, y) => y[1] - x[1])[0][0];
}

function boundWarning(b: BoundCheck, layers: LayerReport[], layersStrategy: Strategy): string {
  const above = layers.filter((l) => l.aboveBound);
  const cause = userCause(layersStrategy, dominantCause(above));
  const why = cause === 'rank'
    ? `${b.cause} keeps too little of their spectrum (that rank alone errs by up to ${Math.max(...above.map((l) => l.rankError ?? 0)).toFixed(4)}); raise it or leave --rank out`
    : `${b.cause} is too coarse for them; leave --quant out (rice coding meets the bound) or choose a finer precision`;
  return `${above.length} of ${plural(layers.length, 'layer', 'layers')} ${above.length === 1 ? 'ends' : 'end'} above --max-error ${b.maxError} (worst ${b.worst.toFixed(4)}, ${b.worstLayer}): ${why}`;
}

/**
 * A uniform basis asked for the whole span of a factor (k ≥ rank·d_in, or l ≥ d_out·rank) is a square
 * random matrix: fitted exactly, but so ill-conditioned that rounding its coefficients is amplified
 * many times (a 256-wide factor: f32 exact, f16 0.05, int8 an error above 1). The first such factor
 * of `layers`, for the precision warnings, or null.
 */
function fullSpanUniform(s: Strategy, layers: LayerReport[]): { asked: string; span: number; layer: string } | null {
  if (s.kind !== 'fixed' || s.basis !== 'uniform') return null;
  for (const l of layers) {
    const nA = l.rank * l.dIn, nB = l.dOut * l.rank;
    if (s.coeffsA >= nA) return { asked: `k=${s.coeffsA}`, span: nA, layer: l.name };
    if (s.coeffsB >= nB) return { asked: `l=${s.coeffsB}`, span: nB, layer: l.name };
  }
  return null;
}

function zeroedWarning(s: Strategy, zeroed: LayerReport[]): string {
  const names = zeroed.slice(0, 3).map((l) => `${l.name} (${boundError(l).toFixed(3)})`).join(', ') + (zeroed.length > 3 ? `, … ${zeroed.length - 3} more` : '');
  const causes = new Set(zeroed.map((l) => userCause(s, causeOf(l))));
  const cause: ErrorCause = s.kind === 'budget' && 'ratio' in s.target ? 'budget' : causes.has('subspace') ? 'subspace' : causes.has('rank') ? 'rank' : 'precision';
  const one = zeroed.length === 1;
  const why = cause === 'budget' ? `${optionOf(s, cause)} leaves ${one ? 'it' : 'them'} (almost) no bytes; ask for a smaller ratio, or use --max-error`
    : cause === 'subspace' ? `the random subspace of ${optionOf(s, cause)} misses (almost) all of ${one ? 'its' : 'their'} update`
      : `${optionOf(s, cause)} keeps (almost) nothing of ${one ? 'it' : 'them'}`;
  const span = cause === 'precision' ? fullSpanUniform(s, zeroed) : null;
  const spanWhy = span === null ? '' : `; ${span.asked} covers the whole span (${span.span}) of ${span.layer}'s factor, where the uniform basis is ` +
    `so ill-conditioned that rounding its coefficients is amplified: ask for fewer coefficients, --quant f32, or --basis orthogonal`;
  return `${plural(zeroed.length, 'layer keeps', 'layers keep')} (almost) nothing of ${one ? 'its' : 'their'} update ` +
    `(error ≥ ${NEARLY_ZEROED}): ${names}: ${why}${spanWhy}`;
}

/** Why most of the energy is lost, by the energy-weighted share of each cause. */
function explainLoss(s: Strategy, layers: LayerReport[]): string {
  const share = new Map<ErrorCause, number>();
  for (const l of layers) {
    const r2 = (l.rankError ?? 0) ** 2, f2 = Math.max(l.fitError, l.rankError ?? 0) ** 2, e2 = boundError(l) ** 2;
    share.set('rank', (share.get('rank') ?? 0) + l.energy * r2);
    share.set('subspace', (share.get('subspace') ?? 0) + l.energy * (f2 - r2));
    share.set('precision', (share.get('precision') ?? 0) + l.energy * (e2 - f2));
  }
  const cause = userCause(s, [...share].sort((x, y) => y[1] - x[1])[0][0]);
  if (cause === 'budget') return `${optionOf(s, 'budget')} leaves too few bytes for the layers`;
  if (cause === 'subspace') return 'a fixed random subspace captures about (k/d_in)·(l/d_out) of each component of the update';
  if (cause === 'rank') return `the rank kept (${optionOf(s, 'rank')}) drops most of the spectrum`;
  const span = fullSpanUniform(s, layers);
  return `the coefficient precision (${optionOf(s, 'precision')}) is too coarse` +
    (span === null ? '' : ` for a uniform basis at its whole span (${span.asked}, ${span.span} wide)`);
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

/** A size change as people say it: "8.32x smaller" (or "8.17x larger", as expand's outputs are), never "0.12x". */
export function formatSizeRatio(before: number, after: number): string {
  return after <= before ? `${(before / after).toFixed(2)}x smaller` : `${(after / before).toFixed(2)}x larger`;
}

/** The energy a layer loses, ‖ΔW‖²·err²: what the worst-layers table ranks by. */
function energyLost(l: LayerReport): number {
  return l.energy * l.error * l.error;
}

/** Short human summary: the headline size, the two error figures, the layers that cost the most. Warnings go to the log. */
export function renderCompressText(r: CompressReport, worst = 5): string {
  const t = r.totals;
  const lines = [
    `nola compress: ${r.input} -> ${r.output}`,
    `  format ${r.family}, ${t.layers} layers, strategy ${describeStrategy(r)}`,
    `  size   ${formatBytes(t.inputBytes)} -> ${formatBytes(t.outputBytes)}: ${formatSizeRatio(t.inputBytes, t.outputBytes)} file` +
      (t.passthroughBytes > 0 ? ` (${formatBytes(t.passthroughBytes)} of tensors kept verbatim included)` : ''),
    `  error  ${describeErrors(t.energyWeightedError, t.maxError)}` +
      `${t.maxDeliveredError > t.maxError + 5e-5 ? `; ${t.maxDeliveredError.toFixed(4)} worst once expanded to the source dtypes` : ''}`,
  ];
  if (r.bound !== null && r.bound.layersAbove > 0) lines.push(`  bound  ${r.bound.layersAbove} layers above --max-error ${r.bound.maxError} (marked * below; cause: ${r.bound.cause})`);
  if (t.rdBoundRatio > 0 && Number.isFinite(t.rdBoundRatio)) {
    lines.push(`  limit  at these errors a data-free coder could reach about ${t.rdBoundRatio.toFixed(2)}x vs fp16 (isotropic rank-1 bound; ` +
      `Gaussian estimate ${t.rdGaussianRatio.toFixed(2)}x); this file ${t.fileFp16Ratio.toFixed(2)}x = ${pct(t.fileFp16Ratio / t.rdBoundRatio)} of the bound`);
  }
  const lost = r.layers.reduce((acc, l) => acc + energyLost(l), 0);
  const sorted = [...r.layers].sort((a, b) => energyLost(b) - energyLost(a) || b.bytesAfter - a.bytesAfter).slice(0, worst);
  if (sorted.length > 0) {
    lines.push('  layers that lose the most energy (share of the energy lost | error | bytes | error of plain SVD in fp16 at the same bytes | rank k l quant):');
    for (const l of sorted) {
      lines.push(
        `   ${l.aboveBound ? '*' : ' '}${pct(lost > 0 ? energyLost(l) / lost : 0).padStart(6)} | ${l.error.toFixed(4)} | ${formatBytes(l.bytesAfter).padStart(9)} | ` +
          `${l.svdFp16ErrorSameBytes.toFixed(4)} | r${l.rank}/${l.sourceRank} k${l.k} l${l.l} ${describePair(l.quantA, l.quantB)}  ${l.name}`,
      );
    }
  }
  return lines.join('\n');
}

/** The one phrasing of the two error figures, shared by compress and inspect. */
export function describeErrors(energyWeighted: number, worst: number): string {
  return `energy-weighted ${energyWeighted.toFixed(4)}, worst layer ${worst.toFixed(4)} (relative Frobenius error of ΔW)`;
}

/** The other ratios, for the log (the JSON report has them all). */
export function describeRatios(r: CompressReport): string {
  const t = r.totals;
  return `coefficients ${formatBytes(t.coefficientBytes)} vs the LoRA factors as fp16 ${formatBytes(t.fp16BytesBefore)}: ${t.fp16Ratio.toFixed(2)}x; ` +
    `${t.fileFp16Ratio.toFixed(2)}x counting the file's header and layer document; ${t.paramRatio.toFixed(2)}x fewer parameters`;
}

function describeStrategy(r: CompressReport): string {
  const s = r.strategy;
  if (s.kind === 'fixed') return `fixed (${s.basis} basis, k=${s.coeffsA}, l=${s.coeffsB}, rank ${s.rank}, ${s.quant})`;
  const target = 'maxError' in s.target ? `max error ${s.target.maxError}` : `ratio ${s.target.ratio}x vs fp16`;
  return `budget (${target}, rank ${s.rank}, precisions ${s.quants.join('/')}, orthogonal basis)`;
}
