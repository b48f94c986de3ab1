/**
 * The NOLA reader under damaged input (issue 5 items 5 and 6): a bounded fuzz run over NOLA files the
 * compress pipeline wrote (see nola-fuzz-target.ts), and one regression case per bug the fuzzer found or
 * the review around it turned up. Each case is the seed file with one deliberate edit; the expected
 * class and message are what parseDocument / expand must say (src/errors.ts classes: FormatError for a
 * damaged document, NumericError for values the output cannot hold, IoError for the memory limit).
 * A longer run: npm run fuzz -- --target nola --cases 100000.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FormatError, IoError, NolaError, NumericError } from '../../src/errors.js';
import { LAYER_FIELDS, MAX_FACTOR_ENTRIES } from '../../src/container/document.js';
import { expand } from '../../src/pipeline/expand.js';
import { inspect } from '../../src/pipeline/inspect.js';
import { verify } from '../../src/pipeline/verify.js';
import { assertFactorFits, DEFAULT_LIMITS, FACTOR_WORKING_SET, maxFactorBytes } from '../../src/pipeline/limits.js';
import { formatSummary, runFuzz } from '../io/fuzz-core.js';
import { makeTempDir } from '../io/helpers.js';
import { documentJson, editEnvelopeText, frame, layerObjects, unframe } from './nola-file.js';
import { NOLA_MUTATORS, makeNolaCheck, nolaSeeds, withDocText, withEditedDoc, type Doc, type NolaSeed } from './nola-fuzz-target.js';

let tmp: { dir: string; cleanup: () => void };
let seeds: NolaSeed[] = [];
const seed = (name: string): Uint8Array => {
  const s = seeds.find((x) => x.name === name);
  if (!s) throw new Error(`no seed ${name}`);
  return s.bytes;
};

before(async () => {
  tmp = makeTempDir('nola-reader-');
  seeds = await nolaSeeds(tmp.dir);
});
after(() => tmp.cleanup());

test('every seed expands cleanly (the fuzz run starts from valid files)', async () => {
  assert.deepEqual(seeds.map((s) => s.name), [
    'tiny-budget', 'tiny-budget-v2', 'tiny-paper', 'tiny-int4', 'kohya-sdxl', 'peft-dora-conv', 'tiny-fixed', 'tiny-ratio', 'kohya-ratio', 'dora-ratio',
    'tiny-paper-v1', 'tiny-int4-v1', 'tiny-ratio-v1', 'kohya-ratio-v1', 'dora-ratio-v1',
  ]);
  // The default (--max-error) seeds are entropy-coded (rans and rice blocks), one block per factor
  // (orthogonal basis) or one per component (orthogonal-components), version 2 rice blocks only, and
  // --quant fixed splits a factor somewhere, so every kind of segment is fuzzed too.
  const quants = (name: string): unknown[] => layerObjects(documentJson(seed(name))).flatMap((l) => [l.quant_A, l.quant_B]);
  const kinds = (name: string): Set<unknown> => new Set(quants(name).flatMap((q) => (Array.isArray(q) ? q.map((seg) => (seg as unknown[])[0]) : [q])));
  const defaults = ['tiny-budget', 'kohya-sdxl', 'peft-dora-conv'];
  for (const name of defaults) assert.ok([...kinds(name)].every((k) => k === 'rice' || k === 'rans'), name);
  assert.deepEqual(new Set(defaults.flatMap((name) => [...kinds(name)])), new Set(['rice', 'rans']));
  assert.deepEqual(kinds('tiny-budget-v2'), new Set(['rice']));
  const bases = defaults.flatMap((name) => layerObjects(documentJson(seed(name))).map((l) => l.basis));
  assert.ok(bases.includes('orthogonal-components'), JSON.stringify(bases));
  assert.ok(defaults.some((name) => quants(name).some((q) => (q as unknown[]).length > 1)));
  assert.ok(quants('tiny-fixed').some((q) => Array.isArray(q) && q.length === 2), JSON.stringify(quants('tiny-fixed')));
  const check = makeNolaCheck(path.join(tmp.dir));
  for (const s of seeds) assert.equal(await check(s.bytes), 'ok', s.name);
});

test('the check fails on what is not a clean refusal (so a clean run means something)', async () => {
  // A document edit that expand cannot survive must come back 'clean-error', never 'ok'...
  const check = makeNolaCheck(tmp.dir);
  assert.equal(await check(withEditedDoc(seed('tiny-ratio-v1'), (d) => { d.format_version = 3; })), 'clean-error');
  // ...and an error that is not a NolaError is a failure with its case number.
  const s = await runFuzz({ seeds: [seed('tiny-budget')], cases: 2, seed: 1, check: async () => { throw new RangeError('boom'); } });
  assert.deepEqual(s.failures.map((f) => f.error), ['RangeError: boom', 'RangeError: boom']);
});

test('400 mutated NOLA files: each expands cleanly or is refused with a one-line NolaError naming the file', { timeout: 120_000 }, async () => {
  const fuzzSeed = 20250105;
  const summary = await runFuzz({
    seeds: seeds.map((s) => s.bytes), cases: 400, seed: fuzzSeed, mutators: NOLA_MUTATORS, check: makeNolaCheck(tmp.dir),
  });
  const detail = summary.failures.map((f) => `case ${f.caseIndex} [${f.mutations.join(',')}]: ${f.error}`).join('\n');
  assert.equal(summary.failures.length, 0, `${formatSummary('nola-reader', fuzzSeed, summary)}\n${detail}`);
  // Both outcomes must occur, or the mutations are too timid / too destructive to test anything.
  assert.ok(summary.ok > 20 && summary.cleanErrors > 200, formatSummary('nola-reader', fuzzSeed, summary));
});

// ---------------------------------------------------------------------------------------------
// Regressions: one per bug. They edit version-1 files (nola 0.1's layout, still read), where every
// field is spelled out per layer; the version-2 cases further down edit what that layout adds.

let k = 0;
/** Writes the case, runs inspect then expand in-process; returns the refusal (or null) and what was written. */
async function refusal(bytes: Uint8Array): Promise<{ error: NolaError | null; file: string; written: string[] }> {
  const dir = path.join(tmp.dir, `reg${k++}`);
  const out = path.join(dir, 'out');
  await mkdir(out, { recursive: true });
  const file = path.join(dir, 'case.nola.safetensors');
  await writeFile(file, bytes);
  let error: NolaError | null = null;
  try {
    await inspect(file);
    await expand({ input: file, output: `${out}/` });
  } catch (e) {
    if (!(e instanceof NolaError)) throw e;
    error = e;
  }
  return { error, file, written: readdirSync(out) };
}

