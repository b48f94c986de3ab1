/**
 * Coefficient storage: float modes (f32, f16, bf16) and symmetric per-group integer modes
 * (int8, int6, int5, int4, int3, int2). The layout is part of the file format (docs/FORMAT.md,
 * "Quantization"):
 *
 *   float modes  codes = the values as little-endian f32 / f16 / bf16, round to nearest even;
 *                scales is empty.
 *   int<b>       groups of QUANT_GROUP_SIZE consecutive values (the last group may be short).
 *                Per group: scale = the smallest f16 ≥ absmax / L (or, with clipSearch, the candidate
 *                of SCALE_CANDIDATES with the least squared error), with L = 2^(b-1) - 1, stored as
 *                little-endian f16 bits; the scale is fixed BEFORE the levels are chosen, so
 *                what is stored is exactly what is measured. Level q = round_half_even(x / scale)
 *                ∈ [-L, L]; the value read back is q · scale.
 *                Codes: u = q + 2^(b-1) ∈ [1, 2^b - 1] (u = 0 is invalid), bit-packed
 *                little-endian: code t occupies bits t·b .. t·b + b - 1 of the stream, stream bit s
 *                is bit (s mod 8) of byte ⌊s/8⌋, the code's least significant bit first; the bits
 *                after the last code, up to the byte boundary, are zero.
 *
 * Intended use by the fitter (error feedback without GPTQ-style sequential rounding): quantize
 * factor A's coefficients, synthesize A from the DEQUANTIZED coefficients, re-solve B's
 * coefficients in full precision against that A (B absorbs A's rounding error), then quantize B,
 * and report the error of the dequantized pair. quantize + dequantize is all it needs.
 */
import { QUANT_GROUP_SIZE } from './constants.js';
import { bf16Bits, bf16Value, f16Bits, f16CeilBits, f16Value, roundHalfEven } from './half.js';
import { FormatError, NumericError, UsageError } from '../errors.js';
import { bestRiceK, decodeRice, encodeRiceLevels, RICE_HEADER_BYTES, riceLevels, riceStep } from './rice.js';
import { chooseRansModel, decodeRans, encodeRans, RANS_HEADER_BYTES } from './rans.js';

export const QUANT_MODES = ['f32', 'f16', 'bf16', 'int8', 'int6', 'int5', 'int4', 'int3', 'int2'] as const;
export type QuantMode = (typeof QUANT_MODES)[number];

/**
 * How one factor's coefficients are stored: one mode for all of them, or consecutive segments
 * [mode, count] (counts ≥ 1, summing to the factor's count), e.g. [["int5", 20480], ["int4", 12288]]:
 * the first 20480 values in int5, the rest in int4. Segments let --max-error spend a layer's error
 * budget exactly instead of jumping a whole bit. A segmented block's codes are each segment's codes
 * (byte-padded) one after the other, its scales likewise; groups restart at each segment.
 */
export type QuantSpec = QuantMode | ReadonlyArray<QuantSegment>;

/** The entropy-coded block kinds: the same levels, coded by Rice (src/core/rice.ts) or rANS (src/core/rans.ts, version 3). */
export type EntropyCoding = 'rice' | 'rans';

/**
 * One segment: [mode, count] for the fixed-size modes, ["rice" | "rans", count, bytes] for an
 * entropy-coded block, whose length depends on the values and so is stated.
 */
export type QuantSegment = readonly [QuantMode, number] | readonly [EntropyCoding, number, number];

/**
 * What the encoder is asked for: a stored spec, or entropy-coded levels at a given step; with a list
 * of steps, the values are cut into that many equal segments, each a block at its own step. Each
 * block is a rice block, or with `rans` (format version 3) whichever of rice and rans is shorter
 * (rice on a tie): the levels, so the values read back, are the same either way.
 */
export type QuantRequest = QuantSpec | { readonly rice: number | readonly number[]; readonly rans?: boolean };

/** Smallest `bytes` a block of `count` values of this kind can have: a rice value takes at least one unary bit. */
export function minEntropyBlockBytes(kind: EntropyCoding, count: number): number {
  return kind === 'rice' ? RICE_HEADER_BYTES + Math.ceil(count / 8) : RANS_HEADER_BYTES;
}

export function isEntropySegment(seg: QuantSegment): seg is readonly [EntropyCoding, number, number] {
  return seg[0] === 'rice' || seg[0] === 'rans';
}

/** At most this many segments per factor (fixed-size codes use up to two; the component layout one rice block per rank-1 component). */
export const MAX_SEGMENTS = 1024;

