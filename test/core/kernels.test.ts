/**
 * The uniform-basis kernels against the plain definition (an explicit basis matrix built from
 * value(seed, i, j)), and the WebAssembly module against the TypeScript kernels bit for bit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { value, colKeys, rowKey } from '../../src/core/generator.js';
import { createUniformBasis } from '../../src/core/uniform-basis.js';
import { selectKernels, tsKernels, wasmKernels } from '../../src/core/kernels/index.js';
import { KERNELS_WASM_BASE64 } from '../../src/core/kernels/wasm-module.js';
import { compileWat, fftKernelsWat, kernelsWat } from '../../scripts/build-wasm.js';
import { FFT_WASM_BASE64 } from '../../src/core/kernels/fft-wasm-module.js';
import * as dense from '../../src/core/kernels/dense.js';
import * as plain from '../../src/core/matrix.js';
import * as reference from './matrix-reference.js';
import { mat, type Mat } from '../../src/core/matrix.js';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

/** k, n pairs: odd n, n not a multiple of 4, k not a multiple of the row blocks, n across the 1024-entry chunk, both analysis paths (4k ≤ n: float32). */
const SIZES: Array<[number, number]> = [[1, 1], [3, 7], [5, 2], [17, 33], [64, 257], [6, 1030], [9, 2051], [300, 1030], [40, 41]];

test('synthesis and analysis equal the explicit basis matrix (every kernel, odd sizes)', () => {
  for (const kind of ['wasm-simd', 'ts'] as const) {
    if (kind === 'wasm-simd' && wasmKernels() === null) continue;
    selectKernels(kind);
    try {
      for (const [k, n] of SIZES) {
        const seed = 1000 + k * 7 + n;
        const rnd = lcg(seed);
        const c = Float64Array.from({ length: k }, rnd);
        const x = Float64Array.from({ length: n }, rnd);
        const basis = createUniformBasis(seed, k, n, 0);
        const m = (i: number, j: number): number => value(seed, i, j) / Math.sqrt(k);
        const out = new Float64Array(n);
        basis.synthesize(c, out);
        for (let j = 0; j < n; j++) {
          let s = 0, mag = 0;
          for (let i = 0; i < k; i++) { s += c[i] * m(i, j); mag += Math.abs(c[i] * m(i, j)); }
          assert.ok(Math.abs(out[j] - s) <= 1e-14 * mag + 1e-300, `${kind} synth k=${k} n=${n} j=${j}: ${out[j]} vs ${s}`);
        }
        const an = new Float64Array(k);
        basis.analyze(x, an);
        for (let i = 0; i < k; i++) {
          let s = 0, mag = 0;
          for (let j = 0; j < n; j++) { s += m(i, j) * x[j]; mag += Math.abs(m(i, j) * x[j]); }
          // float32 products and chunk sums (see src/core/kernels/types.ts): a few float32 ulps of Σ|terms|.
          assert.ok(Math.abs(an[i] - s) <= 4e-7 * mag + 1e-300, `${kind} analyze k=${k} n=${n} i=${i}: ${an[i]} vs ${s}`);
        }
      }
    } finally {
      selectKernels('auto');
    }
  }
});

test('WebAssembly and TypeScript kernels give identical bits', (t) => {
  const w = wasmKernels();
  if (w === null) return t.skip('WebAssembly SIMD unavailable');
  assert.equal(w.name, 'wasm-simd');
  for (const [k, n] of [...SIZES, [130, 4099] as [number, number]]) {
    const rnd = lcg(k * 31 + n);
    const rk = Int32Array.from({ length: k }, (_, i) => rowKey(k + n, i));
    const ck = colKeys(n);
    const c = Float64Array.from({ length: k }, rnd);
    const x = Float64Array.from({ length: n }, rnd);
    const o1 = Float64Array.from({ length: n }, rnd), o2 = Float64Array.from(o1);
    w.synth(rk, c, ck, o1);
    tsKernels.synth(rk, c, ck, o2);
    assert.deepEqual(o1, o2, `synth k=${k} n=${n}`);
    const l1 = Float64Array.from({ length: 4 * k }, rnd), l2 = Float64Array.from(l1);
    w.analyze(rk, ck, x, l1);
    tsKernels.analyze(rk, ck, x, l2);
    assert.deepEqual(l1, l2, `analyze k=${k} n=${n}`);
    w.analyzeF32(rk, ck, x, l1);
    tsKernels.analyzeF32(rk, ck, x, l2);
    assert.deepEqual(l1, l2, `analyzeF32 k=${k} n=${n}`);
  }
});

test('the cached TypeScript basis gives the same bits as the generating kernels', () => {
  const k = 40, n = 301, seed = 77;
  const rnd = lcg(5);
  const c = Float64Array.from({ length: k }, rnd);
  c[3] = 0;
  const x = Float64Array.from({ length: n }, rnd);
  const run = (b: ReturnType<typeof createUniformBasis>): [Float64Array, Float64Array] => {
    const o = new Float64Array(n), a = new Float64Array(k);
    b.synthesize(c, o);
    b.analyze(x, a);
    return [o, a];
  };
  selectKernels('ts');
  try {
    const cached = createUniformBasis(seed, k, n);
    assert.equal(cached.kernels, 'ts-cached');
    const [o1, a1] = run(cached);
    const [o2, a2] = run(createUniformBasis(seed, k, n, 0));
    assert.deepEqual(o1, o2);
    assert.deepEqual(a1, a2);
  } finally {
    selectKernels('auto');
  }
  const [o3, a3] = run(createUniformBasis(seed, k, n));
  const [o4, a4] = run(createUniformBasis(seed, k, n, 0));
  assert.deepEqual(o3, o4);
  assert.deepEqual(a3, a4);
});

test('the shipped WebAssembly bytes are what scripts/build-wasm.ts compiles', async (t) => {
  let bytes: Uint8Array;
  try {
    bytes = await compileWat(kernelsWat());
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') return t.skip('wabt (devDependency) not installed');
    throw e;
  }
  assert.equal(Buffer.from(bytes).toString('base64'), KERNELS_WASM_BASE64, 'run `npm run wasm` and commit src/core/kernels');
  assert.equal(Buffer.from(await compileWat(fftKernelsWat())).toString('base64'), FFT_WASM_BASE64, 'run `npm run wasm` and commit src/core/kernels (FFT kernel)');
});

test('the fit\'s dense products give the same bits as matrix.ts (tall, wide, narrow, odd sizes, zeros)', () => {
  const rnd = lcg(99);
  const m = (rows: number, cols: number): Mat => {
    const x = mat(rows, cols);
    for (let i = 0; i < x.data.length; i++) x.data[i] = i % 7 === 3 ? 0 : rnd();
    return x;
  };
  for (const [d, r] of [[4096, 16], [301, 5], [70, 1], [9, 3]] as Array<[number, number]>) {
    const b = m(d, r), b2 = m(d, r), a = m(r, d), a2 = m(r, d), s = m(r, r);
    assert.deepEqual(dense.matmulTN(b, b2).data, plain.matmulTN(b, b2).data);
    assert.deepEqual(dense.matmulTN(b, b).data, plain.matmulTN(b, b).data);
    // dense re-exports matrix.ts's matmulNT: held to the pre-#10 loop instead of to itself.
    assert.deepEqual(dense.matmulNT(a, a2).data, reference.matmulNT(a, a2).data);
    assert.deepEqual(dense.matmul(s, a).data, plain.matmul(s, a).data);
    assert.deepEqual(dense.matmul(b, s).data, plain.matmul(b, s).data);
  }
});
