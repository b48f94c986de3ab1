/**
 * nola compress: LoRA file → NOLA file + report. Reads one layer at a time, fits it, keeps only
 * its (small) coefficient blocks, and writes the container atomically at the end.
 */
import path from 'node:path';
import { stat } from 'node:fs/promises';
import { deflateSync } from 'node:zlib';
import type { Logger } from 'pino';
import { openLora, readFactors, type OpenLora } from './source.js';
import type { CompressSettings, Strategy } from './settings.js';
import type { CompressedLayer, DeliveryPrecision } from '../core/compress-layer.js';
import { truncationError } from '../core/lowrank.js';
import { settingsBytes } from './layer-strategy.js';
import { chooseThreads, createFitPool, jobsHoldThread, mapLayers, type FitOutcome, type FitPool, type FitTask } from './parallel.js';
import { fitToRatio, fp16FactorBytes, type RatioPricing, type StoredShape } from './ratio-budget.js';
import { loadBackend, type Device } from '../backends/index.js';
import type { LayerSpec, Family } from '../formats/layer.js';
import {
  documentVersion, passthroughTensorName, placeBlocks, roundError, serializeDocument, serializeDocumentV1,
  type NolaDocument, type NolaLayerEntry,
} from '../container/document.js';
import { COEFF_TENSOR, DOCUMENT_TENSOR, FORMAT_VERSION, GENERATOR, NOLA_METADATA_KEY, type FormatVersion } from '../core/constants.js';
import { writeSafetensors, assertWritable, encodeHeader, hashDataSection, planLayout, sha256Hex, assertDistinctOutputs, type OutputBatch } from '../io/index.js';
import { deriveLayerSeeds } from '../core/seeds.js';
import { RICE_HEADER_BYTES } from '../core/rice.js';
import { MAX_SEGMENTS, type QuantSpec } from '../core/quantize.js';
import type { TensorSpec, TensorData } from '../io/safetensors/types.js';
import { rdEstimate } from '../core/rd-estimate.js';
import { buildCompressReport, type CompressReport, type LayerReport } from '../report/report.js';
import { UsageError } from '../errors.js';
import { FINGERPRINT_HEX_DIGITS, settingsFingerprint } from './batch-fingerprint.js';
import { checkSourceLayers } from '../container/document.js';
import { assertMaxAbsHolds, assertReadable } from './nola-source.js';

export interface CompressRequest {
  input: string;
  output?: string;
  force?: boolean;
  family?: Family;
  settings: CompressSettings;
  onProgress?: (done: number, total: number, layer: string) => void;
  log?: Logger;
  /**
   * Worker threads fitting layers (default 1: in this thread). Output bytes do not depend on it.
   * Fits too short to repay the workers' start-up run in this thread unless `forceThreads`.
   */
  threads?: number;
  forceThreads?: boolean;
  /**
   * Worker threads kept across files by a run over many inputs (their start-up paid once); used when
   * this file's fit is long enough for workers, never closed here.
   */
  pool?: FitPool;
  /** Compute device for the fit (default cpu); gpu/tfjs-cpu fit in this thread. */
  device?: Device;
  /**
   * Newest NOLA format version to write (default 3: rice or rANS blocks, whichever is shorter; the
   * file states 2 where no rANS block was shorter). 2: rice blocks only, for readers of version 2.
   * Version 1 (issue #2's layout, nola 0.1) holds only single-mode fixed-size storage: a fixed
   * strategy, or a budget with one --quant mode.
   */
  formatVersion?: FormatVersion;
  /** --ratio with rice coding: measure only the candidates near the optimum ('near', the default) or every one ('all': the yardstick of tests and benchmarks). */
  ratioMeasure?: 'near' | 'all';
  /** Stage the NOLA file in this batch (committed by the caller with its other outputs, e.g. --report). */
  batch?: OutputBatch;
  /** The caller's other outputs of this run: none may be an input or the NOLA file. */
  otherOutputs?: string[];
}