/** The segments of `spec` for `count` values; throws FormatError where they do not add up. */
export function quantSegments(spec: QuantSpec, count: number): QuantSegment[] {
  if (typeof spec === 'string') return [[spec, count]];
  if (!Array.isArray(spec) || spec.length < 1 || spec.length > MAX_SEGMENTS) throw new FormatError(`quantization segments: 1 to ${MAX_SEGMENTS} [mode, count] pairs expected`);
  let total = 0;
  for (const seg of spec as ReadonlyArray<unknown[]>) {
    const fixed = Array.isArray(seg) && seg.length === 2 && QUANT_MODES.includes(seg[0] as QuantMode);
    const kind = Array.isArray(seg) ? seg[0] : undefined;
    const header = kind === 'rice' ? RICE_HEADER_BYTES : kind === 'rans' ? RANS_HEADER_BYTES : undefined;
    const entropy = header !== undefined && seg.length === 3 && Number.isInteger(seg[2]) && (seg[2] as number) >= header && (seg[2] as number) <= 0x7fffffff;
    if (!(fixed || entropy) || !Number.isInteger(seg[1]) || (seg[1] as number) < 1) {
      throw new FormatError(`quantization segment ${JSON.stringify(seg)} is not [mode, count ≥ 1], ["rice", count ≥ 1, bytes ≥ ${RICE_HEADER_BYTES}] or ["rans", count ≥ 1, bytes ≥ ${RANS_HEADER_BYTES}]`);
    }
    total += seg[1] as number;
  }
  if (total !== count) throw new FormatError(`quantization segments hold ${total} values, the factor has ${count}`);
  return spec.map((seg) => (isEntropySegment(seg) ? [seg[0], seg[1], seg[2]] as const : [seg[0], seg[1]] as const));
}

/**
 * "int5", or "int5×20480+int4×12288" for a segmented spec; a factor coded per rank-1 component (one
 * entropy-coded block per component, all of one length) as "rans(6.01…2.59b)×12×4096": 12 blocks
 * of 4096 values from the first block's bits per value to the last's, so a rank-16 layer stays one
 * line ("rans+rice(…)" where both kinds occur).
 */
export function describeQuant(spec: QuantSpec): string {
  if (typeof spec === 'string') return spec;
  const bits = (seg: QuantSegment): string => ((8 * (seg as readonly [EntropyCoding, number, number])[2]) / seg[1]).toFixed(2);
  const one = (seg: QuantSegment): string => (isEntropySegment(seg) ? `${seg[0]}(${bits(seg)}b)` : seg[0]);
  if (spec.length > 2 && spec.every((seg) => isEntropySegment(seg) && seg[1] === spec[0][1])) {
    const kinds = [...new Set(spec.map((seg) => seg[0]))].sort().join('+');
    return `${kinds}(${bits(spec[0])}…${bits(spec[spec.length - 1])}b)×${spec.length}×${spec[0][1]}`;
  }
  return spec.length === 1 ? one(spec[0]) : spec.map((seg) => `${one(seg)}×${seg[1]}`).join('+');
}

/** Bytes of the codes and of the scales of `count` values stored as `spec`. */
export function quantizedSizes(count: number, spec: QuantSpec): { codes: number; scales: number } {
  let codes = 0, scales = 0;
  for (const seg of quantSegments(spec, count)) {
    if (isEntropySegment(seg)) {
      codes += seg[2];
      continue;
    }
    const [mode, n] = seg;
    const bits = bitsPerValue(mode);
    if (isFloatMode(mode)) {
      codes += n * (bits / 8);
    } else {
      codes += Math.ceil((n * bits) / 8);
      scales += 2 * groupCount(n);
    }
  }
  return { codes, scales };
}

export interface QuantizedBlock {
  readonly mode: QuantSpec;
  /** Number of values. */
  readonly count: number;
  /** Float modes: the raw little-endian float bytes. Int modes: the packed codes. */
  readonly codes: Uint8Array;
  /** Int modes: one little-endian f16 scale per group. Float modes: empty. */
  readonly scales: Uint8Array;
  /**
   * Entropy-coded blocks: the code bytes had every block been a rice block (what the search's Rice
   * model predicts; equal to codes.length without rans). Absent for the fixed-size modes.
   */
  readonly riceBytes?: number;
}

