/**
 * The WebAssembly SIMD kernels (module bytes in wasm-module.ts, built by scripts/build-wasm.ts).
 * Each call copies its inputs into the module's memory and the result out: the copies are O(n + k)
 * against the kernel's O(k·n), and keep the module stateless (one instance per thread).
 */
import { KERNELS_WASM_BASE64 } from './wasm-module.js';
import type { UniformKernels } from './types.js';

interface Exports {
  memory: WebAssembly.Memory;
  synth(rk: number, k: number, ck: number, n4: number, c: number, out: number): void;
  analyze(rk: number, k: number, ck: number, n4: number, x: number, acc: number): void;
  analyzeF32(rk: number, k: number, ck: number, n4: number, x: number, acc: number): void;
}

function decodeBase64(b64: string): Uint8Array<ArrayBuffer> {
  const bin = atob(b64);
  const out = new Uint8Array(new ArrayBuffer(bin.length));
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const align = (bytes: number): number => (bytes + 63) & ~63;

/** Instantiates the module; throws where WebAssembly or its SIMD proposal is missing. */
export function createWasmKernels(): UniformKernels {
  if (KERNELS_WASM_BASE64.length === 0) throw new Error('the WebAssembly kernels were not built');
  const module = new WebAssembly.Module(decodeBase64(KERNELS_WASM_BASE64));
  const ex = new WebAssembly.Instance(module, {}).exports as unknown as Exports;

  /** Byte offsets of the four regions for k rows, n4 columns and a vector region of vecLen f64s. */
  function layout(k: number, n4: number, vecLen: number, outLen: number): { rk: number; ck: number; vec: number; out: number } {
    const rk = 0, ck = align(4 * k), vec = ck + align(4 * n4), out = vec + align(8 * vecLen);
    const end = out + align(8 * outLen);
    const have = ex.memory.buffer.byteLength;
    if (end > have) ex.memory.grow(Math.ceil((end - have) / 65536));
    return { rk, ck, vec, out };
  }

  /** Keys pre-mixed with the generator's first xor-shift (the module expects them so: one step fewer per entry). */
  function copyKeys(at: number, keys: Int32Array, len: number): void {
    const view = new Int32Array(ex.memory.buffer, at, len);
    for (let i = 0; i < keys.length; i++) view[i] = keys[i] ^ (keys[i] >>> 16);
    view.fill(0, keys.length);
  }

  function analyzeWith(
    fn: Exports['analyze'], XArray: Float64ArrayConstructor | Float32ArrayConstructor,
    rk: Int32Array, ck: Int32Array, x: ArrayLike<number>, lanes: Float64Array,
  ): void {
    const k = rk.length, n = ck.length, n4 = (n + 3) & ~3;
    if (k === 0 || n === 0) return;
    const at = layout(k, n4, n4, 4 * k);
    copyKeys(at.rk, rk, k);
    copyKeys(at.ck, ck, n4);
    const xv = new XArray(ex.memory.buffer, at.vec, n4);
    if (x instanceof Float64Array) xv.set(x.subarray(0, n));
    else for (let j = 0; j < n; j++) xv[j] = x[j];
    xv.fill(0, n);
    new Float64Array(ex.memory.buffer, at.out, 4 * k).set(lanes.subarray(0, 4 * k));
    fn(at.rk, k, at.ck, n4, at.vec, at.out);
    lanes.set(new Float64Array(ex.memory.buffer, at.out, 4 * k));
  }

  return {
    name: 'wasm-simd',
    synth(rk, c, ck, out) {
      const k = rk.length, n = ck.length, n4 = (n + 3) & ~3;
      if (k === 0 || n === 0) return;
      const at = layout(k, n4, k, n4);
      copyKeys(at.rk, rk, k);
      copyKeys(at.ck, ck, n4);
      new Float64Array(ex.memory.buffer, at.vec, k).set(c.subarray(0, k));
      const o = new Float64Array(ex.memory.buffer, at.out, n4);
      o.set(out.subarray(0, n));
      ex.synth(at.rk, k, at.ck, n4, at.vec, at.out);
      out.set(new Float64Array(ex.memory.buffer, at.out, n));
    },
    analyze(rk, ck, x, lanes) {
      analyzeWith(ex.analyze, Float64Array, rk, ck, x, lanes);
    },
    analyzeF32(rk, ck, x, lanes) {
      analyzeWith(ex.analyzeF32, Float32Array, rk, ck, x, lanes);
    },
  };
}
