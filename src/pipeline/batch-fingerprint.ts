/**
 * The settings fingerprint a NOLA file records (`settings_sha256`, docs/FORMAT.md): the SHA-256 of
 * the canonical JSON of everything that decides its bytes besides the source, so a run over a
 * library can tell an output made from these settings from one made from others. Threads and the
 * device are left out: the output does not depend on them.
 */
import { createHash } from 'node:crypto';
import type { CompressSettings } from './settings.js';
import type { Family } from '../formats/layer.js';

/**
 * The fingerprint keeps the first 64 bits of the digest: it tells settings apart (it is no
 * signature), and a small adapter's file pays for every byte of its document.
 */
export const FINGERPRINT_HEX_DIGITS = 16;

export interface FingerprintInput {
  settings: CompressSettings;
  formatVersion: number;
  /** --format, when the user overrode detection. */
  family?: Family;
}

export function settingsFingerprint(f: FingerprintInput): string {
  const canonical = canonicalJson({
    strategy: f.settings.strategy,
    seed: f.settings.seed,
    fit: f.settings.fit,
    format_version: f.formatVersion,
    family: f.family ?? null,
  });
  return createHash('sha256').update(canonical).digest('hex').slice(0, FINGERPRINT_HEX_DIGITS);
}

/** JSON with object keys sorted at every level and undefined members dropped: equal settings, equal text. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}
