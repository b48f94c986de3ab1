/**
 * The direct-DFT kernel of src/core/fft.ts as WebAssembly SIMD (module bytes in fft-wasm-module.ts,
 * built by scripts/build-wasm.ts): the same operations as the TypeScript loop, two columns per
 * instruction, so the bits are the same. Each call copies its inputs into the module's memory and
 * the outputs back (O(n·count) against the kernel's O(n²·count)).
 */
import { FFT_WASM_BASE64 } from './fft-wasm-module.js';

interface Exports {
  memory: WebAssembly.Memory;
  dft(re: number, im: number, tc: number, ts: number, ore: number, oim: number, n: number, count: number): void;
}

/**
 * out[k·count + q] for q < count & ~1 (re and im parts) of the n-point DFT of the columns
 * x[off + j·count + q]; tCos/tSin as DirectPlan's tables. Odd last columns are the caller's.
 */
export type DftKernel = (
  re: Float64Array, im: Float64Array, off: number, count: number, n: number,
  tCos: Float64Array, tSin: Float64Array, outRe: Float64Array, outIm: Float64Array,
) => void;

let kernel: DftKernel | null | undefined;
let enabled = true;

/** Tests: false runs the TypeScript loop everywhere (it must give the same bits). */
export function enableDftKernel(on: boolean): void {
  enabled = on;
}

/** The kernel, or null where WebAssembly SIMD is unavailable (the TypeScript loop then runs: same bits). */
export function dftKernel(): DftKernel | null {
  if (!enabled) return null;
  if (kernel === undefined) {
    try {
      kernel = createDftKernel();
    } catch {
      kernel = null;
    }
  }
  return kernel;
}

function createDftKernel(): DftKernel {
  if (FFT_WASM_BASE64.length === 0) throw new Error('the WebAssembly FFT kernel was not built');
  const bin = atob(FFT_WASM_BASE64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const ex = new WebAssembly.Instance(new WebAssembly.Module(bytes), {}).exports as unknown as Exports;
  return (re, im, off, count, n, tCos, tSin, outRe, outIm) => {
    const table = 8 * n * n, rows = 8 * n * count;
    const tc = 0, ts = tc + table, xr = ts + table, xi = xr + rows, or = xi + rows, oi = or + rows;
    const end = oi + rows;
    const have = ex.memory.buffer.byteLength;
    if (end > have) ex.memory.grow(Math.ceil((end - have) / 65536));
    const buf = ex.memory.buffer;
    new Float64Array(buf, tc, n * n).set(tCos.subarray(0, n * n));
    new Float64Array(buf, ts, n * n).set(tSin.subarray(0, n * n));
    new Float64Array(buf, xr, n * count).set(re.subarray(off, off + n * count));
    new Float64Array(buf, xi, n * count).set(im.subarray(off, off + n * count));
    ex.dft(xr, xi, tc, ts, or, oi, n, count);
    outRe.set(new Float64Array(buf, or, n * count));
    outIm.set(new Float64Array(buf, oi, n * count));
  };
}
