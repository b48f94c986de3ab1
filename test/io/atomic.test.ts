import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { IoError, UsageError } from '../../src/errors.js';
import {
  assertDistinctOutputs, assertWritable, liveTempFileCount, mapFsError, OutputBatch, removeLiveTempFiles, removeStaleTempFiles, writeFileAtomic, writeTextAtomic,
} from '../../src/io/atomic.js';
import { makeTempDir } from './helpers.js';

let tmp: { dir: string; cleanup: () => void };
before(() => { tmp = makeTempDir(); });
after(() => tmp.cleanup());

/** A fresh empty folder per test, so "nothing left behind" is a plain directory listing. */
let k = 0;
function folder(): string {
  const d = path.join(tmp.dir, `d${k++}`);
  mkdirSync(d);
  return d;
}

test('writes the file; the temp file is .<base>.<pid>.<random>.tmp in the same folder and is gone afterwards', async () => {
  const dir = folder();
  const target = path.join(dir, 'out.bin');
  let during: string[] = [];
  await writeFileAtomic(target, async (fh) => {
    await fh.write(Buffer.from('hello'));
    during = readdirSync(dir);
  });
  assert.equal(during.length, 1);
  assert.match(during[0], new RegExp(`^\\.out\\.bin\\.${process.pid}\\.[0-9a-f]{12}\\.tmp$`));
  assert.deepEqual(readdirSync(dir), ['out.bin']);
  assert.equal(readFileSync(target, 'utf8'), 'hello');
  assert.equal(liveTempFileCount(), 0);
});

test('an existing target is refused before any work without force, kept intact; replaced with force', async () => {
  const dir = folder();
  const target = path.join(dir, 'out.json');
  writeFileSync(target, 'old');
  let called = false;
  await assert.rejects(writeFileAtomic(target, async () => { called = true; }),
    (e) => e instanceof UsageError && e.message === `${target} exists; pass --force to overwrite`);
  assert.equal(called, false);
  assert.equal(readFileSync(target, 'utf8'), 'old');
  await writeTextAtomic(target, '{"new":true}\n', { force: true });
  assert.equal(readFileSync(target, 'utf8'), '{"new":true}\n');
  assert.deepEqual(readdirSync(dir), ['out.json']);
});

test('a dangling symlink counts as an existing target', async () => {
  const dir = folder();
  const target = path.join(dir, 'link');
  symlinkSync(path.join(dir, 'nowhere'), target);
  await assert.rejects(writeTextAtomic(target, 'x'), UsageError);
  assert.equal(existsSync(path.join(dir, 'nowhere')), false);
});

test('a target created by someone else while we write is not clobbered without force', async () => {
  const dir = folder();
  const target = path.join(dir, 'race.txt');
  await assert.rejects(writeFileAtomic(target, async (fh) => {
    await fh.write(Buffer.from('ours'));
    writeFileSync(target, 'theirs'); // appears after the first check, before the move
  }), (e) => e instanceof UsageError && /race\.txt exists; pass --force/.test(e.message));
  assert.equal(readFileSync(target, 'utf8'), 'theirs');
  assert.deepEqual(readdirSync(dir), ['race.txt']);
});

test('a callback that throws midway leaves no target and no temp file; the error passes through unchanged', async () => {
  const dir = folder();
  const target = path.join(dir, 'half.bin');
  const boom = new TypeError('boom');
  await assert.rejects(writeFileAtomic(target, async (fh) => {
    await fh.write(Buffer.alloc(4 << 20, 7));
    throw boom;
  }), (e) => e === boom);
  assert.deepEqual(readdirSync(dir), []);
  assert.equal(liveTempFileCount(), 0);
});