/**
 * The default NOLA file for an input (a LoRA file or a PEFT adapter folder): beside it, `x.safetensors`
 * → `x.nola`, `adapter-folder/` → `adapter-folder.nola`. Not `.safetensors`: LoRA loaders list every
 * `.safetensors` file, and a NOLA file applied as a LoRA would change nothing. nola reads either name.
 */
export function defaultNolaPath(input: string): string {
  let p = input.replace(/[\\/]+$/, '') || input;
  const b = path.basename(p);
  if (b === '' || b === '.' || b === '..') p = path.resolve(p);
  const base = p.endsWith('.safetensors') ? p.slice(0, -'.safetensors'.length) : p;
  return `${base}.nola`;
}

interface Fitted {
  spec: LayerSpec;
  layer: CompressedLayer;
  /** σ of the source update, for baselines. */
  sigma: Float64Array;
}

export async function compress(req: CompressRequest): Promise<{ output: string; report: CompressReport }> {
  const version = req.formatVersion ?? FORMAT_VERSION;
  if (version === 1) assertVersion1Fits(req.settings.strategy);
  const lora = await openLora(req.input, req.family);
  try {
    const output = req.output ?? defaultNolaPath(req.input);
    await assertDistinctOutputs([output, ...(req.otherOutputs ?? [])], [lora.file, path.join(path.dirname(lora.file), 'adapter_config.json')]);
    await assertWritable(output, req.force ?? false);
    for (const w of lora.plan.warnings) req.log?.warn(w);
    for (const n of lora.plan.notes ?? []) req.log?.info(n);
    checkSourceLayers(lora.file, lora.plan.layers);

    const fitted = await fitAll(lora, { ...req, settings: codingSettings(req.settings, version) });
    // Versions 2 and 3 store a layer that keeps nothing as nothing (docs/FORMAT.md: both counts 0).
    if (version !== 1) for (const f of fitted) if (keepsNothing(f.layer)) f.layer = emptyLayer(f.layer);
    // What expand would refuse (a factor that rounds past its dtype's range), compress refuses.
    for (const { spec, layer: { maxAbs } } of fitted) {
      assertMaxAbsHolds(lora.file, spec.name, 'A', maxAbs.a, spec.dtypeA);
      assertMaxAbsHolds(lora.file, spec.name, 'B', maxAbs.b, spec.dtypeB);
    }
    const tensorsSha256 = await hashDataSection(lora.reader);
    const settingsSha256 = settingsFingerprint({ settings: req.settings, formatVersion: version, family: req.family });
    let doc: NolaDocument, metadata: string, own: OwnTensor[], body: string | undefined;
    if (version === 1) {
      doc = buildDocument(lora, fitted, tensorsSha256, undefined, settingsSha256);
      const v1 = serializeDocumentV1(doc);
      metadata = v1.metadata;
      own = v1.tensors.map(({ name, dtype, shape, layer, factor, part }) => {
        const block = factor === 'A' ? fitted[layer].layer.blockA : fitted[layer].layer.blockB;
        return { name, dtype, shape, data: part === 'codes' ? block.codes : block.scales };
      });
    } else {
      const coeffs = coefficientStream(fitted);
      doc = buildDocument(lora, fitted, tensorsSha256, sha256Hex(coeffs), settingsSha256);
      const v2 = serializeDocument(doc);
      metadata = v2.metadata;
      body = v2.body;
      const document = deflateSync(v2.body, { level: 9 });
      own = [
        { name: COEFF_TENSOR, dtype: 'U8', shape: [coeffs.length], data: coeffs },
        { name: DOCUMENT_TENSOR, dtype: 'U8', shape: [document.length], data: document },
      ];
    }
    const { specs, produce } = containerTensors(lora, own);
    assertReadable(output, metadata, specs, body);
    await writeSafetensors(output, specs, { [NOLA_METADATA_KEY]: metadata }, produce, { force: req.force, batch: req.batch });

    const rows: LayerReport[] = fitted.map((f, i) => layerRow(f, doc.layers[i]));
    const report = buildCompressReport({
      input: lora.file,
      output,
      family: lora.plan.family,
      strategy: req.settings.strategy,
      layers: rows,
      passthroughBytes: lora.plan.passthrough.reduce((acc, name) => acc + byteLength(lora, name), 0),
      inputBytes: (await stat(lora.file)).size,
      outputBytes: (await stat(req.batch?.pathOf(output) ?? output)).size,
      warnings: lora.plan.warnings,
      peakRssBytes: peakRssBytes(),
    });
    return { output, report };
  } finally {
    await lora.reader.close();
  }
}

