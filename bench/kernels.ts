/**
 * Single-thread throughput of the uniform-basis kernels, in basis values per second: one
 * synthesis and one analysis over a k×n basis, best of a few repetitions, for every kernel
 * implementation this runtime has.
 */
import { colKeys, rowKey } from '../src/core/generator.js';
import { tsKernels, wasmKernels, type UniformKernels } from '../src/core/kernels/index.js';
import { decodeRice, encodeRice } from '../src/core/rice.js';

export interface KernelRate {
  kernels: string;
  k: number;
  n: number;
  synthPerSecond: number;
  analyzePerSecond: number;
  /** The float32 analysis (used where k ≤ n/4). */
  analyzeF32PerSecond: number;
}

export function measureKernels(sizes: Array<[number, number]>, reps = 3): KernelRate[] {
  const impls: UniformKernels[] = [wasmKernels(), tsKernels].filter((x): x is UniformKernels => x !== null);
  const out: KernelRate[] = [];
  for (const [k, n] of sizes) {
    const rk = Int32Array.from({ length: k }, (_, i) => rowKey(12345, i));
    const ck = colKeys(n);
    const c = Float64Array.from({ length: k }, (_, i) => Math.sin(i + 1));
    const x = Float64Array.from({ length: n }, (_, j) => Math.cos(j));
    for (const impl of impls) {
      const o = new Float64Array(n), lanes = new Float64Array(4 * k);
      let s = Infinity, a = Infinity, a32 = Infinity;
      for (let r = 0; r < (impl.name === 'ts' ? 1 : reps); r++) {
        let t = performance.now();
        impl.synth(rk, c, ck, o);
        s = Math.min(s, performance.now() - t);
        t = performance.now();
        impl.analyze(rk, ck, x, lanes);
        a = Math.min(a, performance.now() - t);
        t = performance.now();
        impl.analyzeF32(rk, ck, x, lanes);
        a32 = Math.min(a32, performance.now() - t);
      }
      out.push({ kernels: impl.name, k, n, synthPerSecond: (k * n) / (s / 1000), analyzePerSecond: (k * n) / (a / 1000), analyzeF32PerSecond: (k * n) / (a32 / 1000) });
    }
  }
  return out;
}

export interface RiceRate {
  /** Values per block and the step relative to the values' spread (1 = one standard deviation). */
  n: number;
  step: number;
  bitsPerValue: number;
  encodePerSecond: number;
  decodePerSecond: number;
}

/**
 * Single-thread throughput of the rice coding (src/core/rice.ts) on Gaussian values, at steps that
 * give about 3.5 and 5.4 bits per value (the range --max-error 0.1 lands in): values per second.
 */
export function measureRice(n = 4_000_000, steps = [0.4, 0.1], reps = 3): RiceRate[] {
  // Box–Muller over a fixed LCG: the same values on every run.
  let s = 1;
  const next = (): number => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return (s + 1) / 4294967297; };
  const v = Float64Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next()));
  const out = new Float64Array(n);
  return steps.map((step) => {
    let enc = Infinity, dec = Infinity, bytes = 0;
    for (let r = 0; r < reps; r++) {
      let t = performance.now();
      const block = encodeRice(v, step).bytes;
      enc = Math.min(enc, performance.now() - t);
      bytes = block.length;
      t = performance.now();
      decodeRice(block, n, out);
      dec = Math.min(dec, performance.now() - t);
    }
    return { n, step, bitsPerValue: (8 * bytes) / n, encodePerSecond: n / (enc / 1000), decodePerSecond: n / (dec / 1000) };
  });
}
