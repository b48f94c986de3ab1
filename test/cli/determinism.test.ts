/**
 * Issue 5 item 4 through the CLI: the same adapter and flags give byte-identical NOLA files wherever and
 * whenever they are compressed (no timestamps, host names, paths or unstable order in them); the file
 * records the SHA-256 of the source's data section; `nola verify NOLA SOURCE` passes on a fresh file and
 * fails (exit 5, one line) when the source changed or the stored coefficients were tampered with.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EXIT } from '../../src/errors.js';
import { generateFixtures } from '../../fixtures/generate.js';
import { makeTempDir } from '../io/helpers.js';
import { documentJson, editDocumentText, layerObjects } from '../pipeline/nola-file.js';
import { assertCleanRefusal, inBatches, runNola } from './cli-helpers.js';

let tmp: { dir: string; cleanup: () => void };
let tiny = '';
/** A second copy of the adapter, deeper in another folder. */
let copy = '';
/** `nola compress` of `copy` with default settings on one thread (the other runs use the default threads). */
let base = '';
before(async () => {
  tmp = makeTempDir('nola-determinism-');
  await generateFixtures(path.join(tmp.dir, 'fixtures'));
  tiny = path.join(tmp.dir, 'fixtures', 'tiny-peft');
  copy = path.join(tmp.dir, 'b', 'deeper', 'still', 'tiny-peft');
  cpSync(tiny, copy, { recursive: true });
  base = path.join(path.dirname(copy), 'second-0.nola.safetensors');
  const r = await runNola(['compress', copy, '-o', base, '--threads', '1'], { cwd: os.tmpdir() });
  assert.equal(r.code, 0, r.stderr);
});
after(() => tmp.cleanup());

/** The safetensors header (parsed) and data section of a file, read with nothing but JSON.parse. */
function split(file: string): { header: Record<string, unknown>; headerText: string; data: Buffer } {
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const headerText = bytes.subarray(8, 8 + n).toString('utf8');
  return { header: JSON.parse(headerText) as Record<string, unknown>, headerText, data: bytes.subarray(8 + n) };
}

/** The document of a NOLA file (the inflated document tensor), its layer rows as objects. */
function nolaDoc(file: string): { source: Record<string, unknown>; layers: Array<Record<string, unknown>>; text: string } {
  const bytes = readFileSync(file);
  const doc = documentJson(bytes);
  let text = '';
  editDocumentText(bytes, (t) => { text = t; return t; });
  return { source: doc.source as Record<string, unknown>, layers: layerObjects(doc), text };
}

test('the same adapter and flags give byte-identical files, from other folders, working directories and thread counts', { timeout: 120_000 }, async () => {
  // The first copy is compressed from its own folder with a relative path and the default thread count;
  // the second (set up in before()) by absolute path from another working directory on one thread.
  const a = path.join(tmp.dir, 'a');
  cpSync(tiny, path.join(a, 'tiny-peft'), { recursive: true });
  const b = path.dirname(copy);
  const flagSets = [[], ['--quant', 'int4'], ['--preset', 'paper', '--iters', '5']];
  const runs = [
    ...flagSets.map((flags, i) => () => runNola(['compress', 'tiny-peft', '-o', `first-${i}.nola.safetensors`, ...flags], { cwd: a })),
    ...flagSets.slice(1).map((flags, j) => () => runNola(
      ['compress', copy, '-o', path.join(b, `second-${j + 1}.nola.safetensors`), '--threads', '1', ...flags], { cwd: os.tmpdir() })),
  ];
  for (const r of await inBatches(runs, 3)) assert.equal(r.code, 0, `nola ${r.args.join(' ')}: ${r.stderr}`);
  const sizes = new Set<number>();
  flagSets.forEach((flags, i) => {
    const first = readFileSync(path.join(a, `first-${i}.nola.safetensors`));
    const second = readFileSync(path.join(b, `second-${i}.nola.safetensors`));
    assert.ok(first.length > 1000, `a real file for ${flags.join(' ') || 'defaults'}`);
    assert.ok(first.equals(second), `flags [${flags.join(' ')}]: the two files differ`);
    sizes.add(first.length);
  });
  assert.equal(sizes.size, 3, 'the three flag sets give three different files (the flags took effect)');
});

