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
}
