/**
 * nola compress --sweep: the size/error trade-off of one file, without writing a NOLA file.
 * Every layer is read once. Each --max-error point runs the same per-layer search as compress in
 * the default format (rice or rANS blocks: the sizes are those compress writes); the layer's whole
 * candidate table (per rank and layout, the rice ladder of steps, each measured as stored) serves
 * every --ratio point, chosen as compress chooses (the whole file priced, the leftover filled; what
 * compress reaches measuring only the candidates near the optimum, within 0.15% on the shared
 * adapters); its spectrum gives the SVD-truncation baseline at the same bounds and sizes. Bytes are
 * the coefficients' (the header and document aside), as compress's report counts them.
 */
import { openLora } from './source.js';
import type { MeasuredRow } from './layer-strategy.js';
import { chooseThreads, createFitPool, jobsHoldThread, mapLayers, type FitOutcome } from './parallel.js';
import { chooseForRatio, fp16FactorBytes, ratioBudget } from './ratio-budget.js';
import { ratioPricing, readFitTask } from './compress.js';
import { FORMAT_VERSION } from '../core/constants.js';
import { PAPER_PRESET, type BudgetStrategy } from './settings.js';
import { truncationError } from '../core/lowrank.js';
import { allocateBudget, allocateMaxError, type Candidate } from '../core/allocate.js';
import type { Family } from '../formats/layer.js';

export interface SweepPoint {
  /** e.g. "--max-error 0.1", "--ratio 8", "--preset paper", "svd fp16 8x" */
  setting: string;
  method: 'nola' | 'svd-fp16' | 'paper';
  /** How the point was chosen: a size (energy-optimal allocation) or a per-layer error bound. */
  target: 'ratio' | 'max-error' | 'fixed';
  bytes: number;
  /** fp16 LoRA factor bytes / bytes */
  ratio: number;
  energyWeightedError: number;
  maxError: number;
}

export interface SweepResult {
  input: string;
  family: Family;
  layers: number;
  fp16Bytes: number;
  points: SweepPoint[];
}

export const SWEEP_MAX_ERRORS = [0.02, 0.05, 0.1, 0.15, 0.2, 0.3];
export const SWEEP_RATIOS = [2, 4, 8, 16, 32];

export async function sweep(a: {
  input: string;
  family?: Family;
  seed: number;
  includePaper: boolean;
  /** Worker threads (default 1: in this thread); the points do not depend on it. */
  threads?: number;
  onProgress?: (done: number, total: number, layer: string) => void;
}): Promise<SweepResult> {
  const lora = await openLora(a.input, a.family);
  try {
    const layers = lora.plan.layers;
    // The default format's coding: from version 3 on, each block rice or rANS, whichever is shorter.
    const strategy: BudgetStrategy = { kind: 'budget', target: { maxError: 0.1 }, rank: 'auto', quants: ['rice'], ...(FORMAT_VERSION >= 3 ? { rans: true } : {}) };
    // Workers only where the fit is long enough to repay their start-up (a sweep is some 50 fits a
    // layer); the paper's point can hold a thread for seconds, so then none on the calling thread.
    const pool = createFitPool(chooseThreads(a.threads ?? 1, layers, strategy), { callingThread: !(a.includePaper && jobsHoldThread(PAPER_PRESET)) });
    let done = 0;
    let outcomes: FitOutcome[];
    try {
      outcomes = await mapLayers(pool, layers.length,
        (i) => readFitTask(lora, layers[i], { kind: 'sweep', strategy, seed: a.seed, maxErrors: SWEEP_MAX_ERRORS, paper: a.includePaper }),
        (i) => a.onProgress?.(++done, layers.length, layers[i].name));
    } finally {
      await pool.close();
    }
    const tables: MeasuredRow[][] = outcomes.map((o) => o.table!);
    const energies = outcomes.map((o) => o.sigma.reduce((acc, v) => acc + v * v, 0));
    // searched[j][l]: layer l compressed under --max-error SWEEP_MAX_ERRORS[j], as compress would.
    const searched: Candidate[][] = SWEEP_MAX_ERRORS.map((_, j) => outcomes.map((o) => o.searched![j]));
    const svd: Candidate[][] = outcomes.map((o, l) => Array.from({ length: layers[l].rank + 1 }, (_, t) => ({ bytes: 2 * t * (layers[l].dIn + layers[l].dOut), error: truncationError(o.sigma, t) })));
    const paper = { bytes: 0, sq: 0, max: 0 };
    outcomes.forEach((o, l) => {
      if (o.paper === undefined) return;
      paper.bytes += o.paper.bytes;
      paper.sq += energies[l] * o.paper.error ** 2;
      paper.max = Math.max(paper.max, o.paper.error);
    });
    const fp16Bytes = fp16FactorBytes(layers);
    const totalEnergy = energies.reduce((x, y) => x + y, 0) || 1;
    const point = (setting: string, method: SweepPoint['method'], target: SweepPoint['target'], tables: Candidate[][], choice: number[]): SweepPoint => {
      const bytes = choice.reduce((acc, c, l) => acc + tables[l][c].bytes, 0);
      return {
        setting, method, target, bytes, ratio: fp16Bytes / Math.max(1, bytes),
        energyWeightedError: Math.sqrt(choice.reduce((acc, c, l) => acc + energies[l] * tables[l][c].error ** 2, 0) / totalEnergy),
        maxError: choice.reduce((acc, c, l) => Math.max(acc, tables[l][c].error), 0),
      };
    };
    const points: SweepPoint[] = [];
    for (const [j, e] of SWEEP_MAX_ERRORS.entries()) {
      points.push(point(`--max-error ${e}`, 'nola', 'max-error', searched[j].map((c) => [c]), layers.map(() => 0)));
      points.push(point(`svd fp16, max error ${e}`, 'svd-fp16', 'max-error', svd, allocateMaxError(svd, e).choice));
    }
    const pricing = ratioPricing(lora, a.seed, FORMAT_VERSION);
    for (const x of SWEEP_RATIOS) {
      const b = ratioBudget(layers, x, pricing);
      const { choice } = chooseForRatio(tables, energies, b, pricing);
      // A layer that keeps nothing is stored as nothing: no bytes, as in compress's report.
      const stored = tables.map((rows) => rows.map((r) => (pricing.storesNothing(r.stored) ? { bytes: 0, error: 1 } : r)));
      points.push(point(`--ratio ${x}`, 'nola', 'ratio', stored, choice));
      points.push(point(`svd fp16 ${x}x`, 'svd-fp16', 'ratio', svd, allocateBudget(svd, energies, fp16Bytes / x).choice));
    }
    if (a.includePaper) {
      points.push({
        setting: '--preset paper', method: 'paper', target: 'fixed', bytes: paper.bytes, ratio: fp16Bytes / paper.bytes,
        energyWeightedError: Math.sqrt(paper.sq / totalEnergy), maxError: paper.max,
      });
    }
    return { input: lora.file, family: lora.plan.family, layers: layers.length, fp16Bytes, points };
  } finally {
    await lora.reader.close();
  }
}
