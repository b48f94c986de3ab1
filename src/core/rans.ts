/**
 * The `rans` coefficient coding (format version 3): the levels of a rice block (uniform scalar
 * quantization with one step per block) entropy-coded by a range asymmetric numeral system under a
 * discretized-Gaussian model chosen by one byte. Part of the file format (docs/FORMAT.md, "rANS
 * blocks"):
 *
 *   block   = step (f32, little-endian; finite, > 0) · p (u8, ≤ 95) · state (u32 LE, in [2^23, 2^31)) · bytes
 *   model   weights w_0 = 2^24, w_{q+1} = ⌊w_q·c / 2^24⌋ with c = R_p·r2^q (fixed point, floored at
 *           every step), up to the last q with w_q > 0 (= L); frequencies out of 2^16:
 *           f_q = 1 + ⌊w_|q|·(2^16 − n) / W⌋ for q = −L … L (n = 2L + 1, W = Σ w_|q|), f_0 takes the rest
 *   decode  s = x mod 2^16, q = the level whose [C_q, C_q + f_q) holds s,
 *           x = f_q·⌊x / 2^16⌋ + s − C_q, then while x < 2^23: x = 256·x + next byte;
 *           the block ends with x = 2^23 (the encoder's start) and every byte read
 *
 * The model is integer arithmetic only, so every reader builds the same table bit for bit (no erf,
 * no exp: RANS_R is a table). Products stay below 2^48 before their division, exact in float64.
 * The levels, and so the values read back, are the rice block's: which code a block uses changes
 * its bytes, never its values (quantize.ts codes each block both ways and keeps the shorter).
 */
import { FormatError } from '../errors.js';
import { RANS_R } from './constants.js';

/** Bytes before the renormalization bytes: step (f32), p (u8), state (u32). */
export const RANS_HEADER_BYTES = 9;
/** Largest model index. */
export const MAX_RANS_P = RANS_R.length - 1;
const PROB_BITS = 16;
const M = 1 << PROB_BITS;
const LOW = 1 << 23; // the state's lower bound, and the encoder's initial state
const FIX = 2 ** 24;
const MAX_MAGNITUDE = 4095;

interface Model {
  /** Largest |level| the model can code. */
  readonly L: number;
  /** f[q + L] for q = −L … L, summing to 2^16. */
  readonly freq: Uint32Array;
  /** cum[q + L] = Σ of the frequencies below q; cum[2L + 1] = 2^16. */
  readonly cum: Uint32Array;
  /** 16 − log2 f: the bits a level costs, for the encoder's choice of p. */
  readonly bits: Float64Array;
}

const models: Array<Model | undefined> = new Array(RANS_R.length);

/** ⌊a·b / 2^24⌋ for integers a, b < 2^24: the product is below 2^48, exact in float64. */
function mulFix(a: number, b: number): number {
  return Math.floor((a * b) / FIX);
}

/** ⌊a / b⌋ for non-negative integers a < 2^53, b ≥ 1, corrected for float64 rounding of the quotient. */
function divFloor(a: number, b: number): number {
  let t = Math.floor(a / b);
  if (t * b > a) t--;
  else if ((t + 1) * b <= a) t++;
  return t;
}

/** The model of p (docs/FORMAT.md, "rANS blocks"), built once per thread. */
export function ransModel(p: number): Model {
  const cached = models[p];
  if (cached !== undefined) return cached;
  const R = RANS_R[p];
  const w = [FIX];
  let c = R;
  const r2 = mulFix(R, R);
  while (w.length <= MAX_MAGNITUDE) {
    const next = mulFix(w[w.length - 1], c);
    if (next === 0) break;
    w.push(next);
    c = mulFix(c, r2);
  }
  const L = w.length - 1;
  const n = 2 * L + 1;
  let W = w[0];
  for (let q = 1; q <= L; q++) W += 2 * w[q];
  const freq = new Uint32Array(n);
  let total = 0;
  for (let q = -L; q <= L; q++) {
    freq[q + L] = 1 + divFloor(w[Math.abs(q)] * (M - n), W);
    total += freq[q + L];
  }
  freq[L] += M - total;
  const cum = new Uint32Array(n + 1);
  for (let i = 0; i < n; i++) cum[i + 1] = cum[i] + freq[i];
  const bits = new Float64Array(n);
  for (let i = 0; i < n; i++) bits[i] = PROB_BITS - Math.log2(freq[i]);
  const model = { L, freq, cum, bits };
  models[p] = model;
  return model;
}

/** The largest |level| any model codes (L of p = 95). */
export function maxRansMagnitude(): number {
  return ransModel(MAX_RANS_P).L;
}

/**
 * The p of the fewest estimated bits for these levels among the models that cover their largest
 * |level|, searched around the levels' RMS (the model's u = 2^((p − 24)/8) levels), and that
 * estimate in bytes (the block's size within a byte or two); undefined when no model covers them.
 */
