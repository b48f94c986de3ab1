/**
 * The `rice` coefficient coding: uniform scalar quantization with one step per block, the integer
 * levels entropy-coded with a Rice code. Part of the file format (docs/FORMAT.md, "Rice blocks"):
 *
 *   block   = step (f32, little-endian; finite, > 0) · k (u8, ≤ MAX_RICE_K) · remainders · unary
 *   level   q_i = round_half_even(x_i / step),  |q_i| ≤ 2^30;  value read back = q_i · step
 *   zigzag  z_i = 2·q_i for q_i ≥ 0, −2·q_i − 1 for q_i < 0
 *   remainders  z_i mod 2^k, k bits each, packed little-endian like the int codes (code t at bits
 *               t·k .. t·k + k − 1, least significant bit first), zero bits up to the byte boundary
 *   unary   for each i, ⌊z_i / 2^k⌋ zero bits then a one bit, bit s = bit (s mod 8) of byte ⌊s/8⌋;
 *           zero bits up to the byte boundary, and nothing after: the block ends there
 *
 * Splitting the code into two streams keeps both decodable with vector operations (numpy: the
 * positions of the one bits give every quotient at once). Against fixed-width integer codes with
 * per-group scales, the coded levels cost ~0.5 bit less per coefficient at the same error on the
 * near-Gaussian coefficients of a random orthonormal basis: no scales, no clipping, and the Rice
 * code spends short words on the frequent small levels.
 */
import { FormatError, NumericError } from '../errors.js';
import { roundHalfEven } from './half.js';

/** Largest Rice parameter a block may use. */
export const MAX_RICE_K = 24;
/** Largest |level| (so that z < 2^31). */
const MAX_LEVEL = 2 ** 30;
/** Bytes before the remainders: step (f32) and k (u8). */
export const RICE_HEADER_BYTES = 5;

/** The levels of `values` at `step` (already an f32 value). */
export function riceLevels(values: ArrayLike<number>, step: number): Int32Array {
  const q = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = values[i] / step;
    if (!Number.isFinite(x) || Math.abs(x) > MAX_LEVEL) {
      throw new NumericError(`coefficient ${values[i]} at index ${i} is out of range for rice step ${step}`);
    }
    q[i] = roundHalfEven(x);
  }
  return q;
}

function zigzag(q: number): number {
  return q >= 0 ? 2 * q : -2 * q - 1;
}

/** Zigzagged levels below this are counted in a histogram; the few above it are summed directly. */
const HISTOGRAM = 1024;

/**
 * The k with the fewest bytes for these levels, and that size: with z_i their zigzags, a block
 * holds 5 + ⌈n·k/8⌉ + ⌈(n + Σ ⌊z_i/2^k⌋)/8⌉ bytes. One pass builds a histogram of the small z, so
 * every k is then sized from the histogram (ties go to the smaller k, as a scan from k = 0 would).
 */
export function bestRiceK(levels: Int32Array): { k: number; bytes: number } {
  const n = levels.length;
  const hist = new Float64Array(HISTOGRAM);
  const large: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = zigzag(levels[i]);
    if (v < HISTOGRAM) hist[v]++;
    else large.push(v);
  }
  let best = { k: 0, bytes: Infinity };
  for (let k = 0; k <= MAX_RICE_K; k++) {
    let unary = n;
    for (let v = 1 << k; v < HISTOGRAM; v++) unary += hist[v] * (v >>> k);
    for (const v of large) unary += v >>> k;
    const bytes = RICE_HEADER_BYTES + Math.ceil((n * k) / 8) + Math.ceil(unary / 8);
    if (bytes < best.bytes) best = { k, bytes };
    else if (bytes > best.bytes + n) break; // past the minimum: sizes grow with k from here
  }
  return best;
}

/** The f32 step a block stores for `requestedStep`; throws NumericError unless it is positive and finite. */
export function riceStep(requestedStep: number): number {
  const step = Math.fround(requestedStep);
  if (!(step > 0) || !Number.isFinite(step)) throw new NumericError(`rice step must be a positive finite f32, got ${requestedStep}`);
  return step;
}

/** Encodes `values` at `step` (rounded to f32 first). Returns the block and the f32 step used. */
export function encodeRice(values: ArrayLike<number>, requestedStep: number): { bytes: Uint8Array; step: number } {
  const step = riceStep(requestedStep);
  const levels = riceLevels(values, step);
  const { k, bytes } = bestRiceK(levels);
  return { bytes: encodeRiceLevels(levels, step, k, bytes), step };
}