/** A stored layer whose reconstruction is no closer to the source than zero (error 1 to six digits). */
function keepsNothing(layer: Pick<CompressedLayer, 'error' | 'deliveredError'>): boolean {
  return Math.min(layer.error, layer.deliveredError) >= 1 - 5e-7;
}

/** Zero coefficients: both factors expand to zeros, exactly error 1, and no bytes stored. */
function emptyLayer(layer: CompressedLayer): CompressedLayer {
  const none = { mode: 'f16' as const, count: 0, codes: new Uint8Array(0), scales: new Uint8Array(0) };
  return {
    settings: { ...layer.settings, k: 0, l: 0, basis: 'orthogonal', quantA: 'f16', quantB: 'f16' },
    blockA: none, blockB: none, error: 1, deliveredError: 1, fitError: layer.fitError, maxAbs: { a: 0, b: 0 },
  };
}

/** One layer's factors read from the file, with what a worker is to do with them. */
export async function readFitTask(lora: OpenLora, spec: LayerSpec, job: FitTask['job']): Promise<FitTask> {
  const { a0, b0 } = await readFactors(lora, spec);
  return { spec, a: a0.data, b: b0.data, deliverA: deliveryPrecision(spec.dtypeA), deliverB: deliveryPrecision(spec.dtypeB), job };
}

/** The precision expand will write a factor in (its source dtype). */
function deliveryPrecision(dtype: string): DeliveryPrecision {
  return dtype === 'F16' ? 'f16' : dtype === 'BF16' ? 'bf16' : dtype === 'F64' ? 'f64' : 'f32';
}

function byteLength(lora: OpenLora, name: string): number {
  const t = lora.reader.get(name);
  return t === undefined ? 0 : t.end - t.begin;
}

/** The settings the fit runs with: rice blocks may become rANS blocks from version 3 on. */
function codingSettings(settings: CompressSettings, version: FormatVersion): CompressSettings {
  const s = settings.strategy;
  return s.kind === 'budget' && s.quants.includes('rice') && version >= 3 ? { ...settings, strategy: { ...s, rans: true } } : settings;
}

async function fitAll(lora: OpenLora, req: CompressRequest): Promise<Fitted[]> {
  const version = req.formatVersion ?? FORMAT_VERSION;
  const { strategy, seed, fit } = req.settings;
  const layers = lora.plan.layers;
  const total = layers.length;
  const backend = req.device === undefined || req.device === 'cpu' ? undefined : await loadBackend(req.device, (m) => req.log?.warn(m));
  const threads = req.forceThreads ? Math.min(req.threads ?? 1, Math.max(1, total)) : chooseThreads(req.threads ?? 1, layers, strategy);
  const pool = threads > 1 && backend === undefined && req.pool !== undefined ? req.pool : createFitPool(threads, { backend, callingThread: !jobsHoldThread(strategy) });
  const readTask = (spec: LayerSpec, job: FitTask['job']): Promise<FitTask> => readFitTask(lora, spec, job);
  const logWarnings = (o: FitOutcome): void => { for (const w of o.warnings) req.log?.warn(w); };
  let done = 0;
  try {
    if (strategy.kind === 'budget' && 'ratio' in strategy.target) {
      const outcomes = await fitToRatio({
        layers, strategy: { ...strategy, target: strategy.target }, seed, fit, pool, readTask, log: req.log, measure: req.ratioMeasure,
        onDone: (o, i, fraction) => {
          logWarnings(o);
          if (fraction > 0) req.onProgress?.((done += fraction), total, layers[i].name);
        },
        pricing: ratioPricing(lora, seed, version),
      });
      return outcomes.map((o, i) => ({ spec: layers[i], layer: o.layer!, sigma: o.sigma }));
    }
    const fitted = await mapLayers(pool, total, (i) => readTask(layers[i], { kind: 'choose', settings: req.settings }), (i, o) => {
      logWarnings(o);
      req.onProgress?.(++done, total, layers[i].name);
    });
    return fitted.map((o, i) => ({ spec: layers[i], layer: o.layer!, sigma: o.sigma }));
  } finally {
    if (pool !== req.pool) await pool.close();
  }
}