test('the file holds no timestamp, host name, user name or path, and names the source by its base name', async () => {
  const out = base;
  const { headerText } = split(out);
  const header = JSON.parse(headerText) as Record<string, unknown>;
  const doc = nolaDoc(out);
  const envelope = (header.__metadata__ as Record<string, string>).nola;
  // Everything the file says: the header (with the short "nola" envelope) and the compressed document.
  const text = `${envelope}\n${doc.text}`;
  for (const leak of [os.hostname(), tmp.dir, copy, os.tmpdir(), process.cwd(), os.homedir()]) {
    assert.ok(!headerText.includes(leak) && !doc.text.includes(leak), `the file mentions ${leak}`);
  }
  const user = os.userInfo().username;
  if (user.length >= 4) assert.ok(!text.includes(`"${user}"`), `header names the user ${user}`);
  assert.doesNotMatch(text, /\b(19|20)\d\d-[01]\d-[0-3]\d/, 'an ISO date');
  // No number that reads as "now" in seconds or milliseconds since the epoch (seeds are u32 draws: skipped).
  const now = Date.now();
  const numbers = (v: unknown, key = ''): Array<[string, number]> => {
    if (typeof v === 'number') return key.startsWith('seed_') ? [] : [[key, v]];
    if (Array.isArray(v)) return v.flatMap((x) => numbers(x, key));
    if (v !== null && typeof v === 'object') return Object.entries(v).flatMap(([k, x]) => numbers(x, k));
    return [];
  };
  const all = numbers({ source: doc.source, layers: doc.layers });
  // Every layer states at least its shape, d_out, rank, scale, counts and error (8 numbers besides its seeds).
  assert.ok(all.length >= 8 * doc.layers.length && doc.layers.length > 0, `${all.length} numbers`);
  for (const [key, v] of all) {
    assert.ok(Math.abs(v - now) > 864e5 && Math.abs(v - now / 1000) > 86400, `a timestamp-like number ${key}: ${v}`);
  }
  assert.equal(doc.source.file, 'adapter_model.safetensors');
  // Stable JSON: envelope and document are exactly JSON.stringify of what they parse to (no whitespace or number spelling left to chance).
  assert.equal(envelope, JSON.stringify(JSON.parse(envelope)));
  assert.equal(doc.text, JSON.stringify(JSON.parse(doc.text)));
});

test('compress records the SHA-256 of the source tensors (the data section after the header)', async () => {
  const source = path.join(copy, 'adapter_model.safetensors');
  const expected = createHash('sha256').update(split(source).data).digest('hex');
  assert.equal(nolaDoc(base).source.tensors_sha256, expected);
  // The whole file's hash differs (the header is not part of it), so the check above is not trivially the file hash.
  assert.notEqual(createHash('sha256').update(readFileSync(source)).digest('hex'), expected);
});

test('verify passes on a fresh file and fails clearly when the source or the coefficients change', { timeout: 120_000 }, async () => {
  const dir = path.join(tmp.dir, 'verify');
  mkdirSync(dir);
  // f32 coefficients, so a tampered value is stored as written (an int code could hit the reserved 0).
  const nola = path.join(dir, 'f32.nola.safetensors');
  const c = await runNola(['compress', tiny, '-o', nola, '--quant', 'f32', '--threads', '1']);
  assert.equal(c.code, 0, c.stderr);
  const doc = nolaDoc(nola);
  const layer0 = doc.layers[0];

  // The source with one value of layer 0's A factor doubled (still finite: only verify can notice).
  const modified = path.join(dir, 'modified');
  cpSync(tiny, modified, { recursive: true });
  const srcFile = path.join(modified, 'adapter_model.safetensors');
  const src = split(srcFile);
  const bytes = readFileSync(srcFile);
  const keyA = layer0.key_A as string;
  const [begin] = (src.header[keyA] as { data_offsets: [number, number] }).data_offsets;
  const at = bytes.length - src.data.length + begin + 4 * 5;
  bytes.writeFloatLE(bytes.readFloatLE(at) * 2 + 0.5, at);
  writeFileSync(srcFile, bytes);

  // The NOLA file with one coefficient of layer 0's A shifted by a large amount.
  const tampered = path.join(dir, 'tampered.nola.safetensors');
  const nb = readFileSync(nola);
  const ns = split(nola);
  // Layer 0's A coefficients open the coefficient stream (docs/FORMAT.md).
  const [cb] = (ns.header['nola.coeffs'] as { data_offsets: [number, number] }).data_offsets;
  const cat = nb.length - ns.data.length + cb + 4 * 3;
  nb.writeFloatLE(nb.readFloatLE(cat) + 10, cat);
  writeFileSync(tampered, nb);

  const [fresh, changedSource, changedCoeffs] = await inBatches([
    () => runNola(['verify', nola, tiny]),
    () => runNola(['verify', nola, modified]),
    () => runNola(['verify', tampered, tiny]),
  ]);
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.match(fresh.stdout, /source checksum: match\n {2}measured errors: worst layer \d\.\d{4} \(.*\); largest difference from the stated errors .*\n {2}verify: ok\n$/);

  // A changed source is a different LoRA: one line saying so, not a FAIL per layer (issue 13 item 6).
  assert.deepEqual(assertCleanRefusal(changedSource, EXIT.numeric, nola), []);
  assert.match(changedSource.stderr, new RegExp(`^nola: error: ${nola.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} was made from a different LoRA than `));

  assert.deepEqual(assertCleanRefusal({ ...changedCoeffs, stdout: '' }, EXIT.numeric, tampered), []);
  assert.match(changedCoeffs.stdout, /source checksum: match/);
  assert.match(changedCoeffs.stdout, new RegExp(`FAIL ${String(layer0.name).replace(/\./g, '\\.')}: claimed`));
  assert.match(changedCoeffs.stdout, /coefficient checksum: mismatch/);
  assert.match(changedCoeffs.stdout, /verify: FAILED \(1 layers, coefficient checksum differs\)/);
});
