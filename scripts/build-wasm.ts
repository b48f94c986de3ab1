/**
 * Builds the WebAssembly SIMD kernels of the uniform basis (src/core/kernels/kernels.wat and the
 * base64 bytes in src/core/kernels/wasm-module.ts, both committed, so the package needs no tool
 * and no download). The WAT is generated here because WAT has no macros and the generator hash
 * is inlined several times per loop body. `npm run wasm` regenerates both files with wabt (a
 * devDependency, pure JS).
 *
 * Semantics (mirrored exactly by src/core/kernels/ts-kernels.ts, so both give the same bits):
 *   synth:   out[j] += Σ_i c[i] · v(i, j)    i ascending, one f64 multiply then one f64 add per term
 *   analyze: acc[4i + (j mod 4)] += v(i, j) · x[j]   j ascending within each of the 4 lanes (float64)
 *   analyzeF32: per chunk of 1024 columns, a float32 sum s[l] of float32 products f32(v(i, j))·f32(x[j]) over the
 *            chunk's j with j mod 4 = l (j ascending), then acc[4i + l] += s[l] in float64. Analysis only
 *            feeds the solvers (right-hand sides, gradients, CG products), never a stored or reported
 *            number, and float32 products run 1.45x faster here: the result is within ~3e-7 of the
 *            exact one relative to its norm.
 * with v(i, j) = int32(mix32(rk[i] ^ ck[j])) >> 8, the lowbias32-v1 value before its 2^-23 scale.
 * The module takes pre-mixed keys (k ^ (k >>> 16), see hash below); wasm-kernels.ts mixes them.
 * Lengths are padded to a multiple of 4 by the caller (padding x entries are 0).
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GEN_M1, GEN_M2 } from '../src/core/constants.js';

/** Column entries per cache block: 1024 f64 outputs (8 KiB) + 1024 keys (4 KiB) stay in L1. */
const CHUNK = 1024;

const i32 = (v: number): string => String(v | 0);

/**
 * x ← lowbias32(rk ^ key) >> 8 on four lanes, from pre-mixed keys rk' = rk ^ (rk >>> 16) and
 * key' = key ^ (key >>> 16): the first xor-shift distributes over the xor of the two keys, so the
 * callers apply it once per row and once per column instead of once per entry.
 */
function hash(x: string, rk: string, key: string): string {
  return [
    `(local.set ${x} (v128.xor (local.get ${rk}) (local.get ${key})))`,
    `(local.set ${x} (i32x4.mul (local.get ${x}) (local.get $m1)))`,
    `(local.set ${x} (v128.xor (local.get ${x}) (i32x4.shr_u (local.get ${x}) (i32.const 15))))`,
    `(local.set ${x} (i32x4.mul (local.get ${x}) (local.get $m2)))`,
    `(local.set ${x} (v128.xor (local.get ${x}) (i32x4.shr_u (local.get ${x}) (i32.const 15))))`,
    `(local.set ${x} (i32x4.shr_s (local.get ${x}) (i32.const 8)))`,
  ].join('\n');
}
const lo = (x: string): string => `(f64x2.convert_low_i32x4_s (local.get ${x}))`;
const hi = (x: string): string => `(f64x2.convert_low_i32x4_s (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get ${x}) (local.get ${x})))`;

/** while (cond) { body } */
function loop(label: string, exitCond: string, body: string): string {
  return `(block $${label}_done (loop $${label}\n(br_if $${label}_done ${exitCond})\n${body}\n(br $${label})))`;
}

const locals = (prefix: string, count: number, type: string): string =>
  Array.from({ length: count }, (_, t) => `(local ${prefix}${t} ${type})`).join(' ');

