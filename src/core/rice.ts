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

/** Bytes of a block holding `levels` with parameter k. */
function blockBytes(levels: Int32Array, k: number): number {
  const div = 2 ** k;
  let unary = levels.length;
  for (let i = 0; i < levels.length; i++) unary += Math.floor(zigzag(levels[i]) / div);
  return RICE_HEADER_BYTES + Math.ceil((levels.length * k) / 8) + Math.ceil(unary / 8);
}

/** The k with the fewest bytes for these levels, and that size. */
export function bestRiceK(levels: Int32Array): { k: number; bytes: number } {
  let best = { k: 0, bytes: blockBytes(levels, 0) };
  for (let k = 1; k <= MAX_RICE_K; k++) {
    const bytes = blockBytes(levels, k);
    if (bytes < best.bytes) best = { k, bytes };
    else if (bytes > best.bytes + levels.length) break; // past the minimum: sizes grow with k from here
  }
  return best;
}

/** Encodes `values` at `step` (rounded to f32 first). Returns the block and the f32 step used. */
export function encodeRice(values: ArrayLike<number>, requestedStep: number): { bytes: Uint8Array; step: number } {
  const step = Math.fround(requestedStep);
  if (!(step > 0) || !Number.isFinite(step)) throw new NumericError(`rice step must be a positive finite f32, got ${requestedStep}`);
  const levels = riceLevels(values, step);
  const { k, bytes: size } = bestRiceK(levels);
  const out = new Uint8Array(size);
  new DataView(out.buffer).setFloat32(0, step, true);
  out[4] = k;
  const n = levels.length;
  const remStart = RICE_HEADER_BYTES;
  const unaryStart = remStart + Math.ceil((n * k) / 8);
  const div = 2 ** k;
  let remBit = 0;
  let unaryBit = 0;
  for (let i = 0; i < n; i++) {
    const z = zigzag(levels[i]);
    const quotient = Math.floor(z / div);
    let rem = z - quotient * div;
    for (let b = 0; b < k; b++, remBit++) {
      if (rem % 2 === 1) out[remStart + (remBit >>> 3)] |= 1 << (remBit & 7);
      rem = Math.floor(rem / 2);
    }
    unaryBit += quotient;
    out[unaryStart + Math.floor(unaryBit / 8)] |= 1 << (unaryBit % 8);
    unaryBit += 1;
  }
  return { bytes: out, step };
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
  const div = 2 ** k;
  const unaryBits = (block.length - unaryStart) * 8;
  let remBit = 0;
  let bit = 0;
  for (let i = 0; i < count; i++) {
    let rem = 0;
    for (let b = 0; b < k; b++, remBit++) {
      if ((block[remStart + (remBit >>> 3)] >>> (remBit & 7)) & 1) rem += 2 ** b;
    }
    let quotient = 0;
    // Skip zero bytes whole, then bits up to the next one.
    while (bit < unaryBits && (bit & 7) === 0 && block[unaryStart + (bit >>> 3)] === 0) { bit += 8; quotient += 8; }
    while (bit < unaryBits && ((block[unaryStart + (bit >>> 3)] >>> (bit & 7)) & 1) === 0) { bit++; quotient++; }
    if (bit >= unaryBits) throw new FormatError(`rice block: the unary stream ends before value ${i} of ${count}`);
    bit++;
    const z = quotient * div + rem;
    if (z >= 2 * MAX_LEVEL) throw new FormatError(`rice block: level at index ${i} exceeds 2^30`);
    const q = z % 2 === 0 ? z / 2 : -(z + 1) / 2;
    out[i] = q * step;
  }
  // The block ends with the byte holding the last one bit; the bits after it are zero.
  if (Math.ceil(bit / 8) !== block.length - unaryStart) {
    throw new FormatError(`rice block: ${block.length - unaryStart - Math.ceil(bit / 8)} bytes after the last value`);
  }
  if (bit % 8 !== 0 && block[block.length - 1] >>> (bit % 8) !== 0) throw new FormatError('rice block: the padding bits after the last value are not zero');
}