async function assertRefused(bytes: Uint8Array, cls: new (m: string) => NolaError, message: RegExp): Promise<void> {
  const r = await refusal(bytes);
  assert.ok(r.error instanceof cls, `expected ${cls.name}, got ${r.error ? `${r.error.name}: ${r.error.message}` : 'success'}`);
  assert.ok(r.error.message.startsWith(`${r.file}: `), r.error.message);
  assert.match(r.error.message, message);
  assert.ok(!r.error.message.includes('\n'));
  assert.deepEqual(r.written, []);
}

const layer0 = (d: Doc): Doc => (d.layers as Doc[])[0];

test('regression: a factor dtype the writer cannot encode (was a plain Error from the writer)', async () => {
  await assertRefused(withEditedDoc(seed('tiny-ratio-v1'), (d) => { layer0(d).dtype_A = 'int4'; }), FormatError, /layer 0: dtype_A "int4" is not F64, F32, F16 or BF16/);
  await assertRefused(withEditedDoc(seed('tiny-ratio-v1'), (d) => { layer0(d).dtype_B = 'toString'; }), FormatError, /dtype_B "toString"/);
});

test('regression: source shapes that contradict rank / d_in / d_out (was "produce returned N values" from the writer)', async () => {
  await assertRefused(withEditedDoc(seed('tiny-ratio-v1'), (d) => { layer0(d).shape_A = [4, 32]; }), FormatError, /layer 0: shape_A \[4,32\] and shape_B \[64,4\] do not match linear source_rank 4, d_in 64, d_out 64/);
  await assertRefused(withEditedDoc(seed('tiny-ratio-v1'), (d) => { layer0(d).source_rank = 3; }), FormatError, /do not match/);
  await assertRefused(withEditedDoc(seed('dora-ratio-v1'), (d) => { (d.layers as Doc[]).find((l) => l.kind === 'conv')!.kind = 'linear'; }), FormatError, /do not match linear/);
});

test('regression: a negative axis length (was a plain Error from the writer)', async () => {
  await assertRefused(withEditedDoc(seed('tiny-ratio-v1'), (d) => { layer0(d).shape_A = [4, -64]; }), FormatError, /lists of 2 to 8 positive integers/);
});