/** Row block of `rows` basis elements against one column chunk [j0, jend). */
function synthBlock(rows: number): string {
  const setup = Array.from({ length: rows }, (_, t) => [
    `(local.set $r${t} (i32x4.splat (i32.load offset=${4 * t} (i32.add (local.get $rk) (i32.shl (local.get $i) (i32.const 2))))))`,
    `(local.set $c${t} (f64x2.splat (f64.load offset=${8 * t} (i32.add (local.get $c) (i32.shl (local.get $i) (i32.const 3))))))`,
  ].join('\n')).join('\n');
  const terms = Array.from({ length: rows }, (_, t) => [
    hash('$h', `$r${t}`, '$key'),
    `(local.set $olo (f64x2.add (local.get $olo) (f64x2.mul (local.get $c${t}) ${lo('$h')})))`,
    `(local.set $ohi (f64x2.add (local.get $ohi) (f64x2.mul (local.get $c${t}) ${hi('$h')})))`,
  ].join('\n')).join('\n');
  const inner = loop(`s${rows}j`, '(i32.ge_u (local.get $p) (local.get $jend))', [
    '(local.set $key (v128.load (i32.add (local.get $ck) (i32.shl (local.get $p) (i32.const 2)))))',
    '(local.set $q (i32.add (local.get $out) (i32.shl (local.get $p) (i32.const 3))))',
    '(local.set $olo (v128.load (local.get $q)))',
    '(local.set $ohi (v128.load offset=16 (local.get $q)))',
    terms,
    '(v128.store (local.get $q) (local.get $olo))',
    '(v128.store offset=16 (local.get $q) (local.get $ohi))',
    '(local.set $p (i32.add (local.get $p) (i32.const 4)))',
  ].join('\n'));
  return [setup, '(local.set $p (local.get $j0))', inner].join('\n');
}

function analyzeBlock(rows: number): string {
  const setup = Array.from({ length: rows }, (_, t) => [
    `(local.set $r${t} (i32x4.splat (i32.load offset=${4 * t} (i32.add (local.get $rk) (i32.shl (local.get $i) (i32.const 2))))))`,
    `(local.set $alo${t} (v128.load offset=${32 * t} (i32.add (local.get $acc) (i32.shl (local.get $i) (i32.const 5)))))`,
    `(local.set $ahi${t} (v128.load offset=${32 * t + 16} (i32.add (local.get $acc) (i32.shl (local.get $i) (i32.const 5)))))`,
  ].join('\n')).join('\n');
  const terms = Array.from({ length: rows }, (_, t) => [
    hash('$h', `$r${t}`, '$key'),
    `(local.set $alo${t} (f64x2.add (local.get $alo${t}) (f64x2.mul ${lo('$h')} (local.get $xlo))))`,
    `(local.set $ahi${t} (f64x2.add (local.get $ahi${t}) (f64x2.mul ${hi('$h')} (local.get $xhi))))`,
  ].join('\n')).join('\n');
  const inner = loop(`a${rows}j`, '(i32.ge_u (local.get $p) (local.get $jend))', [
    '(local.set $key (v128.load (i32.add (local.get $ck) (i32.shl (local.get $p) (i32.const 2)))))',
    '(local.set $q (i32.add (local.get $x) (i32.shl (local.get $p) (i32.const 3))))',
    '(local.set $xlo (v128.load (local.get $q)))',
    '(local.set $xhi (v128.load offset=16 (local.get $q)))',
    terms,
    '(local.set $p (i32.add (local.get $p) (i32.const 4)))',
  ].join('\n'));
  const store = Array.from({ length: rows }, (_, t) => [
    `(v128.store offset=${32 * t} (i32.add (local.get $acc) (i32.shl (local.get $i) (i32.const 5))) (local.get $alo${t}))`,
    `(v128.store offset=${32 * t + 16} (i32.add (local.get $acc) (i32.shl (local.get $i) (i32.const 5))) (local.get $ahi${t}))`,
  ].join('\n')).join('\n');
  return [setup, '(local.set $p (local.get $j0))', inner, store].join('\n');
}

/** Float32 products and sums within a chunk, added to float64 lanes at its end. */
function analyzeBlock32(rows: number): string {
  const setup = Array.from({ length: rows }, (_, t) => [
    `(local.set $r${t} (i32x4.splat (i32.load offset=${4 * t} (i32.add (local.get $rk) (i32.shl (local.get $i) (i32.const 2))))))`,
    `(local.set $s${t} (v128.const i32x4 0 0 0 0))`,
  ].join('\n')).join('\n');
  const terms = Array.from({ length: rows }, (_, t) => [
    hash('$h', `$r${t}`, '$key'),
    `(local.set $s${t} (f32x4.add (local.get $s${t}) (f32x4.mul (f32x4.convert_i32x4_s (local.get $h)) (local.get $xlo))))`,
  ].join('\n')).join('\n');
  const inner = loop(`b${rows}j`, '(i32.ge_u (local.get $p) (local.get $jend))', [
    '(local.set $key (v128.load (i32.add (local.get $ck) (i32.shl (local.get $p) (i32.const 2)))))',
    '(local.set $xlo (v128.load (i32.add (local.get $x) (i32.shl (local.get $p) (i32.const 2)))))',
    terms,
    '(local.set $p (i32.add (local.get $p) (i32.const 4)))',
  ].join('\n'));
  const store = Array.from({ length: rows }, (_, t) => {
    const at = `(i32.add (local.get $acc) (i32.shl (local.get $i) (i32.const 5)))`;
    return [
      `(v128.store offset=${32 * t} ${at} (f64x2.add (v128.load offset=${32 * t} ${at}) (f64x2.promote_low_f32x4 (local.get $s${t}))))`,
      `(v128.store offset=${32 * t + 16} ${at} (f64x2.add (v128.load offset=${32 * t + 16} ${at}) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $s${t}) (local.get $s${t})))))`,
    ].join('\n');
  }).join('\n');
  return [setup, '(local.set $p (local.get $j0))', inner, store].join('\n');
}

