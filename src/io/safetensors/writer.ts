/**
 * Safetensors writer: one tensor produced and written at a time (memory stays at one tensor), atomically.
 *
 * Layout, as the reference writer (`prepare` in safetensors/src/tensor.rs, which python's save_file
 * calls) lays it out, so files we write byte-compare with files it would write:
 * - tensors sorted by dtype, descending in the reference `Dtype` enum order (which is descending element
 *   size; within a size, e.g. I64 before F64 and F32 before I32), then by name (UTF-8 byte order);
 * - contiguous data offsets from 0 in that order;
 * - header: `{"__metadata__":{...},"name":{"dtype":..,"shape":[..],"data_offsets":[b,e]},...}` with no
 *   spaces, `__metadata__` first when present, padded with spaces to a multiple of 8 bytes so every
 *   tensor of the common dtypes starts 8-byte aligned in the file.
 */
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { withTempFile, writeFileAtomic } from '../atomic.js';
import { dtypeReferenceRank, dtypeSize, encodeFloats, isDType, isEncodableDType } from './dtypes.js';
import { DEFAULT_LIMITS } from './reader.js';
import type { TensorData, TensorSpec, WriteOptions } from './types.js';

export type ProduceTensor = (spec: TensorSpec, index: number) => Promise<TensorData> | TensorData;

interface PlannedTensor {
  spec: TensorSpec;
  /** Index in the caller's `specs` array (what `produce` receives). */
  index: number;
  numel: number;
  begin: number;
  end: number;
}

/** Largest slice handed to one write(2) call; big tensors are written in pieces. */
const WRITE_CHUNK = 1 << 30;
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const COPY_CHUNK = 8 << 20;

/**
 * Writes a safetensors file. `produce(spec, index)` is called once per tensor, in file order (see the
 * module comment), with `index` the spec's position in `specs`; it returns floats to encode into
 * `spec.dtype` (F64/F32/F16/BF16, rounded to nearest even) or raw little-endian bytes already in it.
 * With `options.finalizeMetadata`, the data section is staged in a temp file and hashed first, and the
 * entries it returns are merged into the metadata before the header is written.
 */
export async function writeSafetensors(
  path: string,
  specs: readonly TensorSpec[],
  metadata: Record<string, string> | null,
  produce: ProduceTensor,
  options: WriteOptions = {},
): Promise<void> {
  const plan = planLayout(specs);
  checkMetadata(metadata);
  const finalize = options.finalizeMetadata;
  await writeFileAtomic(path, async (fh) => {
    if (!finalize) {
      await writeAll(fh, encodeHeader(metadata, plan));
      for (const t of plan) await writeAll(fh, await produceBytes(t, produce));
      return;
    }
    await withTempFile(path, async (dataFh) => {
      const hash = createHash('sha256');
      for (const t of plan) {
        const bytes = await produceBytes(t, produce);
        hash.update(bytes);
        await writeAll(dataFh, bytes);
      }
      const merged = finalMetadata(metadata, finalize(hash.digest('hex')));
      await writeAll(fh, encodeHeader(merged, plan));
      await copyAll(dataFh, fh, plan.length ? plan[plan.length - 1].end : 0);
    });
  }, { force: options.force, batch: options.batch });
}