test('regression: a reserved int code in a coefficient block names the file and the layer (message had neither)', async () => {
  const bytes = new Uint8Array(seed('tiny-int4-v1'));
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
  const [begin] = header['nola.coeffs.0.A'].data_offsets;
  bytes[8 + n + begin] = 0x00; // two int4 codes of 0: reserved (docs: u = 0 is invalid)
  await assertRefused(bytes, FormatError, /: layer "transformer\.layer\.0\.attention\.q_lin" factor A: int4 block: code 0 at index 0 is reserved/);
});

test('regression: a stored adapter config that contradicts the layer ranks (was "internal: adjusted adapter_config.json")', async () => {
  // Without "r", PEFT's default r = 8 applies; the layers have rank 4.
  await assertRefused(withEditedDoc(seed('tiny-ratio-v1'), (d) => { delete ((d.source as Doc).config as Doc).r; }), FormatError,
    /gives module 'transformer\.layer\.0\.attention\.q_lin' rank 8, but its source factors have rank 4/);
});

test('regression: an alpha its dtype cannot hold (was written as Inf, or wrapped around in an integer dtype)', async () => {
  const kohya = seed('kohya-ratio-v1');
  await assertRefused(withEditedDoc(kohya, (d) => { layer0(d).alpha = 1e300; }), NumericError, /alpha [\d.]+e\+\d+ does not fit its BF16 tensor/);
  await assertRefused(withEditedDoc(kohya, (d) => { layer0(d).dtype_alpha = 'I8'; layer0(d).alpha = 1000; }), NumericError, /alpha \d+ does not fit its I8 tensor/);
});

test('regression: a scale that makes the factors overflow their dtype (was written as Inf)', async () => {
  await assertRefused(withEditedDoc(seed('tiny-ratio-v1'), (d) => { layer0(d).scale = 1e300; }), NumericError,
    /layer "transformer\.layer\.0\.attention\.q_lin": factor B synthesizes to values \(max \|x\| = [^)]+\) that F32 cannot hold/);
});

test('regression: two tensors of the expanded file under one name (was a UsageError, exit 2, from the expand plan)', async () => {
  await assertRefused(withEditedDoc(seed('tiny-ratio-v1'), (d) => { (d.layers as Doc[])[1].key_B = layer0(d).key_A; }), FormatError, /layer 1: tensor name ".*q_lin\.lora_A\.weight" is used twice/);
  await assertRefused(withEditedDoc(seed('tiny-ratio-v1'), (d) => { layer0(d).key_A = '__metadata__'; }), FormatError, /"__metadata__" cannot be a tensor name/);
});

test('regression: a passthrough entry pointing at a coefficient tensor', async () => {
  await assertRefused(withEditedDoc(seed('tiny-ratio-v1'), (d) => { (d.passthrough as Doc[]).push({ name: 'extra', tensor: 'nola.coeffs.0.A' }); }), FormatError,
    /passthrough 0: tensor "nola\.coeffs\.0\.A" is referenced twice/);
});

test('regression: source.file is a bare name; a path would let expand write outside the folder it was given', async () => {
  const r = await refusal(withEditedDoc(seed('tiny-ratio-v1'), (d) => { (d.source as Doc).file = '../escaped.safetensors'; }));
  assert.ok(r.error instanceof FormatError && /source\.file must be a plain file name, got "\.\.\/escaped\.safetensors"/.test(r.error.message), String(r.error));
  assert.equal(existsSync(path.join(path.dirname(r.file), 'escaped.safetensors')), false);
});

test('regression: seeds are u32 (2^32 was accepted and aliased seed 0 in the uniform basis)', async () => {
  await assertRefused(withEditedDoc(seed('tiny-paper-v1'), (d) => { layer0(d).seed_A = 2 ** 32; }), FormatError, /"seed_A" must be an integer in 0\.\.4294967295, got 4294967296/);
  // FORMAT.md "Component basis": always full span.
  await assertRefused(withEditedDoc(seed('tiny-paper-v1'), (d) => { layer0(d).basis = 'orthogonal-components'; (layer0(d).num_basis_A as number) -= 1; }), FormatError, /orthogonal-components basis is full span: num_basis_A must be \d+/);
});