/** The chunk loop over columns with row blocks of `rows`, then single rows for the remainder. */
function chunked(block: (rows: number) => string, rows: number): string {
  const blockLoop = loop('rows', `(i32.gt_u (i32.add (local.get $i) (i32.const ${rows})) (local.get $k))`, [
    block(rows),
    `(local.set $i (i32.add (local.get $i) (i32.const ${rows})))`,
  ].join('\n'));
  const tailLoop = loop('tail', '(i32.ge_u (local.get $i) (local.get $k))', [
    block(1),
    '(local.set $i (i32.add (local.get $i) (i32.const 1)))',
  ].join('\n'));
  return loop('chunk', '(i32.ge_u (local.get $j0) (local.get $n4))', [
    `(local.set $jend (i32.add (local.get $j0) (i32.const ${CHUNK})))`,
    '(if (i32.gt_u (local.get $jend) (local.get $n4)) (then (local.set $jend (local.get $n4))))',
    '(local.set $i (i32.const 0))',
    blockLoop,
    tailLoop,
    '(local.set $j0 (local.get $jend))',
  ].join('\n'));
}

/** Rows per register block, chosen by measurement (scripts/build-wasm.ts history in docs/PERFORMANCE.md). */
const SYNTH_ROWS = 4;
const ANALYZE_ROWS = 2;
const A32_ROWS = 4;

export function kernelsWat(): string {
  const common = `(local $j0 i32) (local $jend i32) (local $i i32) (local $p i32) (local $q i32)
    (local $key v128) (local $h v128) (local $m1 v128) (local $m2 v128)`;
  const constants = `(local.set $m1 (i32x4.splat (i32.const ${i32(GEN_M1)})))
    (local.set $m2 (i32x4.splat (i32.const ${i32(GEN_M2)})))`;
  return `;; Generated by scripts/build-wasm.ts: do not edit by hand.
(module
  (memory (export "memory") 1)
  ;; out[j] += sum_i c[i] * v(i, j); rk: k i32, ck: n4 i32, c: k f64, out: n4 f64 (byte offsets)
  (func (export "synth") (param $rk i32) (param $k i32) (param $ck i32) (param $n4 i32) (param $c i32) (param $out i32)
    ${common} (local $olo v128) (local $ohi v128) ${locals('$r', SYNTH_ROWS, 'v128')} ${locals('$c', SYNTH_ROWS, 'v128')}
    ${constants}
    ${chunked(synthBlock, SYNTH_ROWS)})
  ;; acc[4i + l] += sum_{j mod 4 = l} v(i, j) * x[j] in f64 (x: n4 f64); acc: 4k f64
  (func (export "analyze") (param $rk i32) (param $k i32) (param $ck i32) (param $n4 i32) (param $x i32) (param $acc i32)
    ${common} (local $xlo v128) (local $xhi v128) ${locals('$r', ANALYZE_ROWS, 'v128')} ${locals('$alo', ANALYZE_ROWS, 'v128')} ${locals('$ahi', ANALYZE_ROWS, 'v128')}
    ${constants}
    ${chunked(analyzeBlock, ANALYZE_ROWS)})
  ;; per 1024-column chunk: s[l] = f32 sum over the chunk's j (mod 4 = l) of f32(v(i, j)) * x[j] (x: n4 f32),
  ;; then acc[4i + l] += f64(s[l]); acc: 4k f64
  (func (export "analyzeF32") (param $rk i32) (param $k i32) (param $ck i32) (param $n4 i32) (param $x i32) (param $acc i32)
    ${common} (local $xlo v128) ${locals('$r', A32_ROWS, 'v128')} ${locals('$s', A32_ROWS, 'v128')}
    ${constants}
    ${chunked(analyzeBlock32, A32_ROWS)})
)
`;
}

