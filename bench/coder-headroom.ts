/**
 * `node dist/bench/coder-headroom.js ADAPTER… [--max-error 0.1]`: how many bytes an ideal entropy
 * coder would save over the Rice code on the coefficients nola stores, at the same quantizer and the
 * same error (issue #11, "a better entropy coder"). A model, not a coder: nothing is encoded.
 *
 * Each layer's update is split into its rank-1 components (B = U·S^½, A = S^½·Vᵀ, as the
 * orthogonal-components layout codes them): row i of A holds d_in values of variance σ_i/d_in, column
 * i of B d_out values of variance σ_i/d_out, and an error δ in them costs σ_i·‖δ‖² in ΔW. Each factor
 * of each component gets its own uniform step; a component may also be dropped (its whole energy
 * becomes error). The cheapest allocation meeting Σ error = E²·‖ΔW‖² per layer is found by a
 * Lagrange multiplier (bisection), once pricing a value at step t by the Rice model
 * (src/core/rice-model.ts: best k, what the file pays) and once by the entropy of the quantized
 * levels (what an arithmetic/rANS coder with a matched model approaches). Same quantizer, same
 * reconstruction points, same error: the difference is the coder alone. Block headers and the
 * document are left out of both. Prints, per adapter, the two totals and their ratio, and the
 * same split by how many bits per value a component's values are coded at.
 */
import { openLora, readFactors } from '../src/pipeline/source.js';
import { targetSvd } from '../src/core/fit.js';
import { gaussianLevelEntropy, gaussianRiceEstimate } from '../src/core/rice-model.js';

/** Normalized steps t = Δ/σ_value tried (a fine log grid from nothing-but-zeros to ~9 bits). */
const STEPS = Array.from({ length: 400 }, (_, i) => 1e-3 * Math.exp((i * Math.log(1e4 / 1e-3)) / 399)).filter((t) => t <= 12);

interface Price { bits: number; mse: number }
const rice: Price[] = STEPS.map((t) => { const e = gaussianRiceEstimate(1, t); return { bits: e.bitsPerValue, mse: e.mse }; });
const entropy: Price[] = STEPS.map((t, i) => ({ bits: gaussianLevelEntropy(1, t), mse: rice[i].mse }));

interface Component { lambda: number; dIn: number; dOut: number }

/** Bits and error of the cheapest choice for one component at multiplier mu (cost = bits + mu·error). */
function choose(c: Component, mu: number, price: Price[]): { bits: number; err: number } {
  let best = { bits: 0, err: c.lambda, cost: mu * c.lambda }; // dropped
  // Each factor independently: n·b(t) + mu·λ·m(t) (σ_i·n·(σ_i/n)·m = λ·m).
  let bestIn = Infinity, bitsIn = 0, errIn = 0, bestOut = Infinity, bitsOut = 0, errOut = 0;
  for (const p of price) {
    const ci = c.dIn * p.bits + mu * c.lambda * p.mse;
    if (ci < bestIn) { bestIn = ci; bitsIn = c.dIn * p.bits; errIn = c.lambda * p.mse; }
    const co = c.dOut * p.bits + mu * c.lambda * p.mse;
    if (co < bestOut) { bestOut = co; bitsOut = c.dOut * p.bits; errOut = c.lambda * p.mse; }
  }
  if (bestIn + bestOut < best.cost) best = { bits: bitsIn + bitsOut, err: errIn + errOut, cost: bestIn + bestOut };
  return best;
}

/** The layer's bits at total error `budget`, by bisection on the multiplier (log scale). */
function layerBits(comps: Component[], budget: number, price: Price[]): { bits: number; byRate: Map<string, number> } {
  const total = (mu: number): { bits: number; err: number } => comps.reduce((acc, c) => {
    const x = choose(c, mu, price);
    return { bits: acc.bits + x.bits, err: acc.err + x.err };
  }, { bits: 0, err: 0 });
  let lo = -40, hi = 40; // log mu
  for (let i = 0; i < 80; i++) {
    const mid = (lo + hi) / 2;
    if (total(Math.exp(mid)).err > budget) lo = mid; else hi = mid;
  }
  const mu = Math.exp(hi);
  const byRate = new Map<string, number>();
  let bits = 0;
  for (const c of comps) {
    const x = choose(c, mu, price);
    bits += x.bits;
    const perValue = x.bits / (c.dIn + c.dOut);
    const bucket = x.bits === 0 ? 'dropped' : perValue < 1 ? '< 1 bit' : perValue < 2 ? '1-2 bits' : perValue < 3 ? '2-3 bits' : '>= 3 bits';
    byRate.set(bucket, (byRate.get(bucket) ?? 0) + x.bits);
  }
  return { bits, byRate };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const i = args.indexOf('--max-error');
  const maxError = i >= 0 ? Number(args.splice(i, 2)[1]) : 0.1;
  for (const input of args) {
    const lora = await openLora(input);
    let riceBits = 0, entropyBits = 0, fp16 = 0;
    const buckets = new Map<string, [number, number]>();
    try {
      for (const spec of lora.plan.layers) {
        const { a0, b0 } = await readFactors(lora, spec);
        const sigma = targetSvd({ a0, b0, s0: spec.scale }).sigma;
        const comps = Array.from(sigma, (s) => ({ lambda: s * s, dIn: spec.dIn, dOut: spec.dOut })).filter((c) => c.lambda > 0);
        const budget = maxError * maxError * comps.reduce((a, c) => a + c.lambda, 0);
        const r = layerBits(comps, budget, rice), e = layerBits(comps, budget, entropy);
        riceBits += r.bits; entropyBits += e.bits; fp16 += 16 * spec.rank * (spec.dIn + spec.dOut);
        for (const [k, v] of r.byRate) { const x = buckets.get(k) ?? [0, 0]; x[0] += v; buckets.set(k, x); }
        for (const [k, v] of e.byRate) { const x = buckets.get(k) ?? [0, 0]; x[1] += v; buckets.set(k, x); }
      }
    } finally {
      await lora.reader.close();
    }
    const kb = (b: number): string => `${(b / 8 / 1024).toFixed(1)} KiB`;
    process.stdout.write(`${input} at --max-error ${maxError}: Rice-priced ${kb(riceBits)} (${(fp16 / riceBits).toFixed(2)}x vs fp16), ` +
      `entropy-priced ${kb(entropyBits)} (${(fp16 / entropyBits).toFixed(2)}x): an ideal entropy coder saves ${(100 * (1 - entropyBits / riceBits)).toFixed(1)}%\n`);
    for (const k of ['>= 3 bits', '2-3 bits', '1-2 bits', '< 1 bit']) {
      const [rb, eb] = buckets.get(k) ?? [0, 0];
      process.stdout.write(`  components coded at ${k.padEnd(9)} a value: Rice ${kb(rb).padStart(10)}, entropy ${kb(eb).padStart(10)}\n`);
    }
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exitCode = 1;
});
