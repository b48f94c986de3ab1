/**
 * The direct-DFT kernel of src/core/fft.ts as WebAssembly SIMD (module bytes in fft-wasm-module.ts,
 * built by scripts/build-wasm.ts): the same operations as the TypeScript loop, two columns per
 * instruction, so the bits are the same. Each call copies its inputs into the module's memory and
 * the outputs back (O(n·count) against the kernel's O(n²·count)).
 */
import { FFT_WASM_BASE64 } from './fft-wasm-module.js';
import { loadOnce } from './load-once.js';

interface Exports {
  memory: WebAssembly.Memory;
  dft(re: number, im: number, tc: number, ts: number, ore: number, oim: number, n: number, count: number): void;
  r2(re: number, im: number, tc: number, ts: number, n: number): void;
  r2batch(re: number, im: number, tc: number, ts: number, n: number, count: number, cols: number): void;
}

/**
 * Radix-2 transforms of Radix2Plan: rows are copied in bit-reversed order (the plan's swap loop),
 * then every stage runs in the module with the plan's twiddles (tc = cos, ts = the signed sin).
 */
export interface Radix2Kernel {
  /** One transform of re[0..n), im[0..n) in place. */
  single(re: Float64Array, im: Float64Array, n: number, rev: Uint32Array, tc: Float64Array, ts: Float64Array): void;
  /** `count` ≥ 2 interleaved columns at off, in place. */
  batch(re: Float64Array, im: Float64Array, off: number, count: number, n: number, rev: Uint32Array, tc: Float64Array, ts: Float64Array): void;
}

/**
 * out[k·count + q] for q < count & ~1 (re and im parts) of the n-point DFT of the columns
 * x[off + j·count + q]; tCos/tSin as DirectPlan's tables. Odd last columns are the caller's.
 */
export type DftKernel = (
  re: Float64Array, im: Float64Array, off: number, count: number, n: number,
  tCos: Float64Array, tSin: Float64Array, outRe: Float64Array, outIm: Float64Array,
) => void;

let enabled = true;

/** Tests: false runs the TypeScript loop everywhere (it must give the same bits). */
export function enableDftKernel(on: boolean): void {
  enabled = on;
}

const loadDft = loadOnce(createDftKernel);
const loadRadix2 = loadOnce(createRadix2Kernel);

/** The kernel, or null where WebAssembly SIMD is unavailable (the TypeScript loop then runs: same bits). */
export function dftKernel(): DftKernel | null {
  return enabled ? loadDft() : null;
}

/** The radix-2 kernel, or null (TypeScript loops: same bits). */
export function radix2Kernel(): Radix2Kernel | null {
  return enabled ? loadRadix2() : null;
}

let instance: Exports | undefined;
function exportsOf(): Exports {
  if (instance !== undefined) return instance;
  if (FFT_WASM_BASE64.length === 0) throw new Error('the WebAssembly FFT kernel was not built');
  const bin = atob(FFT_WASM_BASE64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {}).exports as unknown as Exports;
  return instance;
}

function reserve(ex: Exports, end: number): ArrayBuffer {
  const have = ex.memory.buffer.byteLength;
  if (end > have) ex.memory.grow(Math.ceil((end - have) / 65536));
  return ex.memory.buffer;
}

function createRadix2Kernel(): Radix2Kernel {
  const ex = exportsOf();
  return {
    single(re, im, n, rev, tc, ts) {
      const tw = 8 * Math.max(n - 1, 1), rows = 8 * n;
      const c = 0, s = c + tw, xr = s + tw, xi = xr + rows;
      const buf = reserve(ex, xi + rows);
      new Float64Array(buf, c, n - 1).set(tc.subarray(0, n - 1));
      new Float64Array(buf, s, n - 1).set(ts.subarray(0, n - 1));
      const mr = new Float64Array(buf, xr, n), mi = new Float64Array(buf, xi, n);
      for (let i = 0; i < n; i++) {
        const j = rev[i];
        mr[i] = re[j];
        mi[i] = im[j];
      }
      ex.r2(xr, xi, c, s, n);
      re.set(mr);
      im.set(mi);
    },
    batch(re, im, off, count, n, rev, tc, ts) {
      const tw = 8 * Math.max(n - 1, 1), rows = 8 * n * count;
      const c = 0, s = c + tw, xr = s + tw, xi = xr + rows;
      const buf = reserve(ex, xi + rows);
      new Float64Array(buf, c, n - 1).set(tc.subarray(0, n - 1));
      new Float64Array(buf, s, n - 1).set(ts.subarray(0, n - 1));
      const mr = new Float64Array(buf, xr, n * count), mi = new Float64Array(buf, xi, n * count);
      for (let i = 0; i < n; i++) {
        const from = off + rev[i] * count;
        mr.set(re.subarray(from, from + count), i * count);
        mi.set(im.subarray(from, from + count), i * count);
      }
      ex.r2batch(xr, xi, c, s, n, count, count & ~1);
      re.set(mr, off);
      im.set(mi, off);
    },
  };
}

function createDftKernel(): DftKernel {
  const ex = exportsOf();
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
