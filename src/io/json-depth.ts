/**
 * How deep a JSON text nests, found by a scan (no parse, no recursion). JSON.parse itself copes with
 * deep nesting, but what nola does with the value afterwards (JSON.stringify when a config is written
 * back, structured clones, recursive walks) overflows the stack on a 100,000-level config: such text
 * is refused up front, with a line, instead of failing half-way through an output.
 */
import { FormatError } from '../errors.js';

/** Most levels of {…}/[…] in an adapter_config.json, a lora_adapter_metadata or ss_network_args value. */
export const MAX_CONFIG_DEPTH = 32;
/** Most levels in a NOLA document (its stored config sits 2 levels down, under "source"). */
export const MAX_DOCUMENT_DEPTH = MAX_CONFIG_DEPTH + 8;

/** The nesting depth of `text`, or limit + 1 as soon as it is known to be deeper than `limit`. */
export function jsonDepth(text: string, limit = Infinity): number {
  let depth = 0, max = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return max;
}

/** Throws FormatError `${what} nests deeper than N levels` when `text` does. */
export function assertJsonDepth(text: string, what: string, limit = MAX_CONFIG_DEPTH): void {
  if (jsonDepth(text, limit) > limit) throw new FormatError(`${what} nests deeper than ${limit} levels of JSON objects and arrays`);
}
