/**
 * Byte allocation across layers. Each layer offers candidates (a setting with its stored bytes
 * and measured relative error); allocation picks one per layer.
 *
 * - maxError: per layer, the fewest bytes whose error ≤ E (ties: lower error). A layer where no
 *   candidate meets E gets its lowest-error candidate and is reported as unmet.
 * - budget (for --ratio): minimize the energy-weighted squared error Σ ‖ΔW_l‖²·err_l² subject to
 *   Σ bytes ≤ budget, by Lagrangian relaxation: each layer minimizes energy·err² + λ·bytes and λ
 *   is bisected until the total fits. This is optimal on the lower convex hull of each layer's
 *   (bytes, squared error) curve, the classic rate–distortion allocation. fillBudget then spends
 *   what the hull's discrete steps leave over, and nearOptimal says which candidates of a
 *   predicted table are worth measuring at a given λ.
 */
export interface Candidate {
  bytes: number;
  error: number;
}

export interface Allocation {
  choice: number[];
  /** Layers where no candidate met the bound. */
  unmet: number[];
}

export interface BudgetAllocation extends Allocation {
  /** The multiplier the choice is optimal for (0 when the budget does not bind). */
  lambda: number;
}

export function allocateMaxError(tables: Candidate[][], maxError: number): Allocation {
  const choice: number[] = [], unmet: number[] = [];
  tables.forEach((cands, layer) => {
    let best = -1;
    cands.forEach((c, i) => {
      if (c.error > maxError) return;
      if (best < 0 || c.bytes < cands[best].bytes || (c.bytes === cands[best].bytes && c.error < cands[best].error)) best = i;
    });
    if (best < 0) {
      unmet.push(layer);
      best = argmin(cands.map((c) => c.error));
    }
    choice.push(best);
  });
  return { choice, unmet };
}

export function allocateBudget(tables: Candidate[][], energies: number[], budget: number): BudgetAllocation {
  const pick = (lambda: number): number[] =>
    tables.map((cands, layer) => argmin(cands.map((c) => energies[layer] * c.error * c.error + lambda * c.bytes)));
  const total = (choice: number[]): number => choice.reduce((acc, ci, layer) => acc + tables[layer][ci].bytes, 0);
  let lo = 0;
  const free = pick(0);
  if (total(free) <= budget) return { choice: free, unmet: [], lambda: 0 };
  let hi = 1;
  while (total(pick(hi)) > budget && hi < 1e300) hi *= 4;
  const cheapest = tables.map((cands) => argmin(cands.map((c) => c.bytes)));
  if (total(pick(hi)) > budget) return { choice: cheapest, unmet: tables.map((_, i) => i), lambda: hi };
  for (let it = 0; it < 200; it++) {
    const mid = Math.sqrt(Math.max(lo, hi * 1e-30) * hi);
    if (total(pick(mid)) <= budget) hi = mid;
    else lo = mid;
    if (hi - lo <= 1e-12 * hi) break;
  }
  return { choice: pick(hi), unmet: [], lambda: hi };
}

/**
 * Spends what a budget allocation leaves over: the Lagrangian choice sits on hull vertices, so up
 * to one step of each layer's curve stays unspent. Greedily, while some change fits the room left,
 * takes the one that lowers Σ energy·err² most per byte (any candidate of any layer with less error
 * than the layer's current one; ties: the earlier layer, then candidate). Never raises the error,
 * never exceeds the budget.
 */
export function fillBudget(tables: Candidate[][], energies: number[], choice: readonly number[], budget: number): number[] {
  const out = [...choice];
  let room = budget - out.reduce((acc, ci, layer) => acc + tables[layer][ci].bytes, 0);
  for (;;) {
    let best: { rate: number; layer: number; ci: number; bytes: number } | undefined;
    tables.forEach((cands, layer) => {
      const cur = cands[out[layer]];
      cands.forEach((c, ci) => {
        const extra = c.bytes - cur.bytes;
        const gain = energies[layer] * (cur.error * cur.error - c.error * c.error);
        if (!(gain > 0) || extra > room) return;
        const rate = extra <= 0 ? Infinity : gain / extra;
        if (best === undefined || rate > best.rate) best = { rate, layer, ci, bytes: extra };
      });
    });
    if (best === undefined) return out;
    out[best.layer] = best.ci;
    room -= best.bytes;
  }
}

/**
 * The candidates of one layer worth measuring when its table is only predicted: those whose
 * predicted cost energy·err² + λ'·bytes is within `slack` (relative) of the layer's cheapest for
 * some λ' in [λ/spread, λ·spread] (a geometric grid of 64 points). With λ = 0 (a budget that does
 * not bind) that is the least-error candidates.
 */
export function nearOptimal(cands: Candidate[], energy: number, lambda: number, spread: number, slack: number): number[] {
  const keep = new Set<number>();
  const steps = lambda > 0 ? 64 : 1;
  for (let g = 0; g < steps; g++) {
    const l = lambda > 0 ? lambda * spread ** (2 * (g / (steps - 1)) - 1) : 0;
    let min = Infinity;
    const cost = cands.map((c) => energy * c.error * c.error + l * c.bytes);
    for (const x of cost) if (x < min) min = x;
    cost.forEach((x, i) => { if (x <= min + slack * Math.abs(min)) keep.add(i); });
  }
  return [...keep].sort((a, b) => a - b);
}

function argmin(values: number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] < values[best]) best = i;
  return best;
}
