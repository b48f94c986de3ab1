/** nola inspect: structure and size statistics of a LoRA or a NOLA file, as data. */
import { stat } from 'node:fs/promises';
import { openSafetensors } from '../io/safetensors/index.js';
import { isNolaMetadata, openNola, validateNola } from './nola-source.js';
import { planExpand } from './expand.js';
import { openLora, readFactors, resolveLoraPath } from './source.js';
import type { Family, LayerKind } from '../formats/layer.js';
import type { BlockLocation, QuantSpec } from '../container/document.js';

export interface LoraInspection {
  kind: 'lora';
  file: string;
  family: Family;
  bytes: { file: number; header: number; factors: number; passthrough: number };
  totals: { layers: number; params: number; fp16Bytes: number; ranks: number[] };
  layers: Array<{ name: string; kind: LayerKind; dOut: number; dIn: number; rank: number; alpha: number | null; scale: number; dtypeA: string; dtypeB: string; params: number }>;
  passthrough: Array<{ name: string; dtype: string; shape: number[]; bytes: number }>;
  metadataKeys: string[];
  warnings: string[];
}

export interface NolaInspection {
  kind: 'nola';
  file: string;
  formatVersion: number;
  generator: string;
  source: { family: Family; file: string; bytes: number; tensorsSha256: string };
  /** document: the compressed layer document (version 2; version 1 keeps it in the header). */
  bytes: { file: number; header: number; document: number; coefficients: number; passthrough: number };
  /** source file bytes / NOLA file bytes */
  ratio: number;
  totals: { layers: number; coefficients: number; sourceParams: number; maxError: number; meanError: number };
  layers: Array<{ name: string; sourceRank: number; rank: number; basis: string; k: number; l: number; quantA: QuantSpec; quantB: QuantSpec; error: number }>;
}

export type Inspection = LoraInspection | NolaInspection;

export async function inspect(input: string, family?: Family): Promise<Inspection> {
  const file = await resolveLoraPath(input);
  const probe = await openSafetensors(file);
  const nola = isNolaMetadata(probe.metadata);
  await probe.close();
  return nola ? inspectNola(file) : inspectLora(file, family);
}

async function inspectLora(input: string, family?: Family): Promise<LoraInspection> {
  const lora = await openLora(input, family);
  try {
    const { reader, plan } = lora;
    // A factor holding NaN/Inf makes the file unusable: inspect refuses it as compress would.
    for (const l of plan.layers) await readFactors(lora, l);
    const size = (name: string): number => { const t = reader.get(name)!; return t.end - t.begin; };
    const layers = plan.layers.map((l) => ({
      name: l.name, kind: l.kind, dOut: l.dOut, dIn: l.dIn, rank: l.rank, alpha: l.alpha ?? null, scale: l.scale,
      dtypeA: l.dtypeA, dtypeB: l.dtypeB, params: l.rank * (l.dIn + l.dOut),
    }));
    const factorBytes = plan.layers.reduce((acc, l) => acc + size(l.keyA) + size(l.keyB) + (l.keyAlpha ? size(l.keyAlpha) : 0), 0);
    const passthrough = plan.passthrough.map((name) => { const t = reader.get(name)!; return { name, dtype: t.dtype, shape: t.shape, bytes: size(name) }; });
    return {
      kind: 'lora',
      file: lora.file,
      family: plan.family,
      bytes: { file: reader.fileSize, header: reader.dataStart, factors: factorBytes, passthrough: passthrough.reduce((a, p) => a + p.bytes, 0) },
      totals: {
        layers: layers.length,
        params: layers.reduce((a, l) => a + l.params, 0),
        fp16Bytes: 2 * layers.reduce((a, l) => a + l.params, 0),
        ranks: [...new Set(layers.map((l) => l.rank))].sort((a, b) => a - b),
      },
      layers,
      passthrough,
      metadataKeys: Object.keys(reader.metadata ?? {}),
      warnings: plan.warnings,
    };
  } finally {
    await lora.reader.close();
  }
}

async function inspectNola(file: string): Promise<NolaInspection> {
  const nola = await openNola(file);
  try {
    // The one validation every command makes: checksum, every block decoded (nothing synthesized), and
    // the output plan expand would follow (names, alphas, the stored config and its patterns).
    await validateNola(nola);
    planExpand(nola, undefined);
    const { doc, reader } = nola;
    const size = (name: string): number => { const t = reader.get(name)!; return t.end - t.begin; };
    const blockBytes = (b: BlockLocation): number => b.codes.bytes + (b.scales?.bytes ?? 0);
    const coefficients = doc.layers.reduce((a, l) => a + blockBytes(l.blocks.A) + blockBytes(l.blocks.B), 0);
    const passthrough = doc.passthrough.reduce((a, p) => a + size(p.tensor), 0);
    const documentBytes = nola.documentTensor === undefined ? 0 : size(nola.documentTensor);
    const errors = doc.layers.map((l) => l.error);
    const fileBytes = (await stat(file)).size;
    return {
      kind: 'nola',
      file,
      formatVersion: doc.format_version,
      generator: doc.generator,
      source: { family: doc.source.family, file: doc.source.file, bytes: doc.source.bytes, tensorsSha256: doc.source.tensors_sha256 },
      bytes: { file: fileBytes, header: reader.dataStart, document: documentBytes, coefficients, passthrough },
      ratio: doc.source.bytes / fileBytes,
      totals: {
        layers: doc.layers.length,
        coefficients: doc.layers.reduce((a, l) => a + l.num_basis_A + l.num_basis_B, 0),
        sourceParams: doc.layers.reduce((a, l) => a + l.source_rank * (l.d_in + l.d_out), 0),
        maxError: errors.reduce((a, e) => Math.max(a, e), 0),
        meanError: errors.length ? errors.reduce((a, e) => a + e, 0) / errors.length : 0,
      },
      layers: doc.layers.map((l) => ({
        name: l.name, sourceRank: l.source_rank, rank: l.rank, basis: l.basis, k: l.num_basis_A, l: l.num_basis_B,
        quantA: l.quant_A, quantB: l.quant_B, error: l.error,
      })),
    };
  } finally {
    await nola.reader.close();
  }
}
