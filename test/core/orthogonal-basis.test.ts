import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createOrthogonalBasis,
  orthogonalSelection,
  orthogonalSigns,
} from '../../src/core/orthogonal-basis.js';
import { dct2, dct3 } from '../../src/core/dct.js';
import { value } from '../../src/core/generator.js';
import * as refDct from './dct-reference.js';
import { NolaError } from '../../src/errors.js';

/** Deterministic test data in [-1, 1) (the generator is pinned by its own tests). */
function randomVector(n: number, tag: number): Float64Array {
  const v = new Float64Array(n);
  for (let j = 0; j < n; j++) v[j] = value(0xdecaf, tag, j);
  return v;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>, n = a.length): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** The O(n²) closed form of the orthonormal DCT-II, evaluated term by term. */
function directDct2(x: Float64Array): Float64Array {
  const n = x.length;
  const out = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += x[j] * Math.cos((Math.PI * (2 * j + 1) * k) / (2 * n));
    out[k] = s * Math.sqrt((k === 0 ? 1 : 2) / n);
  }
  return out;
}

/** The O(n²) orthonormal DCT-III = transpose of the DCT-II matrix. */
function directDct3(X: Float64Array): Float64Array {
  const n = X.length;
  const out = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let k = 0; k < n; k++) {
      s += X[k] * Math.sqrt((k === 0 ? 1 : 2) / n) * Math.cos((Math.PI * (2 * j + 1) * k) / (2 * n));
    }
    out[j] = s;
  }
  return out;
}

// Lengths covering both Makhoul paths (odd n: length-n FFT; even n: packed length-n/2 FFT) over
// every FFT plan kind: radix-2, direct, split, and Bluestein (509 prime; 106 = 2·53), odd split (510 = 2·3·5·17).
const DCT_LENGTHS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 14, 21, 45, 64, 97, 100, 106, 128, 194, 320, 509, 510];

test('dct2 and dct3 match the O(n²) closed-form definitions', () => {
  for (const n of DCT_LENGTHS) {
    const x = randomVector(n, n);
    const fast = new Float64Array(n);
    dct2(x, fast);
    assert.ok(maxAbsDiff(fast, directDct2(x)) < 1e-12, `dct2 n=${n}`);
    dct3(x, fast);
    assert.ok(maxAbsDiff(fast, directDct3(x)) < 1e-12, `dct3 n=${n}`);
  }
});

test('dct3 inverts dct2 in place at large non-power-of-two lengths', () => {
  for (const n of [6144, 4096 * 3 + 1, 65536]) {
    const x = randomVector(n, 1);
    const y = Float64Array.from(x);
    dct2(y, y);
    dct3(y, y);
    assert.ok(maxAbsDiff(x, y) < 1e-12, `n=${n}`);
  }
});

/** Rows b_0..b_{k-1}, each synthesized explicitly from a unit coefficient vector. */
function explicitBasis(seed: number, k: number, n: number): Float64Array[] {
  const basis = createOrthogonalBasis(seed, k, n);
  const rows: Float64Array[] = [];
  const c = new Float64Array(k);
  for (let i = 0; i < k; i++) {
    c.fill(0);
    c[i] = 1;
    const b = new Float64Array(n);
    basis.synthesize(c, b);
    rows.push(b);
  }
  return rows;
}

test('synthesized basis vectors are orthonormal (Gram = I)', () => {
  const cases: Array<[number, number, number]> = [
    // [seed, k, n]
    [1, 1, 1],
    [2, 7, 7],
    [3, 5, 12],
    [4, 31, 97],
    [5, 64, 320],
    [6, 120, 1000],
    [7, 96, 1024],
    [8, 24, 6144],
    [9, 21, 21],
  ];
  for (const [seed, k, n] of cases) {
    const rows = explicitBasis(seed, k, n);
    let worst = 0;
    for (let a = 0; a < k; a++) {
      for (let b = a; b < k; b++) {
        worst = Math.max(worst, Math.abs(dot(rows[a], rows[b]) - (a === b ? 1 : 0)));
      }
    }
    assert.ok(worst < 1e-10, `seed=${seed} k=${k} n=${n}: max |G - I| = ${worst}`);
  }
});

test('at k = n, analyze ∘ synthesize and synthesize ∘ analyze are the identity', () => {
  for (const n of [1, 7, 12, 97, 1000, 1024, 6144]) {
    const basis = createOrthogonalBasis(n, n, n);
    const x = randomVector(n, 2);
    const c = new Float64Array(n);
    const y = new Float64Array(n);
    basis.analyze(x, c);
    basis.synthesize(c, y);
    assert.ok(maxAbsDiff(x, y) < 1e-12, `S∘A n=${n}`);
    const c2 = randomVector(n, 3);
    basis.synthesize(c2, y);
    basis.analyze(y, c);
    assert.ok(maxAbsDiff(c, c2) < 1e-12, `A∘S n=${n}`);
  }
});

