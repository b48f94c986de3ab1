/** Opening a NOLA file: the safetensors reader plus its validated document. */
import { openSafetensors, type SafetensorsFile } from '../io/safetensors/index.js';
import { checkNolaMetadata, documentTensor, parseDocument, type ByteRange, type NolaDocument, type NolaLayerEntry } from '../container/document.js';
import { inflateSync } from 'node:zlib';
import { MAX_DOCUMENT_BYTES, NOLA_METADATA_KEY } from '../core/constants.js';
import type { QuantizedBlock } from '../core/quantize.js';
import { expandLayer, maxAbsOf } from '../core/compress-layer.js';
import type { Mat } from '../core/matrix.js';
import { FormatError, NolaError, NumericError } from '../errors.js';
import { planLayout } from '../io/safetensors/writer.js';
import type { TensorInfo, TensorSpec } from '../io/safetensors/types.js';
import type { DType } from '../io/safetensors/dtypes.js';
import { representable } from '../formats/expand-plan.js';
import { assertBasisWorkFits, assertFactorFits, assertOutputFits } from './limits.js';
import { dequantize } from '../core/quantize.js';
import { dtypeSize } from '../io/safetensors/dtypes.js';
import { hashFileRange } from '../io/hash.js';

export interface OpenNola {
  file: string;
  reader: SafetensorsFile;
  doc: NolaDocument;
  /** Version 2: the tensor holding the compressed document. */
  documentTensor?: string;
}

export function isNolaMetadata(metadata: Record<string, string> | null): boolean {
  return metadata !== null && Object.prototype.hasOwnProperty.call(metadata, NOLA_METADATA_KEY);
}

export async function openNola(file: string): Promise<OpenNola> {
  const reader = await openSafetensors(file);
  try {
    const meta = reader.metadata?.[NOLA_METADATA_KEY];
    if (meta !== undefined) checkNolaMetadata(file, reader.metadata);
    const documentName = documentTensor(file, meta);
    const body = documentName === undefined ? undefined : await readDocumentBody(file, reader, documentName);
    const doc = parseDocument(file, meta, reader.tensors, body);
    return { file, reader, doc, ...(documentName !== undefined ? { documentTensor: documentName } : {}) };
  } catch (e) {
    await reader.close();
    throw e;
  }
}