/**
 * The direct DFT of src/core/fft.ts (DirectPlan.batch) over column pairs, for the short odd factors of
 * LoRA lengths (e.g. 43 in 11008 = 2^8·43). Layout in memory (f64, byte offsets): re, im: n rows of
 * `count` columns; tc, ts: cos, sin of 2π (jk mod n)/n at [k·n + j]; ore, oim: the n output rows.
 * For each column pair q, q+1 (an odd last column is left to the caller) and output k:
 *   sr = 0; si = 0; for j ascending: sr += xr·c + xi·s; si += xi·c - xr·s
 * with c, s = tc, ts[k·n + j]: exactly the scalar loop's operations, one lane per column, so the
 * results are bit-identical to it (WebAssembly has no fused multiply-add). DFT_K outputs at a time
 * share each load of the input pair.
 */
const DFT_K = 4;

function dftBody(rows: number): string {
  const rowPtrs = Array.from({ length: rows }, (_, t) => [
    `(local.set $tc${t} (i32.add (local.get $tc) (i32.shl (i32.mul (i32.add (local.get $k) (i32.const ${t})) (local.get $n)) (i32.const 3))))`,
    `(local.set $ts${t} (i32.add (local.get $ts) (i32.shl (i32.mul (i32.add (local.get $k) (i32.const ${t})) (local.get $n)) (i32.const 3))))`,
    `(local.set $r${t} (v128.const i64x2 0 0)) (local.set $i${t} (v128.const i64x2 0 0))`,
  ].join('\n')).join('\n');
  const body = Array.from({ length: rows }, (_, t) => [
    `(local.set $c (f64x2.splat (f64.load (i32.add (local.get $tc${t}) (i32.shl (local.get $j) (i32.const 3))))))`,
    `(local.set $s (f64x2.splat (f64.load (i32.add (local.get $ts${t}) (i32.shl (local.get $j) (i32.const 3))))))`,
    `(local.set $r${t} (f64x2.add (local.get $r${t}) (f64x2.add (f64x2.mul (local.get $xr) (local.get $c)) (f64x2.mul (local.get $xi) (local.get $s)))))`,
    `(local.set $i${t} (f64x2.add (local.get $i${t}) (f64x2.sub (f64x2.mul (local.get $xi) (local.get $c)) (f64x2.mul (local.get $xr) (local.get $s)))))`,
  ].join('\n')).join('\n');
  const stores = Array.from({ length: rows }, (_, t) => [
    `(local.set $p (i32.shl (i32.add (i32.mul (i32.add (local.get $k) (i32.const ${t})) (local.get $count)) (local.get $q)) (i32.const 3)))`,
    `(v128.store (i32.add (local.get $ore) (local.get $p)) (local.get $r${t}))`,
    `(v128.store (i32.add (local.get $oim) (local.get $p)) (local.get $i${t}))`,
  ].join('\n')).join('\n');
  return [
    rowPtrs,
    `(local.set $j (i32.const 0))`,
    loop(`dj${rows}`, '(i32.ge_u (local.get $j) (local.get $n))', [
      `(local.set $p (i32.shl (i32.add (i32.mul (local.get $j) (local.get $count)) (local.get $q)) (i32.const 3)))`,
      `(local.set $xr (v128.load (i32.add (local.get $re) (local.get $p))))`,
      `(local.set $xi (v128.load (i32.add (local.get $im) (local.get $p))))`,
      body,
      `(local.set $j (i32.add (local.get $j) (i32.const 1)))`,
    ].join('\n')),
    stores,
  ].join('\n');
}

/**
 * The radix-2 butterflies of src/core/fft.ts (Radix2Plan) after the bit reversal, which the caller
 * does while copying in. Memory (f64, byte offsets): re, im: n rows of `count` columns; tc, ts: the
 * per-stage twiddles (stage `size` at [size/2 - 1, size - 1): cos and the signed sin). Every
 * butterfly is the scalar loop's
 *   xr = re[b]·wr - im[b]·wi; xi = re[b]·wi + im[b]·wr; re[b] = re[a] - xr; im[b] = im[a] - xi;
 *   re[a] = re[a] + xr; im[a] = im[a] + xi
 * one lane per butterfly: over column pairs (an odd last column in scalar f64), or for one
 * transform over pairs of adjacent j within a block (the first stage, half = 1, is scalar).
 * Bit-identical to the loop.
 */