test('regression: duplicate keys in the document (JSON.parse silently kept the last one)', async () => {
  const tiny = seed('tiny-ratio-v1');
  await assertRefused(withDocText(tiny, (t) => t.replace('"layers":', '"layers":[],"layers":')), FormatError, /the "nola" metadata has duplicate key "layers"$/);
  await assertRefused(withDocText(tiny, (t) => t.replace('"rank":', '"rank":1,"rank":')), FormatError, /duplicate key "rank"$/);
  // The same key in different objects (every layer has "rank") and key-like text inside strings are fine:
  // the kohya seed's metadata holds escaped JSON ({\"conv_dim\":...}) and still expands.
  assert.equal(await makeNolaCheck(tmp.dir)(seed('kohya-ratio-v1')), 'ok');
});

test('regression: non-string source metadata (was a plain Error from the writer)', async () => {
  await assertRefused(withEditedDoc(seed('tiny-ratio-v1'), (d) => { (d.source as Doc).metadata = { format: 5 }; }), FormatError, /source\.metadata must be null or an object of strings/);
});

test('regression: verify with the source fails when the NOLA file lacks one of its layers (it passed: the layer was not looked at)', async () => {
  // The tiny-budget seed with its last layer and that layer's tensors removed, re-laid out by hand.
  const bytes = seed('tiny-ratio-v1');
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8')) as Record<string, unknown>;
  const doc = JSON.parse((header.__metadata__ as Record<string, string>).nola) as Doc;
  const dropped = (doc.layers as Doc[]).pop()!;
  const gone = new Set([dropped.coeffs_A, dropped.coeffs_B, dropped.scales_A, dropped.scales_B]);
  const data: Buffer[] = [];
  let offset = 0;
  const out: Record<string, unknown> = { __metadata__: { nola: JSON.stringify(doc) } };
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__' || gone.has(name)) continue;
    const { dtype, shape, data_offsets: [b, e] } = t as { dtype: string; shape: number[]; data_offsets: [number, number] };
    out[name] = { dtype, shape, data_offsets: [offset, offset + e - b] };
    data.push(Buffer.from(bytes.subarray(8 + n + b, 8 + n + e)));
    offset += e - b;
  }
  const headerBytes = Buffer.from(JSON.stringify(out));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));
  const file = path.join(tmp.dir, 'dropped.nola.safetensors');
  await writeFile(file, Buffer.concat([len, headerBytes, ...data]));
  const source = path.join(tmp.dir, 'fixtures', 'tiny-peft');
  const r = await verify(file, source, 1e-4);
  assert.equal(r.checksum, 'match');
  assert.equal(r.layers.length, 3);
  assert.ok(r.layers.every((l) => l.ok));
  assert.deepEqual(r.missing, [dropped.name]);
  assert.equal(r.ok, false);
  // The untouched seed verifies, so the failure above is the missing layer.
  const intact = path.join(tmp.dir, 'intact.nola.safetensors');
  await writeFile(intact, bytes);
  const ok = await verify(intact, source, 1e-4);
  assert.deepEqual([ok.ok, ok.missing], [true, []]);
});

// ---------------------------------------------------------------------------------------------
// Limits (issue 5 item 6)

test('limit: a factor above MAX_FACTOR_ENTRIES values is refused before anything is allocated', async () => {
  const big = Math.ceil((MAX_FACTOR_ENTRIES + 1) / 4);
  await assertRefused(withEditedDoc(seed('tiny-ratio-v1'), (d) => { Object.assign(layer0(d), { d_in: big, shape_A: [4, big], rank: 4 }); }), FormatError,
    new RegExp(`layer 0: factors of 4 x ${big} and 64 x 4 values exceed the limit of ${MAX_FACTOR_ENTRIES} values per factor`));
});

test('limit: a factor over --max-factor-values (or what memory allows) is refused with a line naming the layer', async (t) => {
  // The message and bound, with the limit given explicitly (the rule: 8 bytes per value against the limit).
  assert.throws(() => assertFactorFits('x.nola.safetensors', 'blocks.0', 'A', 4, 1 << 20, 8 * 4 * (1 << 20) - 1),
    (e) => e instanceof IoError && e.message === 'x.nola.safetensors: layer "blocks.0" factor A is 4 x 1048576 values (32.0 MiB as float64), more than the limit of 4194303 values per factor (32.0 MiB; --max-factor-values raises it up to what this machine\'s memory allows)');
  assertFactorFits('x', 'y', 'B', 4, 1 << 20, 8 * 4 * (1 << 20));
  // The bound: 2^24 values by default, never more than a quarter of memory over FACTOR_WORKING_SET copies.
  assert.equal(maxFactorBytes(), Math.min(8 * DEFAULT_LIMITS.maxFactorValues, Math.floor(os.totalmem() / 4 / FACTOR_WORKING_SET)));
  // End to end through expand: one value over the bound (source rank 4 <= d_out 64 keeps the document legal).
  const entries = Math.floor(maxFactorBytes() / 8) + 1;
  const dIn = Math.ceil(entries / 4);
  if (4 * dIn > MAX_FACTOR_ENTRIES) {
    t.skip(`this machine has ${os.totalmem()} bytes: its bound is above the format's cap, checked above`);
    return;
  }
  await assertRefused(withEditedDoc(seed('tiny-ratio-v1'), (d) => { Object.assign(layer0(d), { d_in: dIn, shape_A: [4, dIn], rank: 4 }); }), IoError,
    /layer "transformer\.layer\.0\.attention\.q_lin" factor A is 4 x \d+ values \([\d.]+ [GM]iB as float64\), more than the limit of \d+ values per factor/);
});