test('filesystem failures become one-line IoErrors naming the output', async () => {
  const dir = folder();
  const missing = path.join(dir, 'no', 'such', 'out.bin');
  await assert.rejects(writeTextAtomic(missing, 'x'),
    (e) => e instanceof IoError && e.message === `cannot write ${missing}: folder ${path.dirname(missing)} does not exist`);
  const notFolder = path.join(dir, 'file');
  writeFileSync(notFolder, '');
  await assert.rejects(writeTextAtomic(path.join(notFolder, 'x'), 'x'), (e) => e instanceof IoError && /is not a folder|not a folder/.test(e.message));
  const sub = path.join(dir, 'sub');
  mkdirSync(sub);
  await assert.rejects(writeTextAtomic(sub, 'x', { force: true }), (e) => e instanceof IoError && e.message === `cannot write ${sub}: it is a directory`);

  // ENOSPC / EROFS / EDQUOT cannot be provoked portably in a test, so the write callback raises them the way
  // fs does (an Error with code and syscall); the mapping and the cleanup are what is under test.
  for (const [code, why] of [['ENOSPC', 'no space left on device'], ['EROFS', 'read-only file system'], ['EDQUOT', 'disk quota exceeded']]) {
    const target = path.join(dir, `${code}.bin`);
    await assert.rejects(writeFileAtomic(target, async () => {
      throw Object.assign(new Error(`${code}: fake, write`), { code, syscall: 'write' });
    }), (e) => e instanceof IoError && e.message === `cannot write ${target}: ${why}`);
  }
  // An ENOENT from the callback is about some other file (an input): it is not blamed on the output.
  const enoent = Object.assign(new Error('ENOENT: input'), { code: 'ENOENT' });
  await assert.rejects(writeFileAtomic(path.join(dir, 'x.bin'), async () => { throw enoent; }), (e) => e === enoent);
  assert.deepEqual(readdirSync(dir).sort(), ['file', 'sub']);
  // And from our own operations, EACCES is a permission error (cannot provoke as root: checked directly).
  const mapped = mapFsError(Object.assign(new Error('x'), { code: 'EACCES' }), '/x/out.bin', true);
  assert.ok(mapped instanceof IoError && mapped.message === 'cannot write /x/out.bin: permission denied in /x');
});

test('assertWritable fails fast for an existing target (without force) or a missing folder', async () => {
  const dir = folder();
  const target = path.join(dir, 'a.safetensors');
  await assertWritable(target);
  writeFileSync(target, '');
  await assert.rejects(assertWritable(target), (e) => e instanceof UsageError && e.message === `${target} exists; pass --force to overwrite`);
  await assertWritable(target, true);
  await assert.rejects(assertWritable(path.join(dir, 'nope', 'a')), IoError);
});

test('removeLiveTempFiles deletes in-flight temp files (what the SIGINT handler runs), then exit 130', async () => {
  const dir = folder();
  const target = path.join(dir, 'interrupted.bin');
  const atomicUrl = new URL('../../src/io/atomic.js', import.meta.url).href;
  const child = `
    const { writeFileAtomic, removeLiveTempFiles } = await import(${JSON.stringify(atomicUrl)});
    process.on('SIGINT', () => { removeLiveTempFiles(); process.exit(130); });
    setInterval(() => {}, 1000);
    await writeFileAtomic(${JSON.stringify(target)}, async (fh) => {
      await fh.write(Buffer.alloc(1 << 20, 1));
      process.stdout.write('ready\\n');
      // Parked until the signal; kept reachable so GC does not collect the open handle meanwhile.
      await new Promise((resolve) => { globalThis.parked = [resolve, fh]; });
    });`;
  const proc = spawn(process.execPath, ['--input-type=module', '-e', child], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    proc.stdout.on('data', (d: Buffer) => { if (d.toString().includes('ready')) resolve(); });
    proc.on('exit', (c) => reject(new Error(`child exited early (${c})`)));
  });
  const during = readdirSync(dir);
  assert.equal(during.length, 1);
  assert.match(during[0], /^\.interrupted\.bin\.\d+\.[0-9a-f]{12}\.tmp$/);
  const code = await new Promise<number | null>((resolve) => { proc.on('exit', resolve); proc.kill('SIGINT'); });
  assert.equal(code, 130);
  assert.deepEqual(readdirSync(dir), []);
});

