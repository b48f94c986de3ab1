/**
 * nola compare A B: per-layer relative error between two LoRAs of the same layout (same layer names,
 * any ranks), ‖ΔW_A − ΔW_B‖ / ‖ΔW_A‖ computed in low-rank form (never the d_out × d_in matrix).
 */
import { openLora, readFactors, type OpenLora } from './source.js';
import { lowRankNorm, relativeError } from '../core/lowrank.js';
import { FormatError } from '../errors.js';
import type { Family } from '../formats/layer.js';
import { naturalCompare, updateShape } from './inspect.js';

export interface CompareLayer {
  name: string;
  shape: string;
  rankA: number;
  rankB: number;
  /** ‖ΔW_A − ΔW_B‖ / ‖ΔW_A‖ (1 when ΔW_A is zero and ΔW_B is not). */
  error: number;
  /** ‖ΔW_A‖² */
  energy: number;
}

export interface CompareResult {
  a: string;
  b: string;
  family: Family;
  layers: CompareLayer[];
  /** sqrt(Σ energy·error² / Σ energy) and the worst layer, as compress reports them. */
  energyWeightedError: number;
  maxError: number;
  onlyInA: string[];
  onlyInB: string[];
}

export async function compareLoras(a: string, b: string, family?: Family): Promise<CompareResult> {
  const la = await openLora(a, family);
  let lb: OpenLora | undefined;
  try {
    lb = await openLora(b, family ?? la.plan.family);
    const byName = new Map(lb.plan.layers.map((s) => [s.name, s]));
    const inA = new Set(la.plan.layers.map((s) => s.name));
    const layers: CompareLayer[] = [];
    for (const sa of [...la.plan.layers].sort((x, y) => naturalCompare(x.name, y.name))) {
      const sb = byName.get(sa.name);
      if (sb === undefined) continue;
      if (sa.dIn !== sb.dIn || sa.dOut !== sb.dOut) {
        throw new FormatError(`${lb.file}: layer '${sa.name}' is ${sb.dOut}x${sb.dIn}, ${sa.dOut}x${sa.dIn} in ${la.file}: not the same layout`);
      }
      const { a0, b0 } = await readFactors(la, sa);
      const { a0: a1, b0: b1 } = await readFactors(lb, sb);
      layers.push({
        name: sa.name, shape: updateShape(sa.shapeA, sa.shapeB), rankA: sa.rank, rankB: sb.rank,
        error: relativeError(sa.scale, b0, a0, sb.scale, b1, a1),
        energy: lowRankNorm([{ coef: sa.scale, x: b0, y: a0 }]) ** 2,
      });
    }
    if (layers.length === 0) throw new FormatError(`${la.file} and ${lb.file} have no layer in common: not the same layout`);
    const energy = layers.reduce((acc, l) => acc + l.energy, 0);
    return {
      a: la.file, b: lb.file, family: la.plan.family, layers,
      energyWeightedError: energy > 0 ? Math.sqrt(layers.reduce((acc, l) => acc + l.energy * l.error ** 2, 0) / energy) : 0,
      maxError: layers.reduce((m, l) => Math.max(m, l.error), 0),
      onlyInA: la.plan.layers.map((s) => s.name).filter((n) => !byName.has(n)).sort(naturalCompare),
      onlyInB: lb.plan.layers.map((s) => s.name).filter((n) => !inA.has(n)).sort(naturalCompare),
    };
  } finally {
    await la.reader.close();
    await lb?.reader.close();
  }
}