/** How the size of this LoRA's NOLA file follows from its layers, for --ratio (and --sweep's --ratio points). */
export function ratioPricing(lora: OpenLora, seed: number, version: FormatVersion): RatioPricing {
  const fp16Bytes = fp16FactorBytes(lora.plan.layers);
  return {
    estimateOverhead: (budget) => containerOverhead(lora, fp16Bytes, budget, seed, version),
    fileBytes: (stored) => fileBytesOf(lora, stored, version),
    // Versions 2 and 3 store a layer that keeps nothing as nothing; version 1 stores it.
    storesNothing: (stored) => version !== 1 && keepsNothing(stored),
  };
}

/**
 * The bytes a NOLA file of this LoRA spends besides coefficients and passthrough tensors (8-byte
 * length, header, compressed document), estimated before any setting is chosen: the document is
 * built as compress will build it, each layer at full rank with rice blocks of its share of the
 * coefficient budget (one per component: the longer description), its real seeds, and an error of
 * six digits.
 */
function containerOverhead(lora: OpenLora, fp16Bytes: number, coefficientBudget: number, seed: number, version: FormatVersion): number {
  const fp16 = fp16Bytes || 1;
  const stored = lora.plan.layers.map((spec): StoredShape => {
    const { seedA, seedB } = deriveLayerSeeds(seed, spec.name);
    const rank = spec.rank;
    const k = rank * spec.dIn, l = spec.dOut * rank;
    const share = (n: number): number => Math.max(RICE_HEADER_BYTES, Math.round((coefficientBudget * n) / (fp16 / 2)));
    const error = 0.05 + (seedA % 899_999) / 1e7;
    // Version 1 holds one fixed-size precision per factor and a tensor per block.
    const components = version !== 1 && spec.rank <= MAX_SEGMENTS;
    // Real block sizes differ from block to block (equal placeholders would deflate to nothing): vary
    // them by up to ±20% with the layer's seed.
    const blocks = (count: number, d: number): QuantSpec => (version === 1 ? 'int8' : components
      ? Array.from({ length: rank }, (_, c) => ['rice', d, Math.max(RICE_HEADER_BYTES, Math.round(share(d) * (0.8 + 0.4 * (((seedA >>> 0) * (c + 1) * 0.6180339887) % 1))))] as const)
      : [['rice', count, share(count)]]);
    const settings = { rank, k, l, basis: components ? 'orthogonal-components' : 'orthogonal', quantA: blocks(k, spec.dIn), quantB: blocks(l, spec.dOut), seedA, seedB } as StoredShape['settings'];
    return { settings, error, deliveredError: error };
  });
  return containerBytes(lora, stored, Math.round(coefficientBudget), version);
}

/** The file's bytes besides passthrough tensors for these stored layers, as compress writes them (from version 2 on, a layer that keeps nothing stored as nothing). */
function fileBytesOf(lora: OpenLora, stored: StoredShape[], version: FormatVersion): number {
  const final = stored.map((s) => (version !== 1 && keepsNothing(s) ? emptyLayer(s as CompressedLayer) : s));
  const coefficients = final.reduce((acc, s) => acc + settingsBytes(s.settings), 0);
  return coefficients + containerBytes(lora, final, coefficients, version);
}

/**
 * The container's own bytes (8-byte length, header, compressed document) around `coefficientBytes`
 * of coefficients, the document built as compress builds it. Its hashes are not known yet: stand-ins
 * of the same length and the same look (hex digits of a SHA-256) deflate as the real ones do, within
 * a byte or two.
 */
