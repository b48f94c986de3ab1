/**
 * Generator lowbias32-v1: a counter-based hash generator. value(seed, i, j) is a pure function
 * of its three 32-bit inputs, so any basis entry can be regenerated in any order, on any
 * thread, with identical bits. Constants live in src/core/constants.ts and docs/FORMAT.md.
 */
import { GEN_COL_SALT, GEN_M1, GEN_M2, GEN_ROW_SALT, GEN_VALUE_SCALE } from './constants.js';

/** lowbias32 finalizer (Wellons), arithmetic mod 2^32. Returns an unsigned 32-bit integer. */
export function mix32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, GEN_M1) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, GEN_M2) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  return x;
}

/** The per-row part of u32: mix32(seed ^ mix32(i ^ ROW_SALT)). */
export function rowKey(seed: number, i: number): number {
  return mix32((seed ^ mix32((i ^ GEN_ROW_SALT) >>> 0)) >>> 0);
}

/** The per-column part of u32: mix32(j ^ COL_SALT). Independent of the seed, so it can be shared. */
export function colKey(j: number): number {
  return mix32((j ^ GEN_COL_SALT) >>> 0);
}

export function u32(seed: number, i: number, j: number): number {
  return mix32((rowKey(seed, i) ^ colKey(j)) >>> 0);
}

/** value(seed,i,j) = (int32(u32) >> 8) · 2^-23, exact in float32, in [-1, 1). */
export function value(seed: number, i: number, j: number): number {
  return (u32(seed, i, j) >> 8) * GEN_VALUE_SCALE;
}

/** Column keys 0..n-1, cached per length since they do not depend on the seed. */
const colKeyCache = new Map<number, Int32Array>();
export function colKeys(n: number): Int32Array {
  let keys = colKeyCache.get(n);
  if (keys === undefined) {
    keys = new Int32Array(n);
    for (let j = 0; j < n; j++) keys[j] = colKey(j);
    if (n <= 1 << 22) colKeyCache.set(n, keys);
  }
  return keys;
}

/** Fill out[0..n) with value(seed, i, 0..n). One mix32 per entry. */
export function fillRow(seed: number, i: number, out: Float32Array | Float64Array, keys = colKeys(out.length)): void {
  const rk = rowKey(seed, i);
  const n = out.length;
  for (let j = 0; j < n; j++) {
    let x = rk ^ keys[j];
    x ^= x >>> 16;
    x = Math.imul(x, GEN_M1);
    x ^= x >>> 15;
    x = Math.imul(x, GEN_M2);
    x ^= x >>> 15;
    out[j] = (x >> 8) * GEN_VALUE_SCALE;
  }
}