// ---------------------------------------------------------------------------------------------
// Version 2 (what compress writes): the compressed document, the key styles, the one coefficient stream

const rows = (d: Doc): unknown[][] => d.layers as unknown[][];
const field = (name: string): number => LAYER_FIELDS.indexOf(name as (typeof LAYER_FIELDS)[number]);

test('v2: the same content in version 1 and version 2 expands to identical bytes', async () => {
  for (const name of ['tiny-paper', 'tiny-int4', 'tiny-ratio', 'kohya-ratio', 'dora-ratio']) {
    const outputs: Buffer[] = [];
    for (const [suffix, bytes] of [['v2', seed(name)], ['v1', seed(`${name}-v1`)]] as const) {
      const dir = path.join(tmp.dir, `same-${name}-${suffix}`);
      await mkdir(dir, { recursive: true });
      const input = path.join(dir, 'x.nola.safetensors');
      await writeFile(input, bytes);
      const r = await expand({ input, output: path.join(dir, 'x.safetensors') });
      outputs.push(readFileSync(r.output));
    }
    assert.ok(outputs[0].equals(outputs[1]), name);
    // ...and the version-2 file is the smaller one (it is what the format change was for).
    assert.ok(seed(name).length < seed(`${name}-v1`).length, `${name}: ${seed(name).length} vs ${seed(`${name}-v1`).length}`);
  }
});

test('v2: a damaged or oversized document tensor is refused with one line', async () => {
  const tiny = seed('tiny-budget');
  const f = unframe(tiny)!;
  const doc = f.tensors.find((t) => t.name === 'nola.document')!;
  doc.data = new Uint8Array(doc.data.subarray(0, doc.data.length - 5));
  doc.shape = [doc.data.length];
  await assertRefused(frame(f), FormatError, /document tensor "nola\.document" is not a valid zlib stream/);
  // A stream that inflates past the cap (100 MB of spaces, about 100 KB compressed) is stopped there.
  doc.data = deflateSync(Buffer.alloc(100_000_001, 0x20));
  doc.shape = [doc.data.length];
  await assertRefused(frame(f), FormatError, /document tensor "nola\.document" inflates past 100000000 bytes/);
  await assertRefused(editEnvelopeText(tiny, (t) => t.replace('"nola.document"', '"nola.coeffs"'))!, FormatError, /"document" must be "nola\.document"/);
  await assertRefused(editEnvelopeText(tiny, (t) => t.replace('}', ',"layers":[]}'))!, FormatError, /holds exactly format_version, generator and document/);
});

