/**
 * Issue 5 item 3 through the CLI, as a user runs it: outputs are never replaced without --force (compress,
 * expand, and their sidecars --report / adapter_config.json), --force replaces them, a compress killed with
 * SIGKILL mid-write leaves no file (or the previous complete one) at the output path, SIGINT exits 130 and
 * removes the temp file, and disk-full / permission errors give one line (exit 7) and leave nothing.
 * The io tests (test/io/atomic.test.ts) cover writeFileAtomic itself; these cover the commands using it.
 *
 * Mid-write: NOLA_TEST_WRITE_DELAY_MS (src/io/atomic.ts) holds the write with the temp file full but not
 * yet moved into place; the test waits until that temp file has bytes, then signals.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, cpSync, linkSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { EXIT } from '../../src/errors.js';
import { generateFixtures } from '../../fixtures/generate.js';
import { makeTempDir } from '../io/helpers.js';
import { assertCleanRefusal, inBatches, listing, runNola, startNola, waitFor } from './cli-helpers.js';

let tmp: { dir: string; cleanup: () => void };
let tiny = '';
/** A NOLA file of tiny-peft written by `nola compress` (for the expand cases). */
let nolaFile = '';
let n = 0;
const folder = (): string => {
  const d = path.join(tmp.dir, `case${n++}`);
  mkdirSync(d);
  return d;
};

before(async () => {
  tmp = makeTempDir('nola-atomic-');
  await generateFixtures(path.join(tmp.dir, 'fixtures'));
  tiny = path.join(tmp.dir, 'fixtures', 'tiny-peft');
  nolaFile = path.join(folder(), 'tiny.nola.safetensors');
  const r = await runNola(['compress', tiny, '-o', nolaFile, ...ONE]);
  assert.equal(r.code, 0, r.stderr);
});
after(() => tmp.cleanup());

const exists = (file: string): string => `nola: error: ${file} exists; pass --force to overwrite`;
/** Fitting on one thread: worker start-up would only add CPU time here (output bytes do not depend on it). */
const ONE = ['--threads', '1'];

test('an existing output (or sidecar) is never replaced without --force, and is replaced with it', { timeout: 60_000 }, async () => {
  const [c1, c2, e1, e2] = [folder(), folder(), folder(), folder()];
  const out = path.join(c1, 'x.nola.safetensors');
  writeFileSync(out, 'old');
  const report = path.join(c2, 'report.json');
  writeFileSync(report, 'old');
  const expanded = path.join(e1, 'adapter_model.safetensors');
  writeFileSync(expanded, 'old');
  const config = path.join(e2, 'adapter_config.json');
  writeFileSync(config, 'old');

  const refused = await inBatches([
    () => runNola(['compress', tiny, '-o', out, ...ONE]),
    () => runNola(['compress', tiny, '-o', path.join(c2, 'y.nola.safetensors'), '--report', report, ...ONE]),
    () => runNola(['expand', nolaFile, '-o', `${e1}/`]),
    () => runNola(['expand', nolaFile, '-o', `${e2}/`]),
  ]);
  const targets = [out, report, expanded, config];
  refused.forEach((r, i) => {
    assert.deepEqual(assertCleanRefusal(r, EXIT.usage, targets[i]), []);
    assert.equal(r.stderr, `${exists(targets[i])}\n`);
  });
  // Untouched, and nothing else written (for the sidecar cases, not the main output either).
  for (const f of targets) assert.equal(readFileSync(f, 'utf8'), 'old');
  assert.deepEqual([c1, c2, e1, e2].map(listing), [['x.nola.safetensors'], ['report.json'], ['adapter_model.safetensors'], ['adapter_config.json']]);

  const forced = await inBatches([
    () => runNola(['compress', tiny, '-o', out, '--force', ...ONE]),
    () => runNola(['compress', tiny, '-o', path.join(c2, 'y.nola.safetensors'), '--report', report, '--force', ...ONE]),
    () => runNola(['expand', nolaFile, '-o', `${e1}/`, '--force']),
    () => runNola(['expand', nolaFile, '-o', `${e2}/`, '--force']),
  ]);
  for (const r of forced) assert.equal(r.code, 0, `nola ${r.args.join(' ')}: ${r.stderr}`);
  // Replaced by the real thing: a fresh compress is byte-identical to the one made in before().
  assert.deepEqual(readFileSync(out), readFileSync(nolaFile));
  assert.equal((JSON.parse(readFileSync(report, 'utf8')) as { output: string }).output, path.join(c2, 'y.nola.safetensors'));
  assert.equal((JSON.parse(readFileSync(path.join(e2, 'adapter_config.json'), 'utf8')) as { r: number }).r, 4);
  assert.notEqual(readFileSync(expanded, 'utf8').slice(0, 3), 'old');
  assert.deepEqual([c1, c2, e1, e2].map(listing), [
    ['x.nola.safetensors'], ['report.json', 'y.nola.safetensors'],
    ['adapter_config.json', 'adapter_model.safetensors'], ['adapter_config.json', 'adapter_model.safetensors'],
  ]);
});

