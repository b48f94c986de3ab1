/**
 * Text from files (tensor names, metadata, config keys) reaches the terminal inside messages; a name
 * holding `\x1b[2K…` would erase the line and print what it likes. Every message nola prints goes
 * through here: C0 and C1 control characters, DEL, and the Unicode line separators and bidirectional
 * overrides become visible `\u00XX` escapes (valid inside JSON strings too, so --json stays parseable).
 */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** `s` with every control character except newline and tab escaped. */
export function escapeControl(s: string): string {
  return s.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
