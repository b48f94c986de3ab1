/** nola inspect: structure and size statistics of a LoRA or a NOLA file, as data. */
import { stat } from 'node:fs/promises';
import { openSafetensors } from '../io/safetensors/index.js';
import { isNolaMetadata, openNola, validateNola } from './nola-source.js';
import { planExpand } from './expand.js';
import { openLora, readFactors, resolveLoraPath } from './source.js';
import type { Family, LayerKind } from '../formats/layer.js';
import type { BlockLocation, NolaLayerEntry, QuantSpec } from '../container/document.js';
import { frobDot, matmul, matmulNT, matmulTN, type Mat } from '../core/matrix.js';
import { assertLayersFit, synthesizeLayer } from './nola-source.js';

/** "h.2" before "h.10": digit runs compare as numbers. */
export function naturalCompare(a: string, b: string): number {
  const ta = a.split(/(\d+)/), tb = b.split(/(\d+)/);
  for (let i = 0; i < Math.min(ta.length, tb.length); i++) {
    if (ta[i] === tb[i]) continue;
    const numeric = i % 2 === 1;
    if (numeric) return Number(ta[i]) - Number(tb[i]) || ta[i].length - tb[i].length;
    return ta[i] < tb[i] ? -1 : 1;
  }
  return ta.length - tb.length;
}

/** The update's shape: "768×768" for a linear layer, "320×320×3×3" for a convolution (out × in × kernel). */
export function updateShape(shapeA: readonly number[], shapeB: readonly number[]): string {
  return [shapeB[0], ...shapeA.slice(1)].join('×');
}

export interface LoraInspection {
  kind: 'lora';
  file: string;
  family: Family;
  bytes: { file: number; header: number; factors: number; passthrough: number };
  totals: { layers: number; params: number; fp16Bytes: number; ranks: number[] };
  layers: Array<{ name: string; kind: LayerKind; shape: string; dOut: number; dIn: number; rank: number; alpha: number | null; scale: number; dtypeA: string; dtypeB: string; params: number }>;
  passthrough: Array<{ name: string; dtype: string; shape: number[]; bytes: number }>;
  metadataKeys: string[];
  warnings: string[];
  /** Harmless facts (kohya ss_* metadata). */
  notes: string[];
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
  /**
   * energyWeightedError: sqrt(Σ E·err² / Σ E) as compress reports it, with each source layer's energy E
   * estimated from the file as ‖ΔW_nola‖² / (1 − err²) (exact when the residual is orthogonal to the
   * reconstruction, as a least-squares fit makes it; layers with err ≥ 0.999 count with the mean energy).
   */
  totals: { layers: number; coefficients: number; sourceParams: number; maxError: number; energyWeightedError: number };
  layers: Array<{
    name: string; shape: string; sourceRank: number; rank: number; basis: string; k: number; l: number; quantA: QuantSpec; quantB: QuantSpec;
    error: number; bytes: number; energy: number;
  }>;
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
    const layers = [...plan.layers].sort((x, y) => naturalCompare(x.name, y.name)).map((l) => ({
      name: l.name, kind: l.kind, shape: updateShape(l.shapeA, l.shapeB), dOut: l.dOut, dIn: l.dIn, rank: l.rank, alpha: l.alpha ?? null, scale: l.scale,
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
      notes: plan.notes ?? [],
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
    const energies = await estimateEnergies(nola, doc.layers);
    const weight = energies.reduce((a, e) => a + e, 0);
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
        energyWeightedError: weight > 0 ? Math.sqrt(doc.layers.reduce((a, l, i) => a + energies[i] * l.error * l.error, 0) / weight) : 0,
      },
      layers: doc.layers.map((l, i) => ({
        name: l.name, shape: updateShape(l.shape_A, l.shape_B), sourceRank: l.source_rank, rank: l.rank, basis: l.basis, k: l.num_basis_A, l: l.num_basis_B,
        quantA: l.quant_A, quantB: l.quant_B, error: l.error, bytes: blockBytes(l.blocks.A) + blockBytes(l.blocks.B), energy: energies[i],
      })).sort((x, y) => naturalCompare(x.name, y.name)),
    };
  } finally {
    await nola.reader.close();
  }
}

/**
 * ‖B·A‖²: through the r×r Grams, tr(BᵀB · AAᵀ), or from the product itself when the rank exceeds a
 * dimension (a damaged file may claim any rank), whichever is fewer operations; no SVD either way.
 */
function productEnergy(b: Mat, a: Mat): number {
  const r = a.rows;
  if (r * r * (a.cols + b.rows) <= r * a.cols * b.rows) return frobDot(matmulTN(b, b).data, matmulNT(a, a).data);
  const m = matmul(b, a).data;
  return frobDot(m, m);
}

/** Each source layer's ‖ΔW‖², estimated from its reconstruction and stored error (see NolaInspection.totals). */
async function estimateEnergies(nola: Awaited<ReturnType<typeof openNola>>, entries: NolaLayerEntry[]): Promise<number[]> {
  assertLayersFit(nola);
  const out: number[] = [];
  for (const e of entries) {
    if (e.error >= 0.999) { out.push(NaN); continue; }
    const { a, b } = await synthesizeLayer(nola, e);
    out.push((e.scale * e.scale * productEnergy(b, a)) / (1 - e.error * e.error));
  }
  const known = out.filter((x) => !Number.isNaN(x));
  const mean = known.length ? known.reduce((a, x) => a + x, 0) / known.length : 1;
  return out.map((x) => (Number.isNaN(x) ? mean : x));
}