/** Starts a compress held mid-write, waits for its temp file to hold the data, sends `signal`. */
async function interruptCompress(out: string, signal: NodeJS.Signals, extra: string[] = []) {
  const dir = path.dirname(out);
  const run = startNola(['compress', tiny, '-o', out, ...ONE, ...extra], { env: { NOLA_TEST_WRITE_DELAY_MS: '20000' } });
  const temp = new RegExp(`^\\.${path.basename(out).replace(/\./g, '\\.')}\\.\\d+\\.[0-9a-f]{12}\\.tmp$`);
  const tempName = await waitFor(() => listing(dir).find((f) => temp.test(f) && statSync(path.join(dir, f)).size > 0), 15_000, `a temp file for ${out}`);
  run.child.kill(signal);
  return { result: await run.done, tempName };
}

test('a compress killed with SIGKILL while writing leaves no file at the output path', { timeout: 60_000 }, async () => {
  const dir = folder();
  const out = path.join(dir, 'killed.nola.safetensors');
  const { result, tempName } = await interruptCompress(out, 'SIGKILL');
  assert.equal(result.signal, 'SIGKILL');
  // Nothing at the output path; the temp file stays (no process survives SIGKILL to remove it), hidden
  // and named after its pid, and a later compress to the same output is not disturbed by it.
  assert.deepEqual(listing(dir), [tempName]);
  const again = await runNola(['compress', tiny, '-o', out, ...ONE]);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(readFileSync(out), readFileSync(nolaFile));
  // Issue 14: the next write of that output removed the dead run's temp file (nola's own name pattern, dead pid).
  assert.deepEqual(listing(dir), [path.basename(out)]);
});

test('a --force compress killed with SIGKILL while writing leaves the previous complete file in place', { timeout: 60_000 }, async () => {
  const dir = folder();
  const out = path.join(dir, 'kept.nola.safetensors');
  cpSync(nolaFile, out);
  const { result, tempName } = await interruptCompress(out, 'SIGKILL', ['--force', '--quant', 'int4']);
  assert.equal(result.signal, 'SIGKILL');
  assert.deepEqual(listing(dir), [tempName, 'kept.nola.safetensors'].sort());
  assert.deepEqual(readFileSync(out), readFileSync(nolaFile));
});

test('SIGINT mid-write exits 130, removes the temp file and leaves the output path as it was', { timeout: 60_000 }, async () => {
  const dir = folder();
  const out = path.join(dir, 'interrupted.nola.safetensors');
  const fresh = await interruptCompress(out, 'SIGINT');
  assert.equal(fresh.result.code, EXIT.interrupted);
  assert.equal(fresh.result.stderr, 'nola: interrupted; no output was written\n');
  assert.deepEqual(listing(dir), []);

  cpSync(nolaFile, out);
  const forced = await interruptCompress(out, 'SIGINT', ['--force', '--quant', 'int4']);
  assert.equal(forced.result.code, EXIT.interrupted);
  assert.deepEqual(listing(dir), ['interrupted.nola.safetensors']);
  assert.deepEqual(readFileSync(out), readFileSync(nolaFile));
});

test('disk full, permission denied and a missing folder: exit 7, one line naming the output, nothing left', { timeout: 60_000 }, async (t) => {
  // ENOSPC cannot be provoked portably, so a preload makes every FileHandle.write fail the way the kernel
  // reports it (code ENOSPC, syscall write); what is under test is the CLI path: mapping, message, cleanup.
  const preload = path.join(tmp.dir, 'enospc.mjs');
  writeFileSync(preload, `
    import { open } from 'node:fs/promises';
    const fh = await open(process.execPath, 'r');
    const proto = Object.getPrototypeOf(fh);
    await fh.close();
    proto.write = async function () {
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
    };`);
  const full = folder();
  const fullOut = path.join(full, 'x.nola.safetensors');
  const missing = path.join(tmp.dir, 'no-such-folder', 'x.nola.safetensors');
  const [enospc, noFolder] = await inBatches([
    () => runNola(['compress', tiny, '-o', fullOut, ...ONE], { nodeArgs: ['--import', pathToFileURL(preload).href] }),
    () => runNola(['compress', tiny, '-o', missing, ...ONE]),
  ]);
  assert.deepEqual(assertCleanRefusal(enospc, EXIT.io, fullOut), []);
  assert.equal(enospc.stderr, `nola: error: cannot write ${fullOut}: no space left on device\n`);
  assert.deepEqual(listing(full), []);
  assert.deepEqual(assertCleanRefusal(noFolder, EXIT.io, missing), []);
  assert.equal(noFolder.stderr, `nola: error: cannot write ${missing}: folder ${path.dirname(missing)} does not exist\n`);

  if (process.getuid?.() === 0) {
    t.skip('running as root: permissions do not stop root, so EACCES cannot happen here (the io tests check its mapping)');
    return;
  }
  const locked = folder();
  chmodSync(locked, 0o555);
  try {
    const out = path.join(locked, 'x.nola.safetensors');
    const r = await runNola(['compress', tiny, '-o', out, ...ONE]);
    assert.deepEqual(assertCleanRefusal(r, EXIT.io, out), []);
    assert.equal(r.stderr, `nola: error: cannot write ${out}: permission denied in ${locked}\n`);
    assert.deepEqual(listing(locked), []);
  } finally {
    chmodSync(locked, 0o755);
  }
});

