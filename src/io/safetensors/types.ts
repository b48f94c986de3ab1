/** Public shapes of the safetensors layer. Implementation: reader.ts, writer.ts, dtypes.ts. */
import type { DType } from './dtypes.js';

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Byte offsets relative to the start of the data section (after 8 + headerLength). */
  begin: number;
  end: number;
}

export interface SafetensorsLimits {
  /** Largest accepted header, bytes. Reference reader: 100 MB. */
  maxHeaderBytes: number;
  /** Largest accepted number of tensors. */
  maxTensors: number;
}

/** A tensor to write. `data` is either floats to encode into `dtype`, or raw little-endian bytes already in `dtype`. */
export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: number[];
}

export type TensorData = Float32Array | Float64Array | Uint8Array;

export interface WriteOptions {
  /** Overwrite an existing file at the path. Without it, an existing output is a UsageError. */
  force?: boolean;
  /**
   * Called with the SHA-256 (hex) of the data section once all tensors are produced; returns
   * metadata entries to merge before the header is written (kohya's sshs_model_hash).
   */
  finalizeMetadata?: (dataSha256Hex: string) => Record<string, string>;
  /** Stage the file in this batch of outputs instead of moving it into place (src/io/atomic.ts). */
  batch?: import('../atomic.js').OutputBatch;
}

/** An open safetensors file: header parsed and validated, tensor data read on demand. */
export interface SafetensorsFile {
  readonly path: string;
  readonly fileSize: number;
  /** Length of the JSON header in bytes (the u64 at the start of the file). */
  readonly headerLength: number;
  /** Absolute file offset of the data section: 8 + headerLength. */
  readonly dataStart: number;
  readonly metadata: Record<string, string> | null;
  /** In header order. */
  readonly tensors: readonly TensorInfo[];
  get(name: string): TensorInfo | undefined;
  /** The tensor's bytes exactly as stored (little-endian `dtype`). */
  readRaw(name: string): Promise<Buffer>;
  /** Bytes [offset, offset + length) of one tensor's data (FormatError outside the tensor). */
  readRange(name: string, offset: number, length: number): Promise<Buffer>;
  /** Any float or integer dtype, converted (F64 and 64-bit integers round to nearest). */
  readFloat32(name: string): Promise<Float32Array>;
  readFloat64(name: string): Promise<Float64Array>;
  /** Idempotent. Reads after close reject. */
  close(): Promise<void>;
}