function butterfly(vec: boolean): string {
  const T = vec ? 'f64x2' : 'f64';
  const ld = vec ? 'v128.load' : 'f64.load';
  const st = vec ? 'v128.store' : 'f64.store';
  return [
    `(local.set $br (${ld} (i32.add (local.get $re) (local.get $pb))))`,
    `(local.set $bi (${ld} (i32.add (local.get $im) (local.get $pb))))`,
    `(local.set $xr (${T}.sub (${T}.mul (local.get $br) (local.get $wr)) (${T}.mul (local.get $bi) (local.get $wi))))`,
    `(local.set $xi (${T}.add (${T}.mul (local.get $br) (local.get $wi)) (${T}.mul (local.get $bi) (local.get $wr))))`,
    `(local.set $ar (${ld} (i32.add (local.get $re) (local.get $pa))))`,
    `(local.set $ai (${ld} (i32.add (local.get $im) (local.get $pa))))`,
    `(${st} (i32.add (local.get $re) (local.get $pb)) (${T}.sub (local.get $ar) (local.get $xr)))`,
    `(${st} (i32.add (local.get $im) (local.get $pb)) (${T}.sub (local.get $ai) (local.get $xi)))`,
    `(${st} (i32.add (local.get $re) (local.get $pa)) (${T}.add (local.get $ar) (local.get $xr)))`,
    `(${st} (i32.add (local.get $im) (local.get $pa)) (${T}.add (local.get $ai) (local.get $xi)))`,
  ].join('\n');
}

function scalarButterfly(): string {
  return butterfly(false).replaceAll('$br', '$sbr').replaceAll('$bi', '$sbi').replaceAll('$xr', '$sxr').replaceAll('$xi', '$sxi')
    .replaceAll('$ar', '$sar').replaceAll('$ai', '$sai').replaceAll('$wr', '$swr').replaceAll('$wi', '$swi');
}

const SCALAR_LOCALS = '(local $swr f64) (local $swi f64) (local $sbr f64) (local $sbi f64) (local $sxr f64) (local $sxi f64) (local $sar f64) (local $sai f64)';

function r2Locals(T: string): string {
  return `(local $size i32) (local $half i32) (local $start i32) (local $j i32) (local $c i32) (local $pa i32) (local $pb i32) (local $tw i32) (local $hb i32)
    (local $wr ${T}) (local $wi ${T}) (local $br ${T}) (local $bi ${T}) (local $xr ${T}) (local $xi ${T}) (local $ar ${T}) (local $ai ${T})`;
}