/** The block of `levels` at `step` (an f32 value) with parameter k and `size` bytes (both from bestRiceK). */
export function encodeRiceLevels(levels: Int32Array, step: number, k: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  new DataView(out.buffer).setFloat32(0, step, true);
  out[4] = k;
  const n = levels.length;
  const mask = k === 0 ? 0 : (2 ** k - 1) >>> 0;
  // Remainders, k bits each, least significant first: an accumulator flushed a byte at a time
  // (after a flush fewer than 8 bits are pending and k ≤ 24, so it never exceeds 32 bits).
  let at = RICE_HEADER_BYTES, acc = 0, pending = 0;
  if (k > 0) {
    for (let i = 0; i < n; i++) {
      acc = (acc | ((zigzag(levels[i]) & mask) << pending)) >>> 0;
      pending += k;
      while (pending >= 8) { out[at++] = acc & 0xff; acc >>>= 8; pending -= 8; }
    }
    if (pending > 0) out[at++] = acc & 0xff;
  }
  // Unary quotients: q zero bits then a one bit; the buffer starts zeroed, so only the ones are set.
  let bit = at * 8;
  for (let i = 0; i < n; i++) {
    bit += zigzag(levels[i]) >>> k;
    out[Math.floor(bit / 8)] |= 1 << (bit & 7);
    bit += 1;
  }
  return out;
}

/** out[0..count) = the block's values. Throws FormatError on a block that breaks the layout. */
export function decodeRice(block: Uint8Array, count: number, out: Float64Array): void {
  if (block.length < RICE_HEADER_BYTES) throw new FormatError(`rice block of ${block.length} bytes is shorter than its ${RICE_HEADER_BYTES}-byte header`);
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const step = view.getFloat32(0, true);
  if (!(step > 0) || !Number.isFinite(step)) throw new FormatError(`rice block: step ${step} is not a positive finite f32`);
  const k = block[4];
  if (k > MAX_RICE_K) throw new FormatError(`rice block: k = ${k} exceeds ${MAX_RICE_K}`);
  const remStart = RICE_HEADER_BYTES;
  const unaryStart = remStart + Math.ceil((count * k) / 8);
  if (unaryStart > block.length) throw new FormatError(`rice block: ${block.length} bytes cannot hold ${count} remainders of ${k} bits`);
  const remBits = count * k;
  if (remBits % 8 !== 0 && block[unaryStart - 1] >>> (remBits % 8) !== 0) {
    throw new FormatError('rice block: the padding bits after the last remainder are not zero');
  }
  const end = block.length;
  const mask = k === 0 ? 0 : (2 ** k - 1) >>> 0;
  const div = 2 ** k;
  let at = remStart, acc = 0, pending = 0;
  // Unary reader: `byteAt` is the byte under the cursor, `cur` its bits not yet consumed.
  let byteAt = unaryStart, cur = unaryStart < end ? block[unaryStart] : 0, bitInByte = 0;
  for (let i = 0; i < count; i++) {
    let rem = 0;
    if (k > 0) {
      while (pending < k) { acc = (acc | (block[at++] << pending)) >>> 0; pending += 8; }
      rem = acc & mask;
      acc >>>= k;
      pending -= k;
    }
    // The next one bit: skip zero bytes whole, then count zeros below the lowest set bit.
    let quotient = 0;
    while (cur === 0) {
      quotient += 8 - bitInByte;
      byteAt++;
      if (byteAt >= end) throw new FormatError(`rice block: the unary stream ends before value ${i} of ${count}`);
      cur = block[byteAt];
      bitInByte = 0;
    }
    const low = 31 - Math.clz32(cur & -cur); // index of the lowest set bit of cur
    quotient += low - bitInByte;
    bitInByte = low + 1;
    cur &= ~((2 << low) - 1) & 0xff; // consume it and the zeros below
    const z = quotient * div + rem;
    if (z >= 2 * MAX_LEVEL) throw new FormatError(`rice block: level at index ${i} exceeds 2^30`);
    out[i] = ((z >>> 1) ^ -(z & 1)) * step; // zigzag back: exact for z < 2^31

  }
  // The block ends with the byte holding the last one bit; the bits after it are zero.
  const used = count === 0 ? 0 : byteAt - unaryStart + 1;
  if (used !== end - unaryStart) {
    throw new FormatError(`rice block: ${end - unaryStart - used} bytes after the last value`);
  }
  if (count > 0 && cur !== 0) throw new FormatError('rice block: the padding bits after the last value are not zero');
}