test('v2: the document may not restate the envelope, and its table must be the one this reader knows', async () => {
  const tiny = seed('tiny-budget');
  await assertRefused(withEditedDoc(tiny, (d) => { d.format_version = 1; }), FormatError, /repeats "format_version", which only __metadata__ may state/);
  await assertRefused(withEditedDoc(tiny, (d) => { (d.layer_fields as string[]).reverse(); }), FormatError, /"layer_fields" must be \["name","style"/);
  await assertRefused(withEditedDoc(tiny, (d) => { rows(d)[0][field('style')] = 7; }), FormatError, /layer 0: "style" must index "key_styles" \(0\.\.0\), got 7/);
  await assertRefused(withEditedDoc(tiny, (d) => { rows(d)[0].pop(); }), FormatError, /layer 0 is not a row of 17 values/);
  await assertRefused(withEditedDoc(tiny, (d) => { rows(d)[0][field('quant_A')] = [['int5', 1], ['int4', 1]]; }), FormatError,
    /layer 0: quant_A must be a mode or \[mode, count\] segments: quantization segments hold 2 values, the factor has \d+/);
  await assertRefused(withDocText(tiny, (t) => t.replace('"layers":', '"layers":[],"layers":')), FormatError, /the document in tensor "nola\.document" has duplicate key "layers"$/);
  // A key style's affixes rebuild the source names; two layers under one name are caught as in version 1.
  await assertRefused(withEditedDoc(tiny, (d) => { rows(d)[1][field('name')] = rows(d)[0][field('name')]; }), FormatError, /layer 1: duplicate layer name/);
  await assertRefused(withEditedDoc(tiny, (d) => { (d.key_styles as Doc[])[0].A = ['', 3]; }), FormatError, /key style 0: "A" and "B" .* must be \[prefix, suffix\] string pairs or strings/);
});

test('v2: the coefficient stream must be exactly as long as the layers say, and a bad code names its layer', async () => {
  const tiny = seed('tiny-budget');
  // One layer fewer: the stream is longer than the remaining layers need.
  await assertRefused(withEditedDoc(tiny, (d) => { rows(d).pop(); }), FormatError, /"coeffs" \(3 layers\): tensor "nola\.coeffs" is U8 \[\d+\] but the metadata implies U8 \[\d+\]/);
  await assertRefused(withEditedDoc(tiny, (d) => { rows(d)[0][field('quant_A')] = 'int8'; }), FormatError, /tensor "nola\.coeffs" is U8 \[\d+\] but the metadata implies/);
  // Layer 0's A codes open the stream: two int4 codes of 0 are reserved.
  const f = unframe(seed('tiny-int4'))!;
  const coeffs = f.tensors.find((t) => t.name === 'nola.coeffs')!;
  coeffs.data = new Uint8Array(coeffs.data);
  coeffs.data[0] = 0;
  // Every command checks coeffs.sha256 first (docs/FORMAT.md: a wrong checksum is a reader error) ...
  await assertRefused(frame(f), FormatError, /the coefficient tensor "nola\.coeffs" does not match coeffs\.sha256/);
  // ... and with the checksum restated, the block itself is refused, naming the layer.
  const resummed = withEditedDoc(frame(f), (d) => { (d.coeffs as Doc).sha256 = createHash('sha256').update(coeffs.data).digest('hex'); });
  await assertRefused(resummed, FormatError, /: layer "transformer\.layer\.0\.attention\.q_lin" factor A: int4 block: code 0 at index 0 is reserved/);
});

test('v2: verify without the source notices a changed coefficient (the file states the SHA-256 of its stream)', async () => {
  const dir = path.join(tmp.dir, 'v2-verify');
  await mkdir(dir, { recursive: true });
  const intact = path.join(dir, 'intact.nola.safetensors');
  await writeFile(intact, seed('tiny-paper'));
  const good = await verify(intact, undefined, 1e-4);
  assert.deepEqual([good.ok, good.coefficients], [true, 'match']);
  const f = unframe(seed('tiny-paper'))!;
  const coeffs = f.tensors.find((t) => t.name === 'nola.coeffs')!;
  coeffs.data = new Uint8Array(coeffs.data);
  coeffs.data[2] ^= 0x01; // the low mantissa bit of an f32 coefficient: finite, plausible, wrong
  const tampered = path.join(dir, 'tampered.nola.safetensors');
  await writeFile(tampered, frame(f));
  const bad = await verify(tampered, undefined, 1e-4);
  assert.deepEqual([bad.ok, bad.coefficients, bad.layers.every((l) => l.ok)], [false, 'mismatch', true]);
  // A version-1 file states no checksum, and says so.
  const v1 = path.join(dir, 'v1.nola.safetensors');
  await writeFile(v1, seed('tiny-paper-v1'));
  assert.equal((await verify(v1, undefined, 1e-4)).coefficients, 'not-stored');
});

test('inspect accounts for every byte: header + document + coefficients + passthrough = file, in both versions', async () => {
  const dir = path.join(tmp.dir, 'bytes');
  await mkdir(dir, { recursive: true });
  for (const name of ['tiny-budget', 'peft-dora-conv', 'dora-ratio-v1']) {
    const file = path.join(dir, `${name}.nola.safetensors`);
    await writeFile(file, seed(name));
    const r = await inspect(file);
    assert.ok(r.kind === 'nola');
    const { file: total, header, document, coefficients, passthrough } = r.bytes;
    assert.equal(header + document + coefficients + passthrough, total, name);
    assert.equal(total, seed(name).length);
    assert.equal(document > 0, !name.endsWith('-v1'), `${name}: document ${document}`);
  }
});
