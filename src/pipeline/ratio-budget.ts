/**
 * --ratio X: the whole file about X times smaller than the source's factors in fp16, at the least
 * energy-weighted error (docs/ALGORITHM.md, "--ratio X").
 *
 * 1. Tables. With rice coding (the default) every layer's candidates (rank × layout × RICE_LADDER)
 *    are first predicted in closed form ('predict': the spectrum only); the allocation on the
 *    predictions gives λ; each layer then measures, as stored, only the candidates whose predicted
 *    cost is near its optimum for some λ' near λ ('measure', nearOptimal, SPREAD and SLACK); allocation on what is
 *    measured gives a new λ, and the round repeats for candidates not yet measured (usually one
 *    more round, a few layers). With fixed-size precisions (bytes exact) each rank's diagonal of
 *    precision pairs is measured first and the other pairs' errors predicted from it (predictPairs).
 * 2. Choice. Lagrangian allocation on the measured rows, then fillBudget for what its discrete
 *    steps leave, both against the file's exact bytes: the container's own (header, compressed
 *    document) are computed from the measured layers as compress will write them.
 * 3. Recompute. Each layer's chosen setting is fitted and stored once more ('compress'): measuring
 *    is deterministic, so it stores what was measured.
 *
 * Rounds and choices depend only on the tables, never on which worker ran a layer.
 */
import type { Logger } from 'pino';
import { allocateBudget, fillBudget, nearOptimal, type Candidate } from '../core/allocate.js';
import type { LayerSpec } from '../formats/layer.js';
import { candidateIndices, pairDiagonal, predictPairs, type CandidateIndex, type MeasuredRow } from './layer-strategy.js';
import { mapLayers, type FitOutcome, type FitPool, type FitTask } from './parallel.js';
import type { BudgetStrategy, CompressSettings } from './settings.js';

/** A stored layer as far as the container's size is concerned. */
export type StoredShape = MeasuredRow['stored'];

/** How a file's bytes follow from its layers (compress's container; src/pipeline/compress.ts ratioPricing). */
export interface RatioPricing {
  /**
   * The container's own bytes (8-byte length, header, compressed document) for a budget before
   * anything is measured (every layer in a placeholder of its longest description).
   */
  estimateOverhead: (budget: number) => number;
  /** The file's bytes besides passthrough tensors, for measured layers as compress will store them. */
  fileBytes: (stored: StoredShape[]) => number;
  /** Whether compress stores this measured layer as nothing (it keeps nothing of its update): it then costs no coefficient bytes. */
  storesNothing: (stored: StoredShape) => boolean;
}

/** The byte budget of --ratio X for a file: the whole file's, and the coefficients' before anything is measured. */
export interface RatioBudget {
  ratio: number;
  fp16Bytes: number;
  /** fp16 bytes / X: what the whole file (passthrough tensors aside) may take. */
  budget: number;
  /** The estimated container's bytes. */
  overhead: number;
  /** The container alone would take more than half the budget: the coefficients get all of it, and the file falls short. */
  tiny: boolean;
  coefficientBudget: number;
}

/** The source's LoRA factors' bytes had they been stored in fp16: what --ratio X divides. */
export function fp16FactorBytes(layers: readonly LayerSpec[]): number {
  return layers.reduce((acc, l) => acc + 2 * l.rank * (l.dIn + l.dOut), 0);
}

export function ratioBudget(layers: readonly LayerSpec[], ratio: number, pricing: RatioPricing): RatioBudget {
  const fp16Bytes = fp16FactorBytes(layers);
  // --ratio X is about the whole file: the header and the compressed document come out of the budget.
  const budget = fp16Bytes / ratio;
  const overhead = pricing.estimateOverhead(budget);
  const tiny = overhead > budget / 2;
  return { ratio, fp16Bytes, budget, overhead, tiny, coefficientBudget: tiny ? budget : budget - overhead };
}

/**
 * The choice for measured tables (step 2 of the module comment) and the λ it is optimal for. What a
 * row costs is what the file will hold: a layer that keeps nothing is stored as nothing.
 */
