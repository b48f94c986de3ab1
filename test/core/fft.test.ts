import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getFftPlan } from '../../src/core/fft.js';
import { value } from '../../src/core/generator.js';
import { getFftPlan as getReferencePlan } from './fft-reference.js';
import { dftKernel, enableDftKernel } from '../../src/core/kernels/fft-wasm.js';

/** The O(n²) definition X_k = Σ_j x_j e^{-2πi jk/n}, with jk reduced mod n before the cos/sin. */
function directDft(re: Float64Array, im: Float64Array): [Float64Array, Float64Array] {
  const n = re.length;
  const outRe = new Float64Array(n);
  const outIm = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    let sr = 0;
    let si = 0;
    for (let j = 0; j < n; j++) {
      const a = (-2 * Math.PI * ((j * k) % n)) / n;
      sr += re[j] * Math.cos(a) - im[j] * Math.sin(a);
      si += re[j] * Math.sin(a) + im[j] * Math.cos(a);
    }
    outRe[k] = sr;
    outIm[k] = si;
  }
  return [outRe, outIm];
}

function randomVector(n: number, tag: number): Float64Array {
  return Float64Array.from({ length: n }, (_, j) => value(0xf00d, tag, j));
}

function maxAbsDiff(a: Float64Array, b: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

// Every plan kind: radix-2 (1, 2, 8, 256), direct primes (3, 5, 7, 47), Bluestein primes (53, 97, 257),
// power-of-two × odd splits (6, 12, 96, 688 = 16·43, 106 = 2·53), odd splits (9, 15, 45, 49, 159 = 3·53).
const LENGTHS = [1, 2, 3, 5, 6, 7, 8, 9, 12, 15, 45, 47, 49, 53, 96, 97, 106, 159, 256, 257, 688];

test('forward FFT matches the O(n²) DFT at every plan kind', () => {
  for (const n of LENGTHS) {
    const re = randomVector(n, 1);
    const im = randomVector(n, 2);
    const [wantRe, wantIm] = directDft(re, im);
    getFftPlan(n).forward(re, im);
    const err = Math.max(maxAbsDiff(re, wantRe), maxAbsDiff(im, wantIm));
    assert.ok(err < 1e-11 * Math.max(1, Math.sqrt(n)), `n=${n}: max error ${err}`);
  }
});

test('inverse undoes forward', () => {
  for (const n of [...LENGTHS, 3 * 2048, 65537]) {
    const re = randomVector(n, 3);
    const im = randomVector(n, 4);
    const re0 = Float64Array.from(re);
    const im0 = Float64Array.from(im);
    const plan = getFftPlan(n);
    plan.forward(re, im);
    plan.inverse(re, im);
    assert.ok(Math.max(maxAbsDiff(re, re0), maxAbsDiff(im, im0)) < 1e-12, `n=${n}`);
  }
});

test('invalid lengths are refused', () => {
  for (const n of [0, -4, 2.5, NaN, 2 ** 31]) assert.throws(() => getFftPlan(n), RangeError);
});

// Issue #10 restructured the FFT (batched four-step splits, contiguous twiddles, register-blocked
// direct DFTs) under the promise that every output bit stays the same: the pre-#10 implementation,
// kept verbatim in fft-reference.ts, is the reference, compared with Object.is on every element.

function assertSameBits(a: Float64Array, b: Float64Array, what: string): void {
  for (let i = 0; i < a.length; i++) {
    if (!Object.is(a[i], b[i])) assert.fail(`${what}: element ${i} is ${a[i]}, reference ${b[i]}`);
  }
}

test('forward and inverse FFT are bit-identical to the pre-#10 implementation', () => {
  // Every length to 200, then LoRA-shaped halves r·d/2 (the DCT's FFT length) and split-heavy lengths.
  const lengths = Array.from({ length: 200 }, (_, i) => i + 1);
  for (const d of [4096, 11008, 28672, 1024, 768]) for (const r of [1, 3, 5, 7, 11, 13, 15, 16]) lengths.push((r * d) / 2);
  lengths.push(2 * 3 * 5 * 7 * 11, 43 * 43 * 4, 53 * 64, 97 * 3 * 8, 1009, 2 * 1009);
  for (const n of lengths) {
    const re = randomVector(n, 1), im = randomVector(n, 2);
    const re2 = re.slice(), im2 = im.slice();
    getFftPlan(n).forward(re, im);
    getReferencePlan(n).forward(re2, im2);
    assertSameBits(re, re2, `forward re n=${n}`);
    assertSameBits(im, im2, `forward im n=${n}`);
    getFftPlan(n).inverse(re, im);
    getReferencePlan(n).inverse(re2, im2);
    assertSameBits(re, re2, `inverse re n=${n}`);
    assertSameBits(im, im2, `inverse im n=${n}`);
  }
});

test('the direct DFT gives the same bits with and without its WebAssembly kernel', () => {
  assert.notEqual(dftKernel(), null, 'the WebAssembly FFT kernel instantiates on this runtime');
  const lengths = [15, 43 * 128, 43 * 15 * 64, 3 * 5 * 7 * 8, 45 * 2048];
  for (const on of [true, false]) {
    enableDftKernel(on);
    try {
      for (const n of lengths) {
        const re = randomVector(n, 3), im = randomVector(n, 4);
        const re2 = re.slice(), im2 = im.slice();
        getFftPlan(n).forward(re, im);
        getReferencePlan(n).forward(re2, im2);
        assertSameBits(re, re2, `kernel ${on} re n=${n}`);
        assertSameBits(im, im2, `kernel ${on} im n=${n}`);
      }
    } finally {
      enableDftKernel(true);
    }
  }
});
