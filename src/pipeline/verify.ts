/**
 * nola verify: rebuild every layer from a NOLA file and check it against what the file claims;
 * with the source LoRA, also check the source checksum and recompute every error from scratch.
 */
import { assertHolds, assertLayersFit, openNola, synthesizeLayer, validateNola } from './nola-source.js';
import { planExpand } from './expand.js';
import { openLora, readFactors, type OpenLora } from './source.js';
import { relativeError } from '../core/lowrank.js';
import { hashDataSection } from '../io/index.js';

export interface VerifyResult {
  file: string;
  source: string | null;
  checksum: 'match' | 'mismatch' | 'not-checked';
  /** The coefficient tensor against the SHA-256 the file states (version 1 files state none). */
  coefficients: 'match' | 'mismatch' | 'not-stored';
  layers: Array<{ name: string; claimed: number; measured: number | null; finite: boolean; ok: boolean }>;
  /** Layers of the source that the NOLA file does not describe (a dropped layer is a failure, never silent). */
  missing: string[];
  ok: boolean;
}

export async function verify(file: string, source: string | undefined, tolerance: number): Promise<VerifyResult> {
  const nola = await openNola(file);
  let lora: OpenLora | undefined;
  try {
    // What expand would refuse, verify refuses: the same limits, blocks and output plan (one validation).
    assertLayersFit(nola);
    const coefficients: VerifyResult['coefficients'] = await validateNola(nola, 'report');
    const plan = planExpand(nola, undefined);
    lora = source === undefined ? undefined : await openLora(source, nola.doc.source.family);
    let checksum: VerifyResult['checksum'] = 'not-checked';
    if (lora !== undefined) checksum = (await hashDataSection(lora.reader)) === nola.doc.source.tensors_sha256 ? 'match' : 'mismatch';
    const specs = new Map((lora?.plan.layers ?? []).map((s) => [s.name, s]));
    const layers: VerifyResult['layers'] = [];
    for (const [i, entry] of nola.doc.layers.entries()) {
      const { a, b } = await synthesizeLayer(nola, entry);
      const finite = a.data.every(Number.isFinite) && b.data.every(Number.isFinite);
      if (finite) {
        // As expand writes them: B carries the ratio of the stored scale to the output's, each factor in its dtype.
        const ratio = entry.scale / plan.layers[i].scaleOut;
        assertHolds(nola.file, entry.name, 'A', a.data, entry.dtype_A);
        assertHolds(nola.file, entry.name, 'B', ratio === 1 ? b.data : b.data.map((v) => v * ratio), entry.dtype_B);
      }
      let measured: number | null = null;
      const spec = specs.get(entry.name);
      if (lora !== undefined && spec !== undefined) {
        const { a0, b0 } = await readFactors(lora, spec);
        measured = relativeError(spec.scale, b0, a0, entry.scale, b, a);
      }
      const ok = finite && (lora === undefined || (measured !== null && Math.abs(measured - entry.error) <= tolerance));
      layers.push({ name: entry.name, claimed: entry.error, measured, finite, ok });
    }
    const described = new Set(nola.doc.layers.map((e) => e.name));
    const missing = [...specs.keys()].filter((name) => !described.has(name));
    return {
      file, source: lora?.file ?? null, checksum, coefficients, layers, missing,
      ok: checksum !== 'mismatch' && coefficients !== 'mismatch' && missing.length === 0 && layers.every((l) => l.ok),
    };
  } finally {
    await nola.reader.close();
    await lora?.reader.close();
  }
}
