/**
 * Byte allocation across layers. Each layer offers candidates (a setting with its stored bytes
 * and measured relative error); allocation picks one per layer.
 *
 * - maxError: per layer, the fewest bytes whose error ≤ E (ties: lower error). A layer where no
 *   candidate meets E gets its lowest-error candidate and is reported as unmet.
 * - budget (for --ratio): minimize the energy-weighted squared error Σ ‖ΔW_l‖²·err_l² subject to
 *   Σ bytes ≤ budget, by Lagrangian relaxation: each layer minimizes energy·err² + λ·bytes and λ
 *   is bisected until the total fits. This is optimal on the lower convex hull of each layer's
 *   (bytes, squared error) curve, the classic rate–distortion allocation.
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

export function allocateBudget(tables: Candidate[][], energies: number[], budget: number): Allocation {
  const pick = (lambda: number): number[] =>
    tables.map((cands, layer) => argmin(cands.map((c) => energies[layer] * c.error * c.error + lambda * c.bytes)));
  const total = (choice: number[]): number => choice.reduce((acc, ci, layer) => acc + tables[layer][ci].bytes, 0);
  let lo = 0;
  const free = pick(0);
  if (total(free) <= budget) return { choice: free, unmet: [] };
  let hi = 1;
  while (total(pick(hi)) > budget && hi < 1e300) hi *= 4;
  const cheapest = tables.map((cands) => argmin(cands.map((c) => c.bytes)));
  if (total(pick(hi)) > budget) return { choice: cheapest, unmet: tables.map((_, i) => i) };
  for (let it = 0; it < 200; it++) {
    const mid = Math.sqrt(Math.max(lo, hi * 1e-30) * hi);
    if (total(pick(mid)) <= budget) hi = mid;
    else lo = mid;
    if (hi - lo <= 1e-12 * hi) break;
  }
  return { choice: pick(hi), unmet: [] };
}

function argmin(values: number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] < values[best]) best = i;
  return best;
}