/** A version-2 document: the zlib stream in its U8 tensor, inflated (at most MAX_DOCUMENT_BYTES) and decoded as UTF-8. */
async function readDocumentBody(file: string, reader: SafetensorsFile, name: string): Promise<string> {
  const t = reader.get(name);
  if (t === undefined || t.dtype !== 'U8' || t.shape.length !== 1) throw new FormatError(`${file}: document tensor "${name}" must be U8 [n]`);
  let inflated: Buffer;
  const packed = await reader.readRaw(name);
  try {
    const r = inflateSync(packed, { maxOutputLength: MAX_DOCUMENT_BYTES, info: true }) as unknown as { buffer: Buffer; engine: { bytesWritten: number } };
    inflated = r.buffer;
    // inflate stops at the end of the zlib stream and ignores what follows: a reader refuses it instead.
    if (r.engine.bytesWritten !== packed.length) {
      throw new FormatError(`${file}: document tensor "${name}" has ${packed.length - r.engine.bytesWritten} bytes after the end of its zlib stream`);
    }
  } catch (e) {
    if (e instanceof FormatError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ERR_BUFFER_TOO_LARGE' ? `inflates past ${MAX_DOCUMENT_BYTES} bytes` : `is not a valid zlib stream (${(e as Error).message})`;
    throw new FormatError(`${file}: document tensor "${name}" ${why}`);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(inflated);
  } catch {
    throw new FormatError(`${file}: document tensor "${name}" is not UTF-8 text`);
  }
}

/**
 * What compress is about to write, read back by the reader's own rules before a byte is written:
 * the document within the inflate cap and nesting limit, and every rule of parseDocument against
 * the tensors the file will hold. A file compress writes is a file inspect, expand and verify read.
 */
export function assertReadable(file: string, metadata: string, specs: readonly TensorSpec[], body?: string): void {
  if (body !== undefined && Buffer.byteLength(body, 'utf8') > MAX_DOCUMENT_BYTES) {
    throw new FormatError(`${file}: document tensor "nola.document" would inflate past ${MAX_DOCUMENT_BYTES} bytes (${Buffer.byteLength(body, 'utf8')}): the source's metadata or config is too large to store`);
  }
  const tensors: TensorInfo[] = planLayout(specs).map((t) => ({ name: t.spec.name, dtype: t.spec.dtype, shape: [...t.spec.shape], begin: t.begin, end: t.end }));
  parseDocument(file, metadata, tensors, body);
}

/**
 * A synthesized factor must be finite and within range of the dtype it is written in (else the file
 * would hold Inf): expand's check, and compress's last one before it writes (F16 factors near ±65504
 * can round past it), with the same message. `maxAbs` is max |x| over the factor, NaN if any is NaN.
 */
export function assertMaxAbsHolds(file: string, layer: string, factor: 'A' | 'B', maxAbs: number, dtype: DType): void {
  if (!Number.isFinite(maxAbs) || !Number.isFinite(representable(maxAbs, dtype))) {
    throw new NumericError(`${file}: layer ${JSON.stringify(layer)}: factor ${factor} synthesizes to values (max |x| = ${maxAbs}) that ${dtype} cannot hold`);
  }
}

/** The same check on the factor's values. */
export function assertHolds(file: string, layer: string, factor: 'A' | 'B', data: Float64Array, dtype: DType): void {
  assertMaxAbsHolds(file, layer, factor, maxAbsOf(data), dtype);
}

/** The stored coefficient block of one factor, as the quantizer wrote it. */
export async function readBlock(nola: OpenNola, entry: NolaLayerEntry, factor: 'A' | 'B'): Promise<QuantizedBlock> {
  const where = entry.blocks[factor];
  const read = async (r: ByteRange | undefined): Promise<Uint8Array> =>
    r === undefined ? new Uint8Array(0) : new Uint8Array(await nola.reader.readRange(r.tensor, r.offset, r.bytes));
  const codes = await read(where.codes);
  const scales = await read(where.scales);
  return { mode: entry[`quant_${factor}`], count: factor === 'A' ? entry.num_basis_A : entry.num_basis_B, codes, scales };
}

/**
 * Before synthesizing anything (expand, verify): every layer's factors within the per-factor limit,
 * the whole output within --max-output-bytes and the uniform basis within --max-basis-work (limits.ts).
 */
export function assertLayersFit(nola: OpenNola): void {
  let outputBytes = 0, basisWork = 0;
  for (const e of nola.doc.layers) {
    assertFactorFits(nola.file, e.name, 'A', e.rank, e.d_in);
    assertFactorFits(nola.file, e.name, 'B', e.d_out, e.rank);
    outputBytes += e.rank * e.d_in * dtypeSize(e.dtype_A) + e.d_out * e.rank * dtypeSize(e.dtype_B) + (e.dtype_alpha ? dtypeSize(e.dtype_alpha) : 0);
    if (e.basis === 'uniform') basisWork += e.num_basis_A * e.rank * e.d_in + e.num_basis_B * e.d_out * e.rank;
  }
  for (const p of nola.doc.passthrough) {
    const t = nola.reader.get(p.tensor)!;
    outputBytes += t.end - t.begin;
  }
  assertOutputFits(nola.file, outputBytes);
  assertBasisWorkFits(nola.file, basisWork);
}

/** The coefficient tensor against the SHA-256 the document states (version 1 states none). */
export async function coefficientChecksum(nola: OpenNola): Promise<'match' | 'mismatch' | 'not-stored'> {
  const stated = nola.doc.coeffs;
  if (stated === undefined) return 'not-stored';
  const t = nola.reader.get(stated.tensor)!;
  const actual = await hashFileRange(nola.file, nola.reader.dataStart + t.begin, nola.reader.dataStart + t.end);
  return actual === stated.sha256 ? 'match' : 'mismatch';
}

/**
 * The checks every command makes of a NOLA file beyond its document (docs/FORMAT.md, "Validation"):
 * the coefficient checksum (a mismatch is a FormatError unless the caller reports it, as verify does)
 * and every coefficient block decoded (rice headers and streams, int codes and scales, float values),
 * without synthesizing anything. Costs time and memory proportional to the stored blocks.
 */
export async function validateNola(nola: OpenNola, checksum: 'refuse' | 'report' = 'refuse'): Promise<'match' | 'mismatch' | 'not-stored'> {
  const sum = await coefficientChecksum(nola);
  if (sum === 'mismatch' && checksum === 'refuse') {
    throw new FormatError(`${nola.file}: the coefficient tensor "${nola.doc.coeffs!.tensor}" does not match coeffs.sha256 (the file is corrupt)`);
  }
  for (const entry of nola.doc.layers) {
    for (const f of ['A', 'B'] as const) {
      const block = await readBlock(nola, entry, f);
      try {
        dequantize(block, new Float64Array(block.count));
      } catch (e) {
        if (e instanceof NolaError) e.message = `${nola.file}: layer ${JSON.stringify(entry.name)} factor ${f}: ${e.message}`;
        throw e;
      }
    }
  }
  return sum;
}

/**
 * Both factors of one layer rebuilt from its stored coefficients (A: rank x d_in, B: d_out x rank).
 * A block that breaks the layout (reserved code, bad scale, non-finite float) is reported with the file and layer.
 */
export async function synthesizeLayer(nola: OpenNola, entry: NolaLayerEntry): Promise<{ a: Mat; b: Mat }> {
  const blockA = await readBlock(nola, entry, 'A');
  const blockB = await readBlock(nola, entry, 'B');
  try {
    return expandLayer(
      { rank: entry.rank, k: entry.num_basis_A, l: entry.num_basis_B, basis: entry.basis, seedA: entry.seed_A, seedB: entry.seed_B },
      entry.d_in, entry.d_out, blockA, blockB,
    );
  } catch (e) {
    if (e instanceof NolaError) e.message = `${nola.file}: layer ${JSON.stringify(entry.name)}: ${e.message}`;
    throw e;
  }
}