test('removeLiveTempFiles in-process empties the registry', async () => {
  const dir = folder();
  await assert.rejects(writeFileAtomic(path.join(dir, 'x'), async () => {
    assert.equal(liveTempFileCount(), 1);
    removeLiveTempFiles();
    assert.equal(liveTempFileCount(), 0);
    assert.deepEqual(readdirSync(dir), []);
    throw new Error('stop');
  }), /stop/);
  assert.deepEqual(readdirSync(dir), []);
});

test('OutputBatch: files are staged, then renamed together; a failure of the second removes the first and the folder made for them', async () => {
  const dir = folder();
  const sub = path.join(dir, 'new', 'inner');
  const batch = new OutputBatch(false);
  await batch.createFolder(sub);
  await writeTextAtomic(path.join(sub, 'model.bin'), 'model', { batch });
  // Staged: complete under its temp name, nothing at the target yet.
  assert.deepEqual(readdirSync(sub).filter((f) => !f.endsWith('.tmp')), []);
  assert.equal(readFileSync(batch.pathOf(path.join(sub, 'model.bin')), 'utf8'), 'model');
  await assert.rejects(writeFileAtomic(path.join(sub, 'config.json'), async () => { throw new Error('cannot serialize'); }, { batch }), /cannot serialize/);
  await batch.abort();
  assert.deepEqual(readdirSync(dir), []);
  assert.equal(liveTempFileCount(), 0);

  const ok = new OutputBatch(false);
  await writeTextAtomic(path.join(dir, 'a.txt'), 'a', { batch: ok });
  await writeTextAtomic(path.join(dir, 'b.txt'), 'b', { batch: ok });
  await ok.commit();
  assert.deepEqual(readdirSync(dir), ['a.txt', 'b.txt']);
  assert.equal(liveTempFileCount(), 0);
});

test('stale temp files: only nola\'s own pattern for the same target, only of dead processes, are removed', async () => {
  const dir = folder();
  const target = path.join(dir, 'out.bin');
  const dead = 2 ** 22 + 12345; // above the default pid_max of 2^22: no such process
  const names = [
    `.out.bin.${dead}.0123456789ab.tmp`, `.out.bin.${dead}.0123456789ab.data.tmp`, // removed
    `.out.bin.${process.pid}.0123456789ab.tmp`, // a live process (this one): kept
    `.other.bin.${dead}.0123456789ab.tmp`, 'out.bin.tmp', `.out.bin.${dead}.xyz.tmp`, // not the pattern for this target: kept
  ];
  for (const n of names) writeFileSync(path.join(dir, n), 'x');
  await removeStaleTempFiles(target);
  assert.deepEqual(readdirSync(dir).sort(), names.slice(2).sort());
});

test('assertDistinctOutputs: an output that is an input by path, symlink or hard link, or two equal outputs, is a UsageError', async () => {
  const dir = folder();
  const input = path.join(dir, 'in.bin');
  writeFileSync(input, 'x');
  symlinkSync(input, path.join(dir, 'soft.bin'));
  linkSync(input, path.join(dir, 'hard.bin'));
  for (const out of [input, path.join(dir, 'soft.bin'), path.join(dir, 'hard.bin'), path.join(dir, '.', 'in.bin')]) {
    await assert.rejects(assertDistinctOutputs([out], [input]), (e) => e instanceof UsageError && /is the input/.test(e.message));
  }
  await assert.rejects(assertDistinctOutputs([path.join(dir, 'o'), path.join(dir, 'o')], [input]), /are the same file/);
  await assertDistinctOutputs([path.join(dir, 'o1'), path.join(dir, 'o2')], [input]);
});
