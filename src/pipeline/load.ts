/**
 * load: what `nola expand` would write, kept in memory. The same plan and the same tensor producer as
 * expand (buildExpand), the same byte encoding and file order as the writer (planLayout, produceBytes)
 * and the same final metadata (finalMetadata over the data section's SHA-256, for kohya hashes), so
 * every tensor's bytes, the metadata and the PEFT config equal the expanded files exactly.
 */
import { createHash } from 'node:crypto';
import { buildExpand } from './expand.js';
import { openNola } from './nola-source.js';
import type { Family } from '../formats/layer.js';
import type { DType } from '../io/safetensors/dtypes.js';
import { finalMetadata, planLayout, produceBytes } from '../io/safetensors/writer.js';

export interface LoadedTensor {
  name: string;
  dtype: DType;
  shape: number[];
  /** Little-endian bytes in `dtype`, exactly the tensor's data in the expanded file. */
  bytes: Uint8Array;
}

export interface LoadedLora {
  /** The family the tensors are named in (the source's, or `to`). */
  family: Family;
  /** In the expanded file's order (the safetensors reference writer's: dtype, then name). */
  tensors: LoadedTensor[];
  /** The expanded file's `__metadata__` (or null). */
  metadata: Record<string, string> | null;
  /** The adapter_config.json expand writes beside a PEFT file (as a parsed object), else null. */
  config: unknown | null;
  warnings: string[];
}

export async function loadExpanded(input: string, to?: Family, threads?: number): Promise<LoadedLora> {
  const nola = await openNola(input);
  try {
    const { plan, specs, withProducer } = await buildExpand(nola, to, threads);
    const finalize = plan.kohyaHashes?.finalizeMetadata;
    const hash = finalize ? createHash('sha256') : undefined;
    const tensors = await withProducer(async (produce) => {
      const out: LoadedTensor[] = [];
      for (const t of planLayout(specs)) {
        const bytes = await produceBytes(t, (_spec, i) => produce(i));
        hash?.update(bytes);
        const { name, dtype, shape } = t.spec;
        // The writer may hand out a view of a factor's own memory (F32/F64); the caller gets its own copy.
        out.push({ name, dtype, shape: [...shape], bytes: bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice() });
      }
      return out;
    });
    const metadata = finalize && hash ? finalMetadata(plan.metadata, finalize(hash.digest('hex'))) : plan.metadata;
    return { family: plan.family, tensors, metadata, config: plan.config ?? null, warnings: plan.warnings };
  } finally {
    await nola.reader.close();
  }
}
