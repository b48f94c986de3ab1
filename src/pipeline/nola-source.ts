/** Opening a NOLA file: the safetensors reader plus its validated document. */
import { openSafetensors, type SafetensorsFile } from '../io/safetensors/index.js';
import { parseDocument, type NolaDocument, type NolaLayerEntry } from '../container/document.js';
import { NOLA_METADATA_KEY } from '../core/constants.js';
import type { QuantizedBlock } from '../core/quantize.js';
import { expandLayer } from '../core/compress-layer.js';
import type { Mat } from '../core/matrix.js';
import { NolaError } from '../errors.js';
import { assertFactorFits } from './limits.js';

export interface OpenNola {
  file: string;
  reader: SafetensorsFile;
  doc: NolaDocument;
}

export function isNolaMetadata(metadata: Record<string, string> | null): boolean {
  return metadata !== null && Object.prototype.hasOwnProperty.call(metadata, NOLA_METADATA_KEY);
}

export async function openNola(file: string): Promise<OpenNola> {
  const reader = await openSafetensors(file);
  try {
    const doc = parseDocument(file, reader.metadata?.[NOLA_METADATA_KEY], reader.tensors);
    return { file, reader, doc };
  } catch (e) {
    await reader.close();
    throw e;
  }
}

/** The stored coefficient block of one factor, as the quantizer wrote it. */
export async function readBlock(nola: OpenNola, entry: NolaLayerEntry, factor: 'A' | 'B'): Promise<QuantizedBlock> {
  const codes = new Uint8Array(await nola.reader.readRaw(entry[`coeffs_${factor}`]));
  const scalesName = entry[`scales_${factor}`];
  const scales = scalesName === undefined ? new Uint8Array(0) : new Uint8Array(await nola.reader.readRaw(scalesName));
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