export function radix2Wat(): string {
  // count = 1: stage size 2 scalar, then f64x2 over j (half ≥ 2 is even).
  const single = [
    '(local.set $size (i32.const 2))',
    loop('s1', '(i32.gt_u (local.get $size) (local.get $n))', [
      '(local.set $half (i32.shr_u (local.get $size) (i32.const 1)))',
      '(local.set $tw (i32.shl (i32.sub (local.get $half) (i32.const 1)) (i32.const 3)))',
      '(local.set $hb (i32.shl (local.get $half) (i32.const 3)))',
      '(if (i32.eq (local.get $half) (i32.const 1)) (then',
      '(local.set $swr (f64.load (i32.add (local.get $tc) (local.get $tw))))',
      '(local.set $swi (f64.load (i32.add (local.get $ts) (local.get $tw))))',
      '(local.set $start (i32.const 0))',
      loop('s1a', '(i32.ge_u (local.get $start) (local.get $n))', [
        '(local.set $pa (i32.shl (local.get $start) (i32.const 3)))',
        '(local.set $pb (i32.add (local.get $pa) (i32.const 8)))',
        scalarButterfly(),
        '(local.set $start (i32.add (local.get $start) (i32.const 2)))',
      ].join('\n')),
      ') (else',
      '(local.set $start (i32.const 0))',
      loop('s1b', '(i32.ge_u (local.get $start) (local.get $n))', [
        '(local.set $j (i32.const 0))',
        loop('s1j', '(i32.ge_u (local.get $j) (local.get $half))', [
          '(local.set $wr (v128.load (i32.add (i32.add (local.get $tc) (local.get $tw)) (i32.shl (local.get $j) (i32.const 3)))))',
          '(local.set $wi (v128.load (i32.add (i32.add (local.get $ts) (local.get $tw)) (i32.shl (local.get $j) (i32.const 3)))))',
          '(local.set $pa (i32.shl (i32.add (local.get $start) (local.get $j)) (i32.const 3)))',
          '(local.set $pb (i32.add (local.get $pa) (local.get $hb)))',
          butterfly(true),
          '(local.set $j (i32.add (local.get $j) (i32.const 2)))',
        ].join('\n')),
        '(local.set $start (i32.add (local.get $start) (local.get $size)))',
      ].join('\n')),
      '))',
      '(local.set $size (i32.shl (local.get $size) (i32.const 1)))',
    ].join('\n')),
  ].join('\n');
  // count even: f64x2 over column pairs, twiddles splatted.
  const batch = [
    '(local.set $size (i32.const 2))',
    loop('b1', '(i32.gt_u (local.get $size) (local.get $n))', [
      '(local.set $half (i32.shr_u (local.get $size) (i32.const 1)))',
      '(local.set $tw (i32.shl (i32.sub (local.get $half) (i32.const 1)) (i32.const 3)))',
      '(local.set $hb (i32.shl (i32.mul (local.get $half) (local.get $count)) (i32.const 3)))',
      '(local.set $start (i32.const 0))',
      loop('b1s', '(i32.ge_u (local.get $start) (local.get $n))', [
        '(local.set $j (i32.const 0))',
        loop('b1j', '(i32.ge_u (local.get $j) (local.get $half))', [
          '(local.set $wr (f64x2.splat (f64.load (i32.add (i32.add (local.get $tc) (local.get $tw)) (i32.shl (local.get $j) (i32.const 3))))))',
          '(local.set $wi (f64x2.splat (f64.load (i32.add (i32.add (local.get $ts) (local.get $tw)) (i32.shl (local.get $j) (i32.const 3))))))',
          '(local.set $pa (i32.shl (i32.mul (i32.add (local.get $start) (local.get $j)) (local.get $count)) (i32.const 3)))',
          '(local.set $c (i32.const 0))',
          loop('b1c', '(i32.ge_u (local.get $c) (local.get $cols))', [
            '(local.set $pb (i32.add (local.get $pa) (local.get $hb)))',
            butterfly(true),
            '(local.set $pa (i32.add (local.get $pa) (i32.const 16)))',
            '(local.set $c (i32.add (local.get $c) (i32.const 2)))',
          ].join('\n')),
          // an odd last column: the same butterfly in scalar f64
          '(if (i32.lt_u (local.get $cols) (local.get $count)) (then',
          '(local.set $swr (f64.load (i32.add (i32.add (local.get $tc) (local.get $tw)) (i32.shl (local.get $j) (i32.const 3)))))',
          '(local.set $swi (f64.load (i32.add (i32.add (local.get $ts) (local.get $tw)) (i32.shl (local.get $j) (i32.const 3)))))',
          '(local.set $pb (i32.add (local.get $pa) (local.get $hb)))',
          scalarButterfly(),
          '))',
          '(local.set $j (i32.add (local.get $j) (i32.const 1)))',
        ].join('\n')),
        '(local.set $start (i32.add (local.get $start) (local.get $size)))',
      ].join('\n')),
      '(local.set $size (i32.shl (local.get $size) (i32.const 1)))',
    ].join('\n')),
  ].join('\n');
  return `  ;; radix-2 stages after the bit reversal, one transform of n (see radix2Wat in scripts/build-wasm.ts)
  (func (export "r2") (param $re i32) (param $im i32) (param $tc i32) (param $ts i32) (param $n i32)
    ${r2Locals('v128')} ${SCALAR_LOCALS}
    ${single})
  ;; the same over count interleaved columns (cols = count & ~1 in pairs, an odd last one scalar)
  (func (export "r2batch") (param $re i32) (param $im i32) (param $tc i32) (param $ts i32) (param $n i32) (param $count i32) (param $cols i32)
    ${r2Locals('v128')} ${SCALAR_LOCALS}
    ${batch})
`;
}

