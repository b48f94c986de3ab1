/**
 * Test helpers for src/formats: in-memory tensor lists (names, dtypes, shapes only), a readScalar stub
 * that records what was read, and a tiny safetensors header parser for the real files in
 * ../shared/real-loras (8-byte little-endian length, then JSON) so these tests do not wait on the reader.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DType } from '../../src/io/safetensors/dtypes.js';
import type { DescribeInput, TensorMeta } from '../../src/formats/common.js';

export function t(name: string, shape: number[], dtype: DType = 'F32'): TensorMeta {
  return { name, dtype, shape };
}

/** A LoRA pair: A [r, ...in], B [out, r, 1...]. */
export function pair(keyA: string, keyB: string, r: number, dIn: number | number[], dOut: number, dtype: DType = 'F32'): TensorMeta[] {
  const inShape = Array.isArray(dIn) ? dIn : [dIn];
  const bTail = inShape.length > 1 ? inShape.slice(1).map(() => 1) : [];
  return [t(keyA, [r, ...inShape], dtype), t(keyB, [dOut, r, ...bTail], dtype)];
}

export interface ScalarStub {
  readScalar: (name: string) => Promise<number>;
  reads: string[];
}

/** readScalar backed by a map; records every name read; throws for names it does not know. */
export function scalars(values: Record<string, number> = {}): ScalarStub {
  const reads: string[] = [];
  return {
    reads,
    readScalar: async (name: string) => {
      reads.push(name);
      if (!(name in values)) throw new Error(`test: unexpected readScalar('${name}')`);
      return values[name];
    },
  };
}

/** A readScalar that fails the test if any tensor data is read. */
export const noReads = async (name: string): Promise<number> => {
  throw new Error(`test: tensor data read before refusal: ${name}`);
};

export function input(tensors: TensorMeta[], extra: Partial<DescribeInput> = {}): DescribeInput {
  return { tensors, metadata: null, config: null, readScalar: noReads, ...extra };
}

/** The repository root, found from this file's location (tests run from dist/test/formats/). */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'src'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('test: repository root not found');
    dir = up;
  }
}

export function realLorasDir(): string {
  return path.resolve(repoRoot(), '../shared/real-loras');
}

export interface ParsedHeader {
  tensors: TensorMeta[];
  metadata: Record<string, string> | null;
  headerLength: number;
  bytes: Buffer;
}

/** Reads a safetensors header: u64 LE length, then that many bytes of JSON. */
export function readHeader(file: string): ParsedHeader {
  const bytes = fs.readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const json = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const metadata = (json.__metadata__ as Record<string, string> | undefined) ?? null;
  const tensors: TensorMeta[] = [];
  for (const [name, v] of Object.entries(json)) {
    if (name === '__metadata__') continue;
    const info = v as { dtype: DType; shape: number[] };
    tensors.push({ name, dtype: info.dtype, shape: info.shape });
  }
  return { tensors, metadata, headerLength: n, bytes };
}

/** Runs `fn` and returns the error it throws (fails if it does not throw). */
export async function caught(fn: () => unknown): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('test: expected an error, none was thrown');
}
