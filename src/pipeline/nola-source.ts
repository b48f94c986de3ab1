/** Opening a NOLA file: the safetensors reader plus its validated document. */
import { openSafetensors, type SafetensorsFile } from '../io/safetensors/index.js';
import { parseDocument, type NolaDocument, type NolaLayerEntry } from '../container/document.js';
import { NOLA_METADATA_KEY } from '../core/constants.js';
import type { QuantizedBlock } from '../core/quantize.js';

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