export function chooseForRatio(tables: MeasuredRow[][], energies: number[], b: RatioBudget, pricing: RatioPricing): { choice: number[]; lambda: number } {
  const priced = tables.map((rows) => rows.map((r) => (pricing.storesNothing(r.stored) ? { ...r, bytes: 0 } : r)));
  if (!b.tiny) return chooseForFile(priced, energies, b.budget - FILE_MARGIN, b.coefficientBudget, pricing.fileBytes);
  const { choice, lambda } = allocateBudget(priced, energies, b.budget);
  return { choice: fillBudget(priced, energies, choice, b.budget), lambda };
}

export interface RatioRequest {
  layers: readonly LayerSpec[];
  strategy: BudgetStrategy & { target: { ratio: number } };
  seed: number;
  fit: CompressSettings['fit'];
  pool: FitPool;
  readTask: (spec: LayerSpec, job: FitTask['job']) => Promise<FitTask>;
  /** Called with each finished job's outcome (warnings), and progress as a fraction of the layers. */
  onDone: (o: FitOutcome, layer: number, fraction: number) => void;
  pricing: RatioPricing;
  log?: Pick<Logger, 'warn'> & Partial<Pick<Logger, 'debug'>>;
  /** Which candidates are measured: 'near' (default) those nearOptimal picks; 'all' every one (the yardstick of tests and benchmarks). */
  measure?: 'near' | 'all';
}

/**
 * Measure the candidates whose predicted cost is within SLACK (relative) of the layer's optimum for
 * some λ' within a factor SPREAD of λ either way. At 3 and 0.05 (6–16% of the candidates on the
 * shared adapters and a 7B-shaped block at --ratio 8) the error is within 0.15% of the one from
 * every candidate measured; 3 and 0.1 came within 0.05% for 30–40% more time, 2 and 0.05 0.2–0.4% for
 * 10% less (docs/PERFORMANCE.md, "--ratio X").
 */
const SPREAD = 3;
const SLACK = 0.05;
/** Rounds of measurement at most (the second usually adds a few candidates, the third none). */
const MAX_ROUNDS = 4;
/** Bytes kept free of the budget in the exact choice: the real document's hashes deflate a byte or two differently from the placeholders. */
const FILE_MARGIN = 16;

export async function fitToRatio(req: RatioRequest): Promise<FitOutcome[]> {
  const { layers, strategy, seed, fit, pool } = req;
  const rice = strategy.quants.includes('rice');
  const passes = 3;
  // Rice: the ladder predicted in closed form. Fixed-size codes: each rank's diagonal (a = b) measured, the rest predicted from it.
  const indices = layers.map((spec) => candidateIndices(spec, strategy));
  const diagonals = rice ? [] : layers.map((spec) => pairDiagonal(spec, strategy));
  const first = await mapLayers(pool, layers.length,
    (i) => req.readTask(layers[i], rice ? { kind: 'predict', strategy } : { kind: 'measure', strategy, seed, fit, indices: diagonals[i].map((c) => indices[i][c]) }),
    (i, o) => req.onDone(o, i, 1 / passes));
  const measured = layers.map(() => new Map<number, MeasuredRow>());
  const predicted = rice ? first.map((o) => o.predicted!) : first.map((o, i) => {
    diagonals[i].forEach((c, j) => measured[i].set(c, o.table![j]));
    return predictPairs(layers[i], strategy, diagonals[i], o.table!);
  });
  const energies = first.map((o) => o.sigma.reduce((acc, s) => acc + s * s, 0));
  const b = ratioBudget(layers, strategy.target.ratio, req.pricing);
  if (b.tiny) {
    req.log?.warn(`--ratio ${b.ratio}: the file's header and layer document take about ${b.overhead} bytes, ` +
      `more than half of the ${Math.round(b.budget)}-byte budget; the coefficients get the whole budget and the file will be less than ${b.ratio}x smaller`);
  }
  const choose = (tables: MeasuredRow[][]): { choice: number[]; lambda: number } => chooseForRatio(tables, energies, b, req.pricing);
  const tables = await measureNearOptimal(req, indices, predicted, measured, energies, b.coefficientBudget, choose, 1 / passes);
  const { choice } = choose(tables);
  const file = req.pricing.fileBytes(choice.map((ci, i) => tables[i][ci].stored));
  if (!b.tiny && file > b.budget) {
    req.log?.warn(`--ratio ${b.ratio}: even the smallest settings measured leave the file at ${file} bytes, over its ${Math.round(b.budget)}-byte budget ` +
      `(${(b.fp16Bytes / file).toFixed(2)}x instead of ${b.ratio}x); ask for a smaller ratio`);
  }
  return mapLayers(pool, layers.length, (i) => req.readTask(layers[i], { kind: 'compress', settings: tables[i][choice[i]].settings }),
    (i, o) => req.onDone(o, i, 1 / passes));
}

