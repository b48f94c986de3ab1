/**
 * Issue 13 items 3 and 6 (paths) through the CLI: the default NOLA name is `<name>.nola` (not a
 * `.safetensors` name a LoRA loader would list), still a safetensors file inside; the old
 * `.nola.safetensors` name still reads; `compress -o DIR/` writes `DIR/<name>.nola`; `expand FOLDER`
 * expands the NOLA file in the folder; the kohya/diffusers default output is `<name>.expanded.safetensors`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { EXIT } from '../../src/errors.js';
import { runNola } from './cli-helpers.js';
import { makeWorkspace, readHeader, type Workspace } from './ux-helpers.js';

let ws: Workspace;
before(async () => { ws = await makeWorkspace('nola-ux-paths-'); });
after(() => ws.cleanup());

test('compress names its output <name>.nola beside the input, a safetensors file inside; expand gives <name>.expanded.safetensors', async () => {
  const lora = path.join(ws.dir, 'style.safetensors');
  copyFileSync(path.join(ws.fixtures, 'kohya-sd15.safetensors'), lora);
  const c = await runNola(['compress', lora]);
  assert.equal(c.code, 0, c.stderr);
  const nola = path.join(ws.dir, 'style.nola');
  assert.ok(existsSync(nola), readdirSync(ws.dir).join(' '));
  assert.ok(!readdirSync(ws.dir).some((f) => f.endsWith('.nola.safetensors')), 'no .safetensors-named NOLA file for loaders to list');
  assert.ok(readHeader(nola).metadata?.nola !== undefined, 'safetensors with the nola metadata entry');
  const e = await runNola(['expand', nola]);
  assert.equal(e.code, 0, e.stderr);
  assert.ok(existsSync(path.join(ws.dir, 'style.expanded.safetensors')));
  // Run twice: the output exists, refused without --force; with it, replaced.
  assert.equal((await runNola(['expand', nola])).code, EXIT.usage);
  assert.equal((await runNola(['expand', nola, '--force'])).code, 0);
});

test('a file named the old way (.nola.safetensors) still reads', async () => {
  const old = path.join(ws.dir, 'old.nola.safetensors');
  assert.equal((await runNola(['compress', path.join(ws.fixtures, 'kohya-sd15.safetensors'), '-o', old])).code, 0);
  const i = await runNola(['inspect', old]);
  assert.equal(i.code, 0, i.stderr);
  assert.match(i.stdout, /NOLA v3/);
  const e = await runNola(['expand', old]);
  assert.equal(e.code, 0, e.stderr);
  assert.ok(existsSync(path.join(ws.dir, 'old.expanded.safetensors')));
});

test('compress -o DIR/ writes DIR/<name>.nola (the folder made if needed), and into an existing folder given without a slash', async () => {
  const dir = path.join(ws.dir, 'out', 'nested');
  const r = await runNola(['compress', path.join(ws.fixtures, 'diffusers-02x.safetensors'), '-o', `${dir}/`]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(dir), ['diffusers-02x.nola']);
  const again = await runNola(['compress', path.join(ws.fixtures, 'peft-patterns'), '-o', dir]);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(readdirSync(dir).sort(), ['diffusers-02x.nola', 'peft-patterns.nola']);
});

test('expand FOLDER expands the one NOLA file in it; a folder of two is a library, refused in one line without --out-dir', async () => {
  const dir = path.join(ws.dir, 'holder');
  mkdirSync(dir);
  assert.equal((await runNola(['compress', path.join(ws.fixtures, 'kohya-sd15.safetensors'), '-o', path.join(dir, 'k.nola')])).code, 0);
  const e = await runNola(['expand', dir, '--json']);
  assert.equal(e.code, 0, e.stderr);
  assert.equal((JSON.parse(e.stdout) as { output: string }).output, path.join(dir, 'k.expanded.safetensors'));
  copyFileSync(path.join(dir, 'k.nola'), path.join(dir, 'k2.nola'));
  const two = await runNola(['expand', dir]);
  assert.equal(two.code, EXIT.usage, two.stderr);
  assert.match(two.stderr, /^nola: error: .*holds several inputs: give --out-dir DIR/);
  assert.equal(two.stderr.trim().split('\n').length, 1);
});