test('SIGTERM and SIGHUP mid-write clean up like SIGINT: exit 128 + signal, temp file removed, output path as it was', { timeout: 60_000 }, async () => {
  for (const [signal, code] of [['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    const dir = folder();
    const out = path.join(dir, 'stopped.nola.safetensors');
    const { result } = await interruptCompress(out, signal);
    assert.equal(result.code, code, result.stderr);
    assert.equal(result.stderr, `nola: stopped by ${signal}; no output was written\n`);
    assert.deepEqual(listing(dir), []);
  }
});

test('expand -o new/ stopped mid-write removes the folder it created, and a failing expand never creates it', { timeout: 60_000 }, async () => {
  const parent = folder();
  const target = path.join(parent, 'new', 'deeper');
  const run = startNola(['expand', nolaFile, '-o', `${target}/`], { env: { NOLA_TEST_WRITE_DELAY_MS: '20000' } });
  await waitFor(() => { try { return listing(target).some((f) => f.endsWith('.tmp')); } catch { return false; } }, 15_000, 'a temp file in the new folder');
  run.child.kill('SIGTERM');
  const r = await run.done;
  assert.equal(r.code, 143, r.stderr);
  assert.deepEqual(listing(parent), []);
  // A refusal (here: the output is the input) leaves no folder either.
  const refused = await runNola(['expand', nolaFile, '-o', path.join(parent, 'other') + '/', '--to', 'kohya']);
  assert.notEqual(refused.code, 0);
  assert.deepEqual(listing(parent), []);
});

test('compress -o new/ stopped mid-write removes the folder it created, and a failing compress leaves none either', { timeout: 60_000 }, async () => {
  const parent = folder();
  const target = path.join(parent, 'new', 'deeper');
  const run = startNola(['compress', tiny, '-o', `${target}/`, ...ONE], { env: { NOLA_TEST_WRITE_DELAY_MS: '20000' } });
  await waitFor(() => { try { return listing(target).some((f) => f.endsWith('.tmp')); } catch { return false; } }, 15_000, 'a temp file in the new folder');
  run.child.kill('SIGTERM');
  const r = await run.done;
  assert.equal(r.code, 143, r.stderr);
  assert.deepEqual(listing(parent), []);
  // Refusals after the folder is named: an input that is missing, one that is not a LoRA.
  const notLora = path.join(parent, 'notes.safetensors');
  writeFileSync(notLora, 'not a safetensors file\n');
  for (const [input, code] of [[path.join(parent, 'missing.safetensors'), EXIT.io], [notLora, EXIT.format]] as const) {
    const refused = await runNola(['compress', input, '-o', path.join(parent, 'other', 'deeper') + '/', ...ONE]);
    assert.equal(refused.code, code, refused.stderr);
    assert.deepEqual(listing(parent), ['notes.safetensors']);
  }
});

test('no output may be an input (symlinks and hard links resolved), --force or not, and no two outputs one file', { timeout: 60_000 }, async () => {
  const dir = folder();
  const lora = path.join(dir, 'lora');
  cpSync(tiny, lora, { recursive: true });
  const model = path.join(lora, 'adapter_model.safetensors');
  const nola = path.join(dir, 'k.nola.safetensors');
  cpSync(nolaFile, nola);
  const hard = path.join(dir, 'hard.safetensors');
  linkSync(model, hard);
  const soft = path.join(dir, 'soft.nola.safetensors');
  symlinkSync(nola, soft);
  const before = [readFileSync(model), readFileSync(path.join(lora, 'adapter_config.json')), readFileSync(nola)];
  const runs = await inBatches([
    () => runNola(['expand', nola, '-o', nola, '--force']),
    () => runNola(['expand', soft, '-o', nola, '--force']),
    () => runNola(['compress', lora, '--report', model, '--force', ...ONE, '-o', path.join(dir, 'a.nola.safetensors')]),
    () => runNola(['compress', lora, '-o', path.join(lora, 'adapter_config.json'), '--force', ...ONE]),
    () => runNola(['compress', lora, '-o', hard, '--force', ...ONE]),
    () => runNola(['compress', lora, '--sweep', '--svg', model, '--force', '--no-paper']),
    () => runNola(['compress', lora, '-o', path.join(dir, 'x.nola.safetensors'), '--report', path.join(dir, 'x.nola.safetensors'), ...ONE]),
  ]);
  for (const r of runs) {
    assert.equal(r.code, EXIT.usage, `nola ${r.args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^nola: error: (output .* is the input .*; nola never overwrites its input|outputs .* and .* are the same file)/);
  }
  assert.deepEqual([readFileSync(model), readFileSync(path.join(lora, 'adapter_config.json')), readFileSync(nola)], before);
  assert.deepEqual(listing(dir), ['hard.safetensors', 'k.nola.safetensors', 'lora', 'soft.nola.safetensors']);
});
