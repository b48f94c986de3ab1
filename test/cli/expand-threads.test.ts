/**
 * `nola expand --threads N`, single file and library runs: the bytes written are the same for any N
 * (compared with the one-thread output, byte for byte), and a value outside 1..1024 is refused as a
 * usage error before anything is written.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { EXIT } from '../../src/errors.js';
import { runNola } from './cli-helpers.js';
import { makeWorkspace, type Workspace } from './ux-helpers.js';

let ws: Workspace;
let nola: string;
before(async () => {
  ws = await makeWorkspace('nola-expand-threads-');
  nola = path.join(ws.dir, 'kohya.nola');
  const r = await runNola(['compress', path.join(ws.fixtures, 'kohya-sd15.safetensors'), '-o', nola, '--threads', '1']);
  assert.equal(r.code, 0, r.stderr);
});
after(() => ws.cleanup());

test('expand --threads N writes the same bytes for every N, alone and in a library run', async () => {
  const outputs: string[] = [];
  for (const n of ['1', '2', '3']) {
    const out = path.join(ws.dir, `t${n}.safetensors`);
    const r = await runNola(['expand', nola, '-o', out, '--threads', n]);
    assert.equal(r.code, 0, r.stderr);
    outputs.push(out);
  }
  const one = await runNola(['expand', nola, '--out-dir', path.join(ws.dir, 'lib'), '--threads', '2']);
  assert.equal(one.code, 0, one.stderr);
  outputs.push(path.join(ws.dir, 'lib', 'kohya.expanded.safetensors'));
  const first = readFileSync(outputs[0]);
  for (const o of outputs.slice(1)) assert.ok(readFileSync(o).equals(first), `${o}: the same bytes as --threads 1`);
});

test('expand --threads 0 is refused as a usage error and writes nothing', async () => {
  for (const args of [[nola, '-o', path.join(ws.dir, 'zero.safetensors')], [nola, '--out-dir', path.join(ws.dir, 'zero-lib')]]) {
    const r = await runNola(['expand', ...args, '--threads', '0']);
    assert.equal(r.code, EXIT.usage, r.stderr);
    assert.match(r.stderr, /--threads/);
  }
  assert.equal(existsSync(path.join(ws.dir, 'zero.safetensors')), false);
  assert.equal(existsSync(path.join(ws.dir, 'zero-lib')), false);
});