test('analyze is the adjoint of synthesize: <S c, x> = <c, A x>', () => {
  for (const [k, n] of [[3, 7], [5, 12], [40, 320], [500, 8 * 768], [17, 4099]]) {
    const basis = createOrthogonalBasis(0xabcdef, k, n);
    const c = randomVector(k, 4);
    const x = randomVector(n, 5);
    const sc = new Float64Array(n);
    const ax = new Float64Array(k);
    basis.synthesize(c, sc);
    basis.analyze(x, ax);
    const lhs = dot(sc, x);
    const rhs = dot(c, ax);
    assert.ok(Math.abs(lhs - rhs) < 1e-10 * (1 + Math.abs(lhs)), `k=${k} n=${n}: ${lhs} vs ${rhs}`);
  }
});

test('analysis at k < n is the least-squares projection (residual ⟂ span)', () => {
  const basis = createOrthogonalBasis(77, 30, 100);
  const x = randomVector(100, 6);
  const c = new Float64Array(30);
  const proj = new Float64Array(100);
  basis.analyze(x, c);
  basis.synthesize(c, proj);
  const residual = x.map((v, j) => v - proj[j]);
  const back = new Float64Array(30);
  basis.analyze(residual, back);
  assert.ok(Math.max(...back.map(Math.abs)) < 1e-12);
  // and the projection removed something: x itself is not in the span
  assert.ok(dot(residual, residual) > 1);
});

test('selection draws k distinct indices in [0, n) and depends on the seed', () => {
  for (const [k, n] of [[1, 1], [5, 12], [97, 97], [300, 6144]]) {
    const sel = orthogonalSelection(42, k, n);
    assert.equal(sel.length, k);
    assert.equal(new Set(sel).size, k);
    for (const m of sel) assert.ok(m >= 0 && m < n);
  }
  // A prefix property of the partial shuffle: the first k of a larger draw are the same draw.
  assert.deepEqual(orthogonalSelection(42, 5, 6144), orthogonalSelection(42, 300, 6144).slice(0, 5));
  assert.notDeepEqual(orthogonalSelection(1, 20, 6144), orthogonalSelection(2, 20, 6144));
});

test('invalid arguments are refused with a typed error', () => {
  assert.throws(() => createOrthogonalBasis(0, 0, 10), NolaError);
  assert.throws(() => createOrthogonalBasis(0, 11, 10), NolaError);
  assert.throws(() => createOrthogonalBasis(0, 2.5, 10), NolaError);
  assert.throws(() => createOrthogonalBasis(-1, 2, 10), NolaError);
  assert.throws(() => createOrthogonalBasis(2 ** 32, 2, 10), NolaError);
  assert.throws(() => createOrthogonalBasis(0, 1, 0), NolaError);
  const basis = createOrthogonalBasis(0, 3, 10);
  assert.throws(() => basis.synthesize(new Float64Array(2), new Float64Array(10)), RangeError);
  assert.throws(() => basis.analyze(new Float64Array(9), new Float64Array(3)), RangeError);
});

// ---- Golden values from an independent implementation ----
// Produced by `python3 scripts/orthogonal_reference.py` (pure-Python lowbias32-v1, the construction
// reimplemented from the spec text, dense numpy DCT-II matrix cross-checked against scipy).

interface Golden {
  seed: number;
  n: number;
  k: number;
  signs: number[];
  selection: number[];
  b0: number[];
  b1: number[];
}

const GOLDEN: Golden[] = [
  {
    seed: 0, n: 12, k: 5,
    signs: [-1, -1, -1, 1, 1, -1, 1, 1, 1, 1, 1, -1],
    selection: [4, 6, 2, 8, 11],
    b0: [-0.3535533905932738, -2.4997998108697437e-17, 0.3535533905932738, -0.35355339059327384, -7.499399432609231e-17, -0.3535533905932737, 0.35355339059327373, 4.875873120129587e-16, -0.35355339059327384, -0.35355339059327395, -1.7498598676088207e-16, -0.3535533905932734],
    b1: [-0.2886751345948129, 0.28867513459481287, 0.28867513459481303, 0.2886751345948128, 0.2886751345948129, 0.28867513459481253, -0.2886751345948127, 0.288675134594812, 0.28867513459481225, -0.2886751345948125, -0.2886751345948128, -0.2886751345948124],
  },
  {
    seed: 12345, n: 10, k: 10,
    signs: [-1, -1, -1, -1, 1, -1, -1, -1, -1, -1],
    selection: [7, 1, 0, 3, 6, 5, 8, 9, 2, 4],
    b0: [-0.20303072371134545, 0.4417076540309386, -0.31622776601683783, -0.06995961957075464, -0.39847023129620013, -0.39847023129619996, 0.06995961957075505, 0.316227766016839, -0.4417076540309387, 0.20303072371134404],
    b1: [-0.4417076540309386, -0.39847023129620024, -0.31622776601683794, -0.20303072371134545, 0.06995961957075414, 0.069959619570754, 0.2030307237113454, 0.3162277660168379, 0.3984702312962002, 0.4417076540309386],
  },
];

