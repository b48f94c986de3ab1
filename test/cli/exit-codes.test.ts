/**
 * Issue 5 item 2: the README's "Exit codes" table is the documentation of EXIT in src/errors.ts, the one
 * mapping; this keeps the two identical (same names, same codes, nothing missing or extra) and checks
 * that each typed error carries the code its row documents.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  BackendUnavailableError, EXIT, FormatError, InterruptedError, IoError, NumericError, PairingError, UsageError,
} from '../../src/errors.js';
import { REPO } from './cli-helpers.js';

function readmeTable(): Map<string, number> {
  const text = readFileSync(path.join(REPO, 'README.md'), 'utf8');
  const start = text.indexOf('\n## Exit codes\n');
  assert.ok(start >= 0, 'README.md has no "## Exit codes" section');
  const next = text.indexOf('\n## ', start + 1);
  const section = text.slice(start, next < 0 ? undefined : next);
  const rows = new Map<string, number>();
  for (const line of section.split('\n')) {
    const m = /^\|\s*(\d+)\s*\|\s*([a-z]+)\s*\|/.exec(line);
    if (!m) continue;
    assert.ok(!rows.has(m[2]), `${m[2]} listed twice`);
    rows.set(m[2], Number(m[1]));
  }
  return rows;
}

test('the README exit-code table is exactly EXIT from src/errors.ts', () => {
  const rows = readmeTable();
  assert.deepEqual(Object.fromEntries(rows), { ...EXIT });
});

test('each typed error exits with the code its README row documents', () => {
  const rows = readmeTable();
  const cases: Array<[string, { exitCode: number }]> = [
    ['usage', new UsageError('x')], ['format', new FormatError('x')], ['pairing', new PairingError('x')],
    ['numeric', new NumericError('x')], ['backend', new BackendUnavailableError('x')], ['io', new IoError('x')],
    ['interrupted', new InterruptedError()],
  ];
  for (const [name, err] of cases) assert.equal(err.exitCode, rows.get(name), name);
});
