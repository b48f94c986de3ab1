/**
 * Per-layer seeds derive from the user's seed and the layer's name only, so they do not depend
 * on the order of layers in the file (re-ordering a file, or compressing a subset, gives the
 * same bases for the same layer).
 *
 *   h      = FNV-1a-32(UTF-8 bytes of the layer name)
 *   seed_A = mix32(mix32(S ^ SEED_SALT_A) ^ h)
 *   seed_B = mix32(mix32(S ^ SEED_SALT_B) ^ h)
 */
import { mix32 } from './generator.js';
import { SEED_SALT_A, SEED_SALT_B } from './constants.js';

export function fnv1a32(text: string): number {
  const bytes = new TextEncoder().encode(text);
  let h = 0x811c9dc5;
  for (const byte of bytes) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export function deriveLayerSeeds(seed: number, name: string): { seedA: number; seedB: number } {
  const h = fnv1a32(name);
  return {
    seedA: mix32((mix32((seed ^ SEED_SALT_A) >>> 0) ^ h) >>> 0),
    seedB: mix32((mix32((seed ^ SEED_SALT_B) >>> 0) ^ h) >>> 0),
  };
}
