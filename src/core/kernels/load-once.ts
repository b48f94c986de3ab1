/**
 * An optional kernel, made on first use: `create()` once, its result kept; if it throws (no
 * WebAssembly SIMD on this runtime, a module not built) null is kept instead, for good, and the
 * caller runs its TypeScript loop, which gives the same bits.
 */
export function loadOnce<T>(create: () => T): () => T | null {
  let made: T | null | undefined;
  return () => {
    if (made === undefined) {
      try {
        made = create();
      } catch {
        made = null;
      }
    }
    return made;
  };
}