/** Bits of one stored code (32, 16 or b), not counting the int modes' per-group scales. */
export function bitsPerValue(mode: QuantMode): number {
  switch (mode) {
    case 'f32': return 32;
    case 'f16': case 'bf16': return 16;
    case 'int8': return 8;
    case 'int6': return 6;
    case 'int5': return 5;
    case 'int4': return 4;
    case 'int3': return 3;
    case 'int2': return 2;
    default: throw new UsageError(`unknown quantization mode ${JSON.stringify(mode)}; expected one of ${QUANT_MODES.join(', ')}`);
  }
}

function isFloatMode(mode: QuantMode): boolean {
  return mode === 'f32' || mode === 'f16' || mode === 'bf16';
}

function groupCount(count: number): number {
  return Math.ceil(count / QUANT_GROUP_SIZE);
}

/** Exact stored bytes for `count` values: codes plus, for int modes, 2 bytes of scale per group. */
export function quantizedBytes(count: number, spec: QuantSpec): number {
  const { codes, scales } = quantizedSizes(count, spec);
  return codes + scales;
}

export interface QuantizeOptions {
  /** Search each group's scale among SCALE_CANDIDATES for the least squared error (default: absmax scaling). */
  clipSearch?: boolean;
}

export function quantize(values: ArrayLike<number>, spec: QuantRequest, options: QuantizeOptions = {}): QuantizedBlock {
  // One check for every path (indices are the factor's, whatever segment a value falls in).
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) throw new NumericError(`cannot quantize a non-finite coefficient (${values[i]} at index ${i})`);
  }
  if (typeof spec === 'string') return quantizeMode(values, spec, options);
  if (!Array.isArray(spec)) {
    const { rice, rans } = spec as { rice: number | readonly number[]; rans?: boolean };
    const steps = typeof rice === 'number' ? [rice] : rice;
    const len = values.length / steps.length;
    if (!Number.isInteger(len) || len < 1) throw new RangeError(`quantize: ${values.length} values do not split into ${steps.length} equal rice segments`);
    const part = (i: number): ArrayLike<number> => (steps.length === 1 ? values
      : ArrayBuffer.isView(values) ? (values as unknown as Float64Array).subarray(i * len, (i + 1) * len)
        : Array.prototype.slice.call(values, i * len, (i + 1) * len) as number[]);
    const coded = steps.map((step, i) => encodeEntropy(part(i), step, rans === true));
    const mode: QuantSegment[] = coded.map((b) => [b.kind, len, b.bytes.length] as const);
    const blocks = coded.map((b) => b.bytes);
    const riceBytes = coded.reduce((acc, b) => acc + b.riceBytes, 0);
    return { mode, count: values.length, codes: blocks.length === 1 ? blocks[0] : concat(blocks), scales: new Uint8Array(0), riceBytes };
  }
  const parts: QuantizedBlock[] = [];
  let at = 0;
  for (const seg of quantSegments(spec as QuantSpec, values.length)) {
    if (isEntropySegment(seg)) throw new UsageError(`a ${seg[0]} segment is encoded from a step ({ rice: step }), not from a stored spec`);
    const [mode, n] = seg;
    parts.push(quantizeMode(Array.prototype.slice.call(values, at, at + n) as number[], mode, options));
    at += n;
  }
  return { mode: spec as QuantSpec, count: values.length, codes: concat(parts.map((p) => p.codes)), scales: concat(parts.map((p) => p.scales)) };
}

/**
 * One block of levels at `requestedStep` (rounded to f32 first): the rice block, or with `rans` the
 * rans block where it is shorter (estimated from the levels' histogram, then compared as coded).
 */
