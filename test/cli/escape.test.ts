/**
 * Issue 14: names from files are printed with control characters escaped. The expected strings are
 * written out by hand from the rule (every C0 control except newline and tab, DEL, C1, U+2028/2029 and
 * the bidi overrides become \u00XX / \uXXXX); JSON.parse reads the escapes back, so --json output
 * stays valid JSON.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeControl } from '../../src/cli/escape.js';

test('control characters become visible escapes; newline, tab and ordinary text are kept', () => {
  assert.equal(escapeControl('lora\x1b[2K\rfake'), 'lora\\u001b[2K\\u000dfake');
  assert.equal(escapeControl('a\x00b\x7fc\x9bd\u2028e\u202ef'), 'a\\u0000b\\u007fc\\u009bd\\u2028e\\u202ef');
  assert.equal(escapeControl('line one\n\tline two, ü, 漢字'), 'line one\n\tline two, ü, 漢字');
  // Inside a JSON string (JSON.stringify leaves C1 and U+2028 raw) the result is still JSON, meaning the same text.
  const raw = JSON.stringify({ name: 'x\x9b31m\u2028' });
  assert.deepEqual(JSON.parse(escapeControl(raw)), { name: 'x\x9b31m\u2028' });
});