export function chooseRansModel(levels: Int32Array): { p: number; bytes: number } | undefined {
  let maxAbs = 0, sum2 = 0;
  for (let i = 0; i < levels.length; i++) {
    const a = Math.abs(levels[i]);
    if (a > maxAbs) maxAbs = a;
    sum2 += a * a;
  }
  if (maxAbs > maxRansMagnitude()) return undefined;
  const hist = new Float64Array(2 * maxAbs + 1);
  for (let i = 0; i < levels.length; i++) hist[levels[i] + maxAbs]++;
  const rms = Math.sqrt(sum2 / Math.max(1, levels.length));
  const center = rms > 0 ? Math.round(24 + 8 * Math.log2(rms)) : 0;
  let best: { p: number; bytes: number } | undefined;
  // L grows with p (R_p does), so every p from the first that covers maxAbs covers it.
  let lo = Math.max(0, center - 4);
  while (lo < MAX_RANS_P && ransModel(lo).L < maxAbs) lo++;
  for (let p = lo; p <= Math.min(MAX_RANS_P, Math.max(lo, center) + 4); p++) {
    const m = ransModel(p);
    let bits = 0;
    for (let v = -maxAbs; v <= maxAbs; v++) bits += hist[v + maxAbs] * m.bits[v + m.L];
    const bytes = RANS_HEADER_BYTES + Math.ceil(bits / 8);
    if (best === undefined || bytes < best.bytes) best = { p, bytes };
  }
  return best;
}

let scratch = new Uint8Array(0);

/**
 * The rans block of `levels` at `step` (an f32 value) under model p (default: the one of the fewest
 * bytes), or undefined where the model (or no model) covers them.
 */
export function encodeRans(levels: Int32Array, step: number, p: number | undefined = chooseRansModel(levels)?.p): Uint8Array | undefined {
  if (p === undefined) return undefined;
  const { L, freq, cum } = ransModel(p);
  for (let i = 0; i < levels.length; i++) if (Math.abs(levels[i]) > L) return undefined;
  // Renormalization bytes are emitted last-first: fill a scratch buffer from its end. A level costs
  // at most 16 bits (f ≥ 1), so 2 bytes a level always suffice. The buffer is kept for the next
  // block (one per thread, grown as needed) rather than allocated per block.
  if (scratch.length < 2 * levels.length + 4) scratch = new Uint8Array(2 * levels.length + 4);
  let at = scratch.length;
  let x = LOW;
  for (let i = levels.length - 1; i >= 0; i--) {
    const s = levels[i] + L;
    const f = freq[s];
    const xMax = f * (1 << (23 - PROB_BITS + 8)); // ((2^23 >> 16) << 8)·f = 2^15·f
    while (x >= xMax) { scratch[--at] = x & 0xff; x = Math.floor(x / 256); }
    const d = Math.floor(x / f);
    x = d * M + (x - d * f) + cum[s];
  }
  const out = new Uint8Array(RANS_HEADER_BYTES + (scratch.length - at));
  const view = new DataView(out.buffer);
  view.setFloat32(0, step, true);
  out[4] = p;
  view.setUint32(5, x, true);
  out.set(scratch.subarray(at), RANS_HEADER_BYTES);
  return out;
}

/** level index of each slot s ∈ [0, 2^16) for the block being decoded (rebuilt per block, one per thread). */
let slots: Uint16Array | undefined;

/** out[0..count) = the block's values. Throws FormatError on a block that breaks the layout. */
export function decodeRans(block: Uint8Array, count: number, out: Float64Array): void {
  if (block.length < RANS_HEADER_BYTES) throw new FormatError(`rans block of ${block.length} bytes is shorter than its ${RANS_HEADER_BYTES}-byte header`);
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const step = view.getFloat32(0, true);
  if (!(step > 0) || !Number.isFinite(step)) throw new FormatError(`rans block: step ${step} is not a positive finite f32`);
  const p = block[4];
  if (p > MAX_RANS_P) throw new FormatError(`rans block: model p = ${p} exceeds ${MAX_RANS_P}`);
  let x = view.getUint32(5, true);
  if (x < LOW || x >= 2 ** 31) throw new FormatError(`rans block: state ${x} is outside [2^23, 2^31)`);
  const { L, freq, cum } = ransModel(p);
  slots ??= new Uint16Array(M);
  for (let i = 0; i < freq.length; i++) slots.fill(i, cum[i], cum[i + 1]);
  let at = RANS_HEADER_BYTES;
  const end = block.length;
  for (let i = 0; i < count; i++) {
    const s = x & (M - 1);
    const sym = slots[s];
    x = freq[sym] * (x >>> PROB_BITS) + s - cum[sym];
    while (x < LOW) {
      if (at >= end) throw new FormatError(`rans block: the bytes end before value ${i} of ${count}`);
      x = x * 256 + block[at++];
    }
    out[i] = (sym - L) * step;
  }
  if (at !== end) throw new FormatError(`rans block: ${end - at} bytes after the last value`);
  if (x !== LOW) throw new FormatError(`rans block: the coder ends in state ${x}, not its starting 2^23 (the bytes are not a writer's)`);
}