function containerBytes(lora: OpenLora, stored: StoredShape[], coefficientBytes: number, version: FormatVersion): number {
  const fitted = lora.plan.layers.map((spec, i): Fitted => ({ spec, layer: stored[i] as CompressedLayer, sigma: new Float64Array(0) }));
  const stand = (what: string): string => sha256Hex(new TextEncoder().encode(`nola placeholder ${what}`));
  if (version === 1) {
    // Version 1: the document is the header's metadata, and each block a tensor of its own.
    const v1 = serializeDocumentV1(buildDocument(lora, fitted, stand('tensors'), undefined, stand('settings').slice(0, FINGERPRINT_HEX_DIGITS)));
    const specs: TensorSpec[] = [...v1.tensors.map(({ name, dtype, shape }) => ({ name, dtype, shape })), ...passthroughSpecs(lora)];
    return 8 + encodeHeader({ [NOLA_METADATA_KEY]: v1.metadata }, planLayout(specs)).length;
  }
  const doc = buildDocument(lora, fitted, stand('tensors'), stand('coefficients'), stand('settings').slice(0, FINGERPRINT_HEX_DIGITS));
  const { metadata, body } = serializeDocument(doc);
  const document = deflateSync(body, { level: 9 }).length;
  const specs: TensorSpec[] = [
    { name: COEFF_TENSOR, dtype: 'U8', shape: [coefficientBytes] },
    { name: DOCUMENT_TENSOR, dtype: 'U8', shape: [document] },
    ...passthroughSpecs(lora),
  ];
  return 8 + encodeHeader({ [NOLA_METADATA_KEY]: metadata }, planLayout(specs)).length + document;
}

/** Largest resident set of the whole process (all threads) so far, in bytes. */
function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** The document compress writes; `coeffsSha256` (of the version-2 coefficient stream) only for version 2. */
function buildDocument(lora: OpenLora, fitted: Fitted[], tensorsSha256: string, coeffsSha256?: string, settingsSha256?: string): NolaDocument {
  const counts = fitted.map(({ layer: { settings: s } }) => ({ num_basis_A: s.k, num_basis_B: s.l, quant_A: s.quantA, quant_B: s.quantB }));
  const { blocks } = placeBlocks(counts);
  const layers: NolaLayerEntry[] = fitted.map(({ spec, layer }, i) => {
    const s = layer.settings;
    return {
      name: spec.name,
      kind: spec.kind,
      key_A: spec.keyA,
      key_B: spec.keyB,
      ...(spec.keyAlpha !== undefined ? { key_alpha: spec.keyAlpha, dtype_alpha: spec.dtypeAlpha } : {}),
      dtype_A: spec.dtypeA,
      dtype_B: spec.dtypeB,
      shape_A: spec.shapeA,
      shape_B: spec.shapeB,
      source_rank: spec.rank,
      rank: s.rank,
      d_in: spec.dIn,
      d_out: spec.dOut,
      ...(spec.alpha !== undefined ? { alpha: spec.alpha } : {}),
      source_scale: spec.scale,
      scale: spec.scale,
      basis: s.basis,
      seed_A: s.seedA,
      seed_B: s.seedB,
      num_basis_A: s.k,
      num_basis_B: s.l,
      quant_A: s.quantA,
      quant_B: s.quantB,
      // What the file says is what the report says: both carry the stored (rounded) numbers.
      error: roundError(layer.error),
      error_expanded: roundError(layer.deliveredError),
      blocks: blocks[i],
    };
  });
  return {
    format_version: documentVersion(layers),
    generator: GENERATOR,
    source: {
      family: lora.plan.family,
      file: path.basename(lora.file),
      bytes: lora.reader.fileSize,
      tensors_sha256: tensorsSha256,
      metadata: lora.reader.metadata,
      config: lora.config,
    },
    layers,
    passthrough: lora.plan.passthrough.map((name, i) => ({ name, tensor: passthroughTensorName(i) })),
    ...(coeffsSha256 !== undefined ? { coeffs: { tensor: COEFF_TENSOR, sha256: coeffsSha256 } } : {}),
    ...(settingsSha256 !== undefined ? { settings_sha256: settingsSha256 } : {}),
  };
}

/** Every layer's blocks back to back, in the order placeBlocks defines (A then B; codes then scales). */
function coefficientStream(fitted: Fitted[]): Uint8Array {
  return Buffer.concat(fitted.flatMap(({ layer }) => [layer.blockA.codes, layer.blockA.scales, layer.blockB.codes, layer.blockB.scales]));
}