/**
 * Rounds of measurement near the choice's λ (step 1 of the module comment): the first λ from the
 * predictions at the estimated coefficient budget, each later one from `choose` on what is measured
 * (the file priced exactly, so a budget the estimate got wrong moves λ, and the next round measures
 * around it). Returns each layer's measured rows.
 */
async function measureNearOptimal(req: RatioRequest, indices: CandidateIndex[][], predicted: Candidate[][], measured: Array<Map<number, MeasuredRow>>, energies: number[],
  coefficientBudget: number, choose: (tables: MeasuredRow[][]) => { lambda: number }, fraction: number): Promise<MeasuredRow[][]> {
  const { layers, strategy, seed, fit, pool } = req;
  const rows = (): MeasuredRow[][] => measured.map((m) => [...m.keys()].sort((a, b) => a - b).map((c) => m.get(c)!));
  let lambda = allocateBudget(predicted, energies, coefficientBudget).lambda;
  let rounds = 0;
  for (let round = 0; round < MAX_ROUNDS; round++, rounds++) {
    const wanted = predicted.map((p, i) => (req.measure === 'all' ? p.map((_, c) => c) : nearOptimal(p, energies[i], lambda, SPREAD, SLACK))
      .filter((c) => !measured[i].has(c)));
    const need = wanted.flatMap((w, i) => (w.length > 0 ? [i] : []));
    if (need.length === 0) break;
    await mapLayers(pool, need.length, (j) => req.readTask(layers[need[j]], { kind: 'measure', strategy, seed, fit, indices: wanted[need[j]].map((c) => indices[need[j]][c]) }),
      (j, o) => {
        const i = need[j];
        wanted[i].forEach((c, x) => measured[i].set(c, o.table![x]));
        // The first round measures every layer; later ones a few, and do not move the progress.
        req.onDone(o, i, round === 0 ? fraction : 0);
      });
    lambda = choose(rows()).lambda;
  }
  const count = (t: ArrayLike<unknown>[]): number => t.reduce((acc, x) => acc + x.length, 0);
  req.log?.debug?.(`--ratio ${strategy.target.ratio}: measured ${count(measured.map((m) => [...m.keys()]))} of ${count(predicted)} candidates in ${rounds} rounds`);
  return rows();
}

/**
 * The choice whose whole file fits `room` bytes (step 2): allocate for a coefficient budget, price
 * the file exactly, shrink the coefficient budget by any excess and allocate again; then fill what
 * is left, keeping a fill only if its file (its layouts may lengthen the document) still fits.
 * λ is the allocation's (before the fill).
 */
function chooseForFile(tables: MeasuredRow[][], energies: number[], room: number, coefficientBudget: number,
  fileBytes: (stored: StoredShape[]) => number): { choice: number[]; lambda: number } {
  const bytesOf = (c: number[]): number => fileBytes(c.map((ci, i) => tables[i][ci].stored));
  let coefficients = coefficientBudget;
  let { choice, lambda } = allocateBudget(tables, energies, coefficients);
  for (let i = 0; i < 6; i++) {
    const excess = bytesOf(choice) - room;
    if (excess <= 0) break;
    coefficients -= excess;
    ({ choice, lambda } = allocateBudget(tables, energies, coefficients));
  }
  const coefficientBytes = (c: number[]): number => c.reduce((acc, ci, i) => acc + tables[i][ci].bytes, 0);
  let left = room - bytesOf(choice);
  for (let i = 0; i < 6 && left > 0; i++) {
    const filled = fillBudget(tables, energies, choice, coefficientBytes(choice) + left);
    const excess = bytesOf(filled) - room;
    if (excess <= 0) return { choice: filled, lambda };
    left -= excess;
  }
  return { choice, lambda };
}