test('golden: signs, selection and basis vectors match the numpy reference', () => {
  for (const g of GOLDEN) {
    assert.deepEqual(Array.from(orthogonalSigns(g.seed, g.n)), g.signs);
    assert.deepEqual(Array.from(orthogonalSelection(g.seed, g.k, g.n)), g.selection);
    const rows = explicitBasis(g.seed, g.k, g.n);
    assert.ok(maxAbsDiff(rows[0], g.b0) < 1e-12, `b0 seed=${g.seed}`);
    assert.ok(maxAbsDiff(rows[1], g.b1) < 1e-12, `b1 seed=${g.seed}`);
  }
});

interface GoldenLarge {
  seed: number;
  n: number;
  k: number;
  selectionHead: number[];
  yHead: number[];
  yTail: number[];
  analyzeHead: number[];
}

// c_i = (-1)^i / (i+1);  y = Σ c_i b_i;  x_j = cos(0.37 j) + 0.01 j;  analyzeHead = <b_i, x>, i < 4.
const GOLDEN_LARGE: GoldenLarge[] = [
  {
    seed: 7, n: 6144, k: 40,
    selectionHead: [3605, 286, 5382, 2455, 3571, 3694, 4959, 2999],
    yHead: [0.0019813031964481206, 0.030980361284696195, 0.00100131667702417, 0.0006543927860347893, 0.00954872332005404, 0.03066074439406993],
    yTail: [0.01758351731847046, -0.0009543460657655586, -0.015623371307733997],
    analyzeHead: [-32.115967661396425, 34.15124467997088, -8.33834045019824, -12.403561477826099],
  },
  {
    seed: 99, n: 997, k: 997,
    selectionHead: [972, 231, 631, 677, 282, 178, 822, 208],
    yHead: [0.007327287986769209, 0.015051739025500869, 0.020480936166195556, -0.03271061292605763, -0.05629548021150221, 0.012327970299478902],
    yTail: [0.011502019696653473, -0.015393252600118203, 0.011247648998712433],
    analyzeHead: [-3.143915417170984, 5.071652855421317, -10.670153849019249, 7.006329221407765],
  },
];

test('golden: fast synthesis/analysis at a split length (6144 = 3·2^11) and a Bluestein prime (997) match the dense numpy reference', () => {
  for (const g of GOLDEN_LARGE) {
    const basis = createOrthogonalBasis(g.seed, g.k, g.n);
    assert.deepEqual(Array.from(orthogonalSelection(g.seed, g.k, g.n).slice(0, 8)), g.selectionHead);
    const c = Float64Array.from({ length: g.k }, (_, i) => (i % 2 === 0 ? 1 : -1) / (i + 1));
    const y = new Float64Array(g.n);
    basis.synthesize(c, y);
    assert.ok(maxAbsDiff(y.slice(0, 6), g.yHead) < 1e-12, `yHead n=${g.n}`);
    assert.ok(maxAbsDiff(y.slice(g.n - 3), g.yTail) < 1e-12, `yTail n=${g.n}`);
    const x = Float64Array.from({ length: g.n }, (_, j) => Math.cos(0.37 * j) + 0.01 * j);
    const a = new Float64Array(g.k);
    basis.analyze(x, a);
    assert.ok(maxAbsDiff(a.slice(0, 4), g.analyzeHead) < 1e-10, `analyze n=${g.n}`);
  }
});

// Issue #10: the faster FFT under the DCT must leave every bit of dct2/dct3 (and so of compress
// output) unchanged. Reference: the pre-#10 dct.ts over the pre-#10 FFT (dct-reference.ts).

test('dct2 and dct3 are bit-identical to the pre-#10 implementation at LoRA factor lengths r·d', () => {
  const lengths: number[] = [1, 2, 3, 5, 7, 97, 1009, 6144];
  for (const d of [4096, 11008, 8192, 28672, 1024]) for (const r of [1, 2, 3, 5, 7, 11, 13, 15, 16]) lengths.push(r * d);
  for (const n of lengths) {
    const x = Float64Array.from({ length: n }, (_, j) => Math.sin(0.37 * j) + ((j * 7919) % 13) / 13 - 0.5);
    const a = new Float64Array(n), b = new Float64Array(n);
    dct2(x, a);
    refDct.dct2(x, b);
    for (let i = 0; i < n; i++) if (!Object.is(a[i], b[i])) assert.fail(`dct2 n=${n}: element ${i} is ${a[i]}, reference ${b[i]}`);
    dct3(x, a);
    refDct.dct3(x, b);
    for (let i = 0; i < n; i++) if (!Object.is(a[i], b[i])) assert.fail(`dct3 n=${n}: element ${i} is ${a[i]}, reference ${b[i]}`);
  }
});