function encodeEntropy(values: ArrayLike<number>, requestedStep: number, rans: boolean): { kind: EntropyCoding; bytes: Uint8Array; riceBytes: number } {
  const step = riceStep(requestedStep);
  const levels = riceLevels(values, step);
  const rice = bestRiceK(levels);
  const model = rans ? chooseRansModel(levels) : undefined;
  if (model !== undefined && model.bytes < rice.bytes) {
    const block = encodeRans(levels, step, model.p);
    if (block !== undefined && block.length < rice.bytes) return { kind: 'rans', bytes: block, riceBytes: rice.bytes };
  }
  return { kind: 'rice', bytes: encodeRiceLevels(levels, step, rice.k, rice.bytes), riceBytes: rice.bytes };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** One mode over finite values (quantize checks them). */
function quantizeMode(values: ArrayLike<number>, mode: QuantMode, options: QuantizeOptions): QuantizedBlock {
  const count = values.length;
  const bits = bitsPerValue(mode);
  if (isFloatMode(mode)) return { mode, count, codes: encodeFloats(values, mode), scales: new Uint8Array(0) };
  const levels = 2 ** (bits - 1) - 1;
  const bias = 2 ** (bits - 1);
  const groups = groupCount(count);
  const scales = new Uint8Array(2 * groups);
  const writer = new BitWriter(Math.ceil((count * bits) / 8), bits);
  for (let g = 0; g < groups; g++) {
    const start = g * QUANT_GROUP_SIZE;
    const end = Math.min(start + QUANT_GROUP_SIZE, count);
    let absmax = 0;
    for (let i = start; i < end; i++) absmax = Math.max(absmax, Math.abs(values[i]));
    const scaleBits = options.clipSearch ? chooseScaleBits(values, start, end, absmax, levels) : f16CeilBits(absmax / levels);
    if (scaleBits >= 0x7c00) {
      throw new NumericError(`coefficient magnitude ${absmax} is too large for ${mode}: its scale exceeds the f16 range`);
    }
    scales[2 * g] = scaleBits & 0xff;
    scales[2 * g + 1] = scaleBits >>> 8;
    const scale = f16Value(scaleBits);
    for (let i = start; i < end; i++) {
      const x = values[i];
      const q = scale === 0 ? 0 : Math.min(levels, roundHalfEven(Math.abs(x) / scale));
      writer.write((x < 0 ? -q : q) + bias);
    }
  }
  return { mode, count, codes: writer.bytes, scales };
}

/**
 * Clipping factors tried for each group's scale. Absmax scaling (factor 1) never clips; smaller
 * scales clip the largest values to ±L but round the rest more finely, which lowers the group's
 * squared error for bell-shaped data at low bit widths. The encoder keeps whichever candidate
 * gives the smallest squared error; the decoder does not care which was chosen.
 */
export const SCALE_CANDIDATES = [1, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65] as const;

function chooseScaleBits(values: ArrayLike<number>, start: number, end: number, absmax: number, levels: number): number {
  let bestBits = f16CeilBits(absmax / levels);
  if (absmax === 0 || bestBits >= 0x7c00) return bestBits;
  let bestErr = groupError(values, start, end, f16Value(bestBits), levels);
  for (let c = 1; c < SCALE_CANDIDATES.length; c++) {
    const bits = f16CeilBits((SCALE_CANDIDATES[c] * absmax) / levels);
    if (bits === 0) continue;
    const err = groupError(values, start, end, f16Value(bits), levels);
    if (err < bestErr) { bestErr = err; bestBits = bits; }
  }
  return bestBits;
}

function groupError(values: ArrayLike<number>, start: number, end: number, scale: number, levels: number): number {
  let err = 0;
  for (let i = start; i < end; i++) {
    const a = Math.abs(values[i]);
    const q = Math.min(levels, roundHalfEven(a / scale));
    const d = a - q * scale;
    err += d * d;
  }
  return err;
}

/** out[0..count) = the stored values. Throws FormatError on a block that breaks the layout. */
export function dequantize(block: QuantizedBlock, out: Float64Array): void {
  if (typeof block.mode === 'string') {
    dequantizeMode(block as QuantizedBlock & { mode: QuantMode }, out);
    return;
  }
  const segments = quantSegments(block.mode, block.count);
  const { codes: totalCodes, scales: totalScales } = quantizedSizes(block.count, block.mode);
  if (block.codes.length !== totalCodes || block.scales.length !== totalScales) {
    throw new FormatError(`${describeQuant(block.mode)} block must have ${totalCodes} code bytes and ${totalScales} scale bytes, got ${block.codes.length} and ${block.scales.length}`);
  }
  if (out.length < block.count) throw new RangeError(`dequantize: output has ${out.length} entries, block has ${block.count}`);
  let value = 0, codeAt = 0, scaleAt = 0;
  for (const seg of segments) {
    const n = seg[1];
    const size = quantizedSizes(n, [seg]);
    const codes = block.codes.subarray(codeAt, codeAt + size.codes);
    try {
      if (seg[0] === 'rice') decodeRice(codes, n, out.subarray(value, value + n));
      else if (seg[0] === 'rans') decodeRans(codes, n, out.subarray(value, value + n));
      else dequantizeMode({ mode: seg[0], count: n, codes, scales: block.scales.subarray(scaleAt, scaleAt + size.scales) }, out.subarray(value, value + n));
    } catch (e) {
      if (e instanceof FormatError) e.message = `segment at value ${value}: ${e.message}`;
      throw e;
    }
    value += n;
    codeAt += size.codes;
    scaleAt += size.scales;
  }
}

function dequantizeMode(block: QuantizedBlock & { mode: QuantMode }, out: Float64Array): void {
  const { mode, count, codes, scales } = block;
  const bits = bitsPerValue(mode);
  if (!Number.isInteger(count) || count < 0) throw new FormatError(`quantized block: bad count ${count}`);
  if (out.length < count) throw new RangeError(`dequantize: output has ${out.length} entries, block has ${count}`);
  const expectCodes = isFloatMode(mode) ? count * (bits / 8) : Math.ceil((count * bits) / 8);
  const expectScales = isFloatMode(mode) ? 0 : 2 * groupCount(count);
  if (codes.length !== expectCodes || scales.length !== expectScales) {
    throw new FormatError(
      `${mode} block of ${count} values must have ${expectCodes} code bytes and ${expectScales} scale bytes, got ${codes.length} and ${scales.length}`,
    );
  }
  if (isFloatMode(mode)) {
    decodeFloats(codes, mode, count, out);
    return;
  }
  const bias = 2 ** (bits - 1);
  const reader = new BitReader(codes, bits);
  for (let g = 0; g < groupCount(count); g++) {
    const scaleBits = scales[2 * g] | (scales[2 * g + 1] << 8);
    if (scaleBits >= 0x7c00) {
      throw new FormatError(`${mode} block: group ${g} has scale bits 0x${scaleBits.toString(16)}; scales must be finite and non-negative f16`);
    }
    const scale = f16Value(scaleBits);
    const end = Math.min((g + 1) * QUANT_GROUP_SIZE, count);
    for (let i = g * QUANT_GROUP_SIZE; i < end; i++) {
      const u = reader.read();
      if (u === 0) throw new FormatError(`${mode} block: code 0 at index ${i} is reserved`);
      out[i] = (u - bias) * scale;
    }
  }
  if (!reader.paddingIsZero()) throw new FormatError(`${mode} block: the padding bits after the last code are not zero`);
}

function encodeFloats(values: ArrayLike<number>, mode: QuantMode): Uint8Array {
  const width = bitsPerValue(mode) / 8;
  const bytes = new Uint8Array(values.length * width);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    let stored: number;
    if (mode === 'f32') {
      stored = Math.fround(x);
      view.setFloat32(4 * i, x, true);
    } else {
      const h = mode === 'f16' ? f16Bits(x) : bf16Bits(x);
      stored = mode === 'f16' ? f16Value(h) : bf16Value(h);
      view.setUint16(2 * i, h, true);
    }
    if (!Number.isFinite(stored)) throw new NumericError(`coefficient ${x} at index ${i} overflows ${mode}`);
  }
  return bytes;
}