/** A tensor the container holds in memory (coefficients, document). */
type OwnTensor = TensorSpec & { data: Uint8Array };

/** The source's non-LoRA tensors as the NOLA file names them (`nola.passthrough.<j>`), with the source name each copies. */
function passthroughSpecs(lora: OpenLora): Array<TensorSpec & { source: string }> {
  return lora.plan.passthrough.map((source, i) => {
    const t = lora.reader.get(source)!;
    return { name: passthroughTensorName(i), dtype: t.dtype, shape: t.shape, source };
  });
}

/** Every tensor of the file: the container's own, then the passthrough tensors, read from the source as the writer asks. */
function containerTensors(lora: OpenLora, own: OwnTensor[]): { specs: TensorSpec[]; produce: (spec: TensorSpec) => Promise<TensorData> } {
  const data = new Map<string, Uint8Array | string>(own.map((t) => [t.name, t.data]));
  const specs: TensorSpec[] = own.map(({ name, dtype, shape }) => ({ name, dtype, shape }));
  for (const { source, ...spec } of passthroughSpecs(lora)) {
    specs.push(spec);
    data.set(spec.name, source);
  }
  const produce = async (spec: TensorSpec): Promise<TensorData> => {
    const d = data.get(spec.name)!;
    return typeof d === 'string' ? new Uint8Array(await lora.reader.readRaw(d)) : d;
  };
  return { specs, produce };
}

/** Version 1 has no rice blocks and no split precisions: refuse, before any work, the strategies that make them. */
function assertVersion1Fits(strategy: Strategy): void {
  if (strategy.kind === 'budget' && (strategy.quants.length !== 1 || strategy.quants[0] === 'rice')) {
    throw new UsageError('--format-version 1 holds one fixed-size precision per factor: give --quant with one mode (f32, f16, bf16, int8 … int2), or use --preset paper / --coeffs');
  }
}

function layerRow({ spec, layer, sigma }: Fitted, entry: NolaLayerEntry): LayerReport {
  const s = layer.settings;
  const bytesAfter = settingsBytes(s);
  const perRank = spec.dIn + spec.dOut;
  return {
    name: spec.name,
    kind: spec.kind,
    dOut: spec.dOut,
    dIn: spec.dIn,
    sourceRank: spec.rank,
    rank: s.rank,
    basis: s.basis,
    k: s.k,
    l: s.l,
    quantA: s.quantA,
    quantB: s.quantB,
    paramsBefore: spec.rank * perRank,
    paramsAfter: s.k + s.l,
    fp16BytesBefore: 2 * spec.rank * perRank,
    bytesAfter,
    error: entry.error,
    deliveredError: layer.deliveredError,
    fitError: layer.fitError,
    energy: sigma.reduce((acc, v) => acc + v * v, 0),
    svdErrorSameParams: truncationError(sigma, Math.floor((s.k + s.l) / perRank)),
    svdFp16ErrorSameBytes: truncationError(sigma, Math.floor(bytesAfter / (2 * perRank))),
    rankError: truncationError(sigma, s.rank),
    ...rateDistortionRow(sigma, spec.dIn, spec.dOut, Math.max(entry.error, layer.deliveredError), bytesAfter),
  };
}

/** The layer against the rate–distortion estimates at the error it reached (src/core/rd-estimate.ts). */
function rateDistortionRow(sigma: Float64Array, dIn: number, dOut: number, error: number, bytesAfter: number): Pick<LayerReport, 'rdGaussianBytes' | 'rdBoundBytes' | 'rdGapBitsPerDof'> {
  const rd = rdEstimate(sigma, dIn, dOut, Math.min(Math.max(error, 1e-6), 1 - 1e-9));
  return {
    rdGaussianBytes: rd.gaussianBits / 8,
    rdBoundBytes: rd.manifoldBits / 8,
    rdGapBitsPerDof: rd.dof > 0 ? (8 * bytesAfter - rd.manifoldBits) / rd.dof : 0,
  };
}
