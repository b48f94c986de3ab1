/**
 * nola verify: rebuild every layer from a NOLA file and check it against what the file claims;
 * with the source LoRA, also check the source checksum and recompute every error from scratch.
 */
import { openNola, readBlock } from './nola-source.js';
import { openLora, readFactors } from './source.js';
import { expandLayer } from '../core/compress-layer.js';
import { relativeError } from '../core/lowrank.js';
import { hashDataSection } from '../io/index.js';

export interface VerifyResult {
  file: string;
  source: string | null;
  checksum: 'match' | 'mismatch' | 'not-checked';
  layers: Array<{ name: string; claimed: number; measured: number | null; finite: boolean; ok: boolean }>;
  ok: boolean;
}

export async function verify(file: string, source: string | undefined, tolerance: number): Promise<VerifyResult> {
  const nola = await openNola(file);
  const lora = source === undefined ? undefined : await openLora(source, nola.doc.source.family);
  try {
    let checksum: VerifyResult['checksum'] = 'not-checked';
    if (lora !== undefined) checksum = (await hashDataSection(lora.reader)) === nola.doc.source.tensors_sha256 ? 'match' : 'mismatch';
    const specs = new Map((lora?.plan.layers ?? []).map((s) => [s.name, s]));
    const layers: VerifyResult['layers'] = [];
    for (const entry of nola.doc.layers) {
      const { a, b } = expandLayer(
        { rank: entry.rank, k: entry.num_basis_A, l: entry.num_basis_B, basis: entry.basis, seedA: entry.seed_A, seedB: entry.seed_B },
        entry.d_in, entry.d_out, await readBlock(nola, entry, 'A'), await readBlock(nola, entry, 'B'),
      );
      const finite = a.data.every(Number.isFinite) && b.data.every(Number.isFinite);
      let measured: number | null = null;
      const spec = specs.get(entry.name);
      if (lora !== undefined && spec !== undefined) {
        const { a0, b0 } = await readFactors(lora, spec);
        measured = relativeError(spec.scale, b0, a0, entry.scale, b, a);
      }
      const ok = finite && (lora === undefined || (measured !== null && Math.abs(measured - entry.error) <= tolerance));
      layers.push({ name: entry.name, claimed: entry.error, measured, finite, ok });
    }
    return { file, source: lora?.file ?? null, checksum, layers, ok: checksum !== 'mismatch' && layers.every((l) => l.ok) };
  } finally {
    await nola.reader.close();
    await lora?.reader.close();
  }
}
