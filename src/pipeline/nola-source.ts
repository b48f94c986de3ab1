/** Opening a NOLA file: the safetensors reader plus its validated document. */
import { openSafetensors, type SafetensorsFile } from '../io/safetensors/index.js';
import { documentTensor, parseDocument, type ByteRange, type NolaDocument, type NolaLayerEntry } from '../container/document.js';
import { inflateSync } from 'node:zlib';
import { MAX_DOCUMENT_BYTES, NOLA_METADATA_KEY } from '../core/constants.js';
import type { QuantizedBlock } from '../core/quantize.js';
import { expandLayer } from '../core/compress-layer.js';
import type { Mat } from '../core/matrix.js';
import { FormatError, NolaError } from '../errors.js';
import { assertFactorFits } from './limits.js';

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
  try {
    inflated = inflateSync(await reader.readRaw(name), { maxOutputLength: MAX_DOCUMENT_BYTES });
  } catch (e) {
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

/** The stored coefficient block of one factor, as the quantizer wrote it. */
export async function readBlock(nola: OpenNola, entry: NolaLayerEntry, factor: 'A' | 'B'): Promise<QuantizedBlock> {
  const where = entry.blocks[factor];
  const read = async (r: ByteRange | undefined): Promise<Uint8Array> =>
    r === undefined ? new Uint8Array(0) : new Uint8Array(await nola.reader.readRange(r.tensor, r.offset, r.bytes));
  const codes = await read(where.codes);
  const scales = await read(where.scales);
  return { mode: entry[`quant_${factor}`], count: factor === 'A' ? entry.num_basis_A : entry.num_basis_B, codes, scales };
}

/** Before synthesizing anything: every layer's factors must fit in memory (see limits.ts). */
export function assertLayersFit(nola: OpenNola): void {
  for (const e of nola.doc.layers) {
    assertFactorFits(nola.file, e.name, 'A', e.rank, e.d_in);
    assertFactorFits(nola.file, e.name, 'B', e.d_out, e.rank);
  }
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