function decodeFloats(codes: Uint8Array, mode: QuantMode, count: number, out: Float64Array): void {
  const view = new DataView(codes.buffer, codes.byteOffset, codes.byteLength);
  for (let i = 0; i < count; i++) {
    const x = mode === 'f32' ? view.getFloat32(4 * i, true)
      : mode === 'f16' ? f16Value(view.getUint16(2 * i, true))
      : bf16Value(view.getUint16(2 * i, true));
    if (!Number.isFinite(x)) throw new FormatError(`${mode} block: non-finite coefficient at index ${i}`);
    out[i] = x;
  }
}

/** Little-endian bit stream writer for codes of `width` ≤ 8 bits. */
class BitWriter {
  readonly bytes: Uint8Array;
  private acc = 0;
  private filled = 0;
  private pos = 0;

  constructor(length: number, private readonly width: number) {
    this.bytes = new Uint8Array(length);
  }

  write(code: number): void {
    this.acc |= code << this.filled;
    this.filled += this.width;
    while (this.filled >= 8) {
      this.bytes[this.pos++] = this.acc & 0xff;
      this.acc >>>= 8;
      this.filled -= 8;
    }
    if (this.filled > 0) this.bytes[this.pos] = this.acc; // partial last byte, zero-padded
  }
}

class BitReader {
  private acc = 0;
  private available = 0;
  private pos = 0;
  private readonly mask: number;

  constructor(private readonly bytes: Uint8Array, private readonly width: number) {
    this.mask = (1 << width) - 1;
  }

  read(): number {
    while (this.available < this.width) {
      this.acc |= this.bytes[this.pos++] << this.available;
      this.available += 8;
    }
    const code = this.acc & this.mask;
    this.acc >>>= this.width;
    this.available -= this.width;
    return code;
  }

  /** The bits left in the last byte read (and any unread bytes) are zero. */
  paddingIsZero(): boolean {
    if (this.acc !== 0) return false;
    for (let i = this.pos; i < this.bytes.length; i++) if (this.bytes[i] !== 0) return false;
    return true;
  }
}