/** Validates specs and assigns offsets in file order. Bad specs are bugs in the caller: plain Errors. */
export function planLayout(specs: readonly TensorSpec[]): PlannedTensor[] {
  const seen = new Set<string>();
  const items = specs.map((spec, index) => {
    const { name, dtype, shape } = spec;
    if (typeof name !== 'string') throw new Error(`writeSafetensors: tensor name must be a string (spec ${index})`);
    if (name === '__metadata__') throw new Error('writeSafetensors: "__metadata__" cannot be a tensor name');
    if (/\p{Cs}/u.test(name)) throw new Error(`writeSafetensors: tensor name ${JSON.stringify(name)} has a lone surrogate (not valid UTF-8)`);
    if (seen.has(name)) throw new Error(`writeSafetensors: duplicate tensor name ${JSON.stringify(name)}`);
    seen.add(name);
    if (!isDType(dtype)) throw new Error(`writeSafetensors: tensor ${JSON.stringify(name)} has unknown dtype ${String(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(`writeSafetensors: tensor ${JSON.stringify(name)} shape must be non-negative integers, got ${JSON.stringify(shape)}`);
    }
    const numel = shape.reduce((p, d) => p * d, 1);
    if (!Number.isSafeInteger(numel * dtypeSize(dtype))) throw new Error(`writeSafetensors: tensor ${JSON.stringify(name)} is too large`);
    return { spec, index, numel, key: Buffer.from(name, 'utf8'), begin: 0, end: 0 };
  });
  items.sort((a, b) => dtypeReferenceRank(b.spec.dtype) - dtypeReferenceRank(a.spec.dtype) || Buffer.compare(a.key, b.key));
  let offset = 0;
  for (const t of items) {
    t.begin = offset;
    offset += t.numel * dtypeSize(t.spec.dtype);
    t.end = offset;
  }
  return items.map(({ spec, index, numel, begin, end }) => ({ spec, index, numel, begin, end }));
}

/** The metadata written with `finalizeMetadata`: `extra` (computed from the data's SHA-256) merged over `metadata`. */
export function finalMetadata(metadata: Record<string, string> | null, extra: Record<string, string>): Record<string, string> | null {
  checkMetadata(extra);
  return metadata === null && Object.keys(extra).length === 0 ? null : { ...metadata, ...extra };
}

function checkMetadata(metadata: Record<string, string> | null): void {
  if (metadata === null) return;
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new Error(`writeSafetensors: metadata value for ${JSON.stringify(k)} must be a string, got ${typeof v}`);
    if (/\p{Cs}/u.test(k) || /\p{Cs}/u.test(v)) throw new Error(`writeSafetensors: metadata entry ${JSON.stringify(k)} has a lone surrogate (not valid UTF-8)`);
  }
}

/** 8-byte little-endian length followed by the space-padded JSON header. */
export function encodeHeader(metadata: Record<string, string> | null, plan: readonly PlannedTensor[]): Buffer {
  const parts: string[] = [];
  if (metadata !== null) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  for (const t of plan) {
    parts.push(`${JSON.stringify(t.spec.name)}:{"dtype":"${t.spec.dtype}","shape":[${t.spec.shape.join(',')}],"data_offsets":[${t.begin},${t.end}]}`);
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > DEFAULT_LIMITS.maxHeaderBytes) {
    throw new Error(`writeSafetensors: header would be ${padded} bytes, more than readers accept (${DEFAULT_LIMITS.maxHeaderBytes})`);
  }
  const out = Buffer.alloc(8 + padded, 0x20);
  out.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(out, 8);
  return out;
}

/** The bytes of one planned tensor as they go into the file (the API's load() keeps them in memory). */
export async function produceBytes(t: PlannedTensor, produce: ProduceTensor): Promise<Uint8Array> {
  const { name, dtype, shape } = t.spec;
  const data = await produce(t.spec, t.index);
  const what = `tensor ${JSON.stringify(name)} (${dtype} [${shape.join(',')}])`;
  if (data instanceof Uint8Array) {
    const need = t.end - t.begin;
    if (data.length !== need) throw new Error(`writeSafetensors: ${what} needs ${need} bytes, produce returned ${data.length}`);
    return data;
  }
  if (data instanceof Float32Array || data instanceof Float64Array) {
    if (data.length !== t.numel) throw new Error(`writeSafetensors: ${what} needs ${t.numel} values, produce returned ${data.length}`);
    if (!isEncodableDType(dtype)) throw new Error(`writeSafetensors: ${what}: floats can only be encoded into F64/F32/F16/BF16; pass raw bytes`);
    // Already in the stored layout: write the caller's memory as is instead of copying a large tensor.
    if (HOST_LE && ((dtype === 'F32' && data instanceof Float32Array) || (dtype === 'F64' && data instanceof Float64Array))) {
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    }
    return encodeFloats(data, dtype);
  }
  throw new Error(`writeSafetensors: ${what}: produce must return a Float32Array, Float64Array or Uint8Array`);
}

/** write(2) may write less than asked; loop until every byte is down. */
async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, off, Math.min(bytes.length - off, WRITE_CHUNK));
    off += bytesWritten;
  }
}

async function copyAll(from: FileHandle, to: FileHandle, length: number): Promise<void> {
  const buf = Buffer.allocUnsafe(Math.min(COPY_CHUNK, Math.max(length, 1)));
  let pos = 0;
  while (pos < length) {
    const { bytesRead } = await from.read(buf, 0, Math.min(buf.length, length - pos), pos);
    if (bytesRead === 0) throw new Error('writeSafetensors: staged data file ended early');
    await writeAll(to, buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
}