export function fftKernelsWat(): string {
  const vlocals = ['$xr', '$xi', '$c', '$s', ...Array.from({ length: DFT_K }, (_, t) => [`$r${t}`, `$i${t}`]).flat()];
  const plocals = Array.from({ length: DFT_K }, (_, t) => [`$tc${t}`, `$ts${t}`]).flat();
  return `;; Generated by scripts/build-wasm.ts: do not edit by hand.
(module
  (memory (export "memory") 1)
  ;; direct DFT of n points over the column pairs below count (see fftKernelsWat in scripts/build-wasm.ts)
  (func (export "dft") (param $re i32) (param $im i32) (param $tc i32) (param $ts i32) (param $ore i32) (param $oim i32) (param $n i32) (param $count i32)
    (local $q i32) (local $k i32) (local $j i32) (local $p i32) ${plocals.map((l) => `(local ${l} i32)`).join(' ')}
    ${vlocals.map((l) => `(local ${l} v128)`).join(' ')}
    ${loop('dq', '(i32.gt_u (i32.add (local.get $q) (i32.const 2)) (local.get $count))', [
      '(local.set $k (i32.const 0))',
      loop('dk', `(i32.gt_u (i32.add (local.get $k) (i32.const ${DFT_K})) (local.get $n))`, [dftBody(DFT_K), `(local.set $k (i32.add (local.get $k) (i32.const ${DFT_K})))`].join('\n')),
      loop('dk1', '(i32.ge_u (local.get $k) (local.get $n))', [dftBody(1), '(local.set $k (i32.add (local.get $k) (i32.const 1)))'].join('\n')),
      '(local.set $q (i32.add (local.get $q) (i32.const 2)))',
    ].join('\n'))})
${radix2Wat()})
`;
}

export function toFftModuleSource(bytes: Uint8Array): string {
  const b64 = Buffer.from(bytes).toString('base64');
  const lines = b64.match(/.{1,100}/g) ?? [];
  return `/**
 * The FFT's direct-DFT kernel as a WebAssembly SIMD module (base64). Generated by
 * scripts/build-wasm.ts from fft-kernels.wat beside this file: do not edit; run \`npm run wasm\`.
 */
export const FFT_WASM_BASE64 =
${lines.map((l) => `  '${l}'`).join(' +\n')};
`;
}

export function toModuleSource(bytes: Uint8Array): string {
  const b64 = Buffer.from(bytes).toString('base64');
  const lines = b64.match(/.{1,100}/g) ?? [];
  return `/**
 * The uniform-basis kernels as a WebAssembly SIMD module (base64). Generated by
 * scripts/build-wasm.ts from kernels.wat beside this file: do not edit; run \`npm run wasm\`.
 */
export const KERNELS_WASM_BASE64 =
${lines.map((l) => `  '${l}'`).join(' +\n')};
`;
}

export async function compileWat(text: string): Promise<Uint8Array> {
  const { default: init } = await import('wabt');
  const wabt = await init();
  const mod = wabt.parseWat('kernels.wat', text, { simd: true });
  try {
    mod.validate();
    return new Uint8Array(mod.toBinary({}).buffer);
  } finally {
    mod.destroy();
  }
}

async function main(): Promise<void> {
  // The checkout: the first folder above the compiled script that holds package.json.
  let root = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(root, 'package.json')) && root !== path.dirname(root)) root = path.dirname(root);
  const dir = path.join(root, 'src/core/kernels');
  const text = kernelsWat();
  const bytes = await compileWat(text);
  await writeFile(path.join(dir, 'kernels.wat'), text);
  const source = toModuleSource(bytes);
  const target = path.join(dir, 'wasm-module.ts');
  const before = await readFile(target, 'utf8').catch(() => '');
  await writeFile(target, source);
  process.stdout.write(`${before === source ? 'unchanged' : 'wrote'} ${target} (${bytes.length} bytes of wasm)\n`);
  const fftText = fftKernelsWat();
  const fftBytes = await compileWat(fftText);
  await writeFile(path.join(dir, 'fft-kernels.wat'), fftText);
  const fftSource = toFftModuleSource(fftBytes);
  const fftTarget = path.join(dir, 'fft-wasm-module.ts');
  const fftBefore = await readFile(fftTarget, 'utf8').catch(() => '');
  await writeFile(fftTarget, fftSource);
  process.stdout.write(`${fftBefore === fftSource ? 'unchanged' : 'wrote'} ${fftTarget} (${fftBytes.length} bytes of wasm)\n`);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) await main();
