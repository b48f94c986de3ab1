/**
 * Issue 14 items 4 and 5: one validation for a NOLA file, so inspect, verify and expand agree on what is
 * valid, and a test per rule docs/FORMAT.md states (the rules this issue added or made explicit; the
 * older ones are in nola-reader.test.ts). Each case is a seed file (written by nola compress from the
 * generated fixtures) with one deliberate edit; the expected outcome is the rule as the document words it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import { NolaError } from '../../src/errors.js';
import { EXIT } from '../../src/errors.js';
import { inspect } from '../../src/pipeline/inspect.js';
import { expand } from '../../src/pipeline/expand.js';
import { verify } from '../../src/pipeline/verify.js';
import { LAYER_FIELDS } from '../../src/container/document.js';
import { makeTempDir } from '../io/helpers.js';
import { spawnSync } from 'node:child_process';
import { REPO, python3Missing } from '../cli/cli-helpers.js';
import { frame, unframe, editEnvelopeText } from './nola-file.js';
import { nolaSeeds, withDocText, withEditedDoc, type Doc, type NolaSeed } from './nola-fuzz-target.js';

let tmp: { dir: string; cleanup: () => void };
let seeds: NolaSeed[] = [];
const seed = (name: string): Uint8Array => seeds.find((x) => x.name === name)!.bytes;

before(async () => {
  tmp = makeTempDir('nola-validation-');
  seeds = await nolaSeeds(tmp.dir);
});
after(() => tmp.cleanup());

let k = 0;
type Outcome = { code: number; message: string } | 'ok';
/** inspect, verify and expand of `bytes`, each as its exit code (or 'ok'), and what expand wrote. */
async function outcomes(bytes: Uint8Array): Promise<{ inspect: Outcome; verify: Outcome; expand: Outcome; written: string[] }> {
  const dir = path.join(tmp.dir, `v${k++}`);
  await mkdir(path.join(dir, 'out'), { recursive: true });
  const file = path.join(dir, 'case.nola.safetensors');
  await writeFile(file, bytes);
  const run = async (f: () => Promise<unknown>): Promise<Outcome> => {
    try {
      const r = await f();
      // verify returns a failing result rather than throwing; the CLI turns it into exit 5.
      if (r && typeof r === 'object' && 'ok' in r && (r as { ok: boolean }).ok === false) return { code: EXIT.numeric, message: 'verification failed' };
      return 'ok';
    } catch (e) {
      if (!(e instanceof NolaError)) throw e;
      assert.ok(e.message.startsWith(`${file}: `) && !e.message.includes('\n'), e.message);
      return { code: e.exitCode, message: e.message };
    }
  };
  return {
    inspect: await run(() => inspect(file)),
    verify: await run(() => verify(file, undefined, 1e-4)),
    expand: await run(() => expand({ input: file, output: `${path.join(dir, 'out')}/` })),
    written: readdirSync(path.join(dir, 'out')),
  };
}

/** All three commands refuse `bytes` with `code` and a message matching `message`; nothing written. */
async function assertAllRefuse(bytes: Uint8Array, code: number, message: RegExp): Promise<void> {
  const o = await outcomes(bytes);
  for (const cmd of ['inspect', 'verify', 'expand'] as const) {
    const r = o[cmd];
    assert.ok(r !== 'ok', `${cmd} accepted the file (expected exit ${code}, ${message})`);
    assert.equal(r.code, code, `${cmd}: ${r.message}`);
    assert.match(r.message, message, cmd);
  }
  assert.deepEqual(o.written, []);
}

const rows = (d: Doc): unknown[][] => d.layers as unknown[][];
const field = (name: string): number => LAYER_FIELDS.indexOf(name as (typeof LAYER_FIELDS)[number]);

/** `bytes` (version 2) with coefficient-stream byte(s) changed by `edit` and coeffs.sha256 restated to match. */
function withStream(bytes: Uint8Array, edit: (stream: Uint8Array, doc: Doc) => void): Uint8Array {
  let doc: Doc = {};
  withEditedDoc(bytes, (d) => { doc = d; });
  const f = unframe(bytes)!;
  const t = f.tensors.find((x) => x.name === 'nola.coeffs')!;
  t.data = new Uint8Array(t.data);
  edit(t.data, doc);
  const sha = createHash('sha256').update(t.data).digest('hex');
  return withEditedDoc(frame(f), (d) => { (d.coeffs as Doc).sha256 = sha; });
}

/** Offset in the stream of layer 0's A block (it opens the stream) and its rice segment's count. */
const riceA = (doc: Doc): { count: number; bytes: number } => {
  const q = rows(doc)[0][field('quant_A')] as Array<[string, number, number]>;
  return { count: q[0][1], bytes: q[0][2] };
};

// ---------------------------------------------------------------------------------------------
// Item 4: commands agree

test('agree: a wrong coeffs.sha256 is refused by inspect and expand (exit 3) and failed by verify (exit 5)', async () => {
  const bad = withEditedDoc(seed('tiny-budget'), (d) => { (d.coeffs as Doc).sha256 = '0'.repeat(64); });
  const o = await outcomes(bad);
  assert.deepEqual([o.inspect, o.expand].map((r) => (r === 'ok' ? 'ok' : r.code)), [EXIT.format, EXIT.format]);
  assert.match((o.expand as { message: string }).message, /does not match coeffs\.sha256/);
  assert.deepEqual(o.verify === 'ok' ? 'ok' : o.verify.code, EXIT.numeric);
  assert.deepEqual(o.written, []);
});

test('agree: corrupt rice blocks (k = 31, empty unary stream, NaN and negative steps) are refused by all three', async () => {
  const tiny = seed('tiny-budget-v2');
  await assertAllRefuse(withStream(tiny, (s) => { s[4] = 31; }), EXIT.format, /factor A: .*rice block: k = 31 exceeds 24/);
  await assertAllRefuse(withStream(tiny, (s) => { new DataView(s.buffer, s.byteOffset).setFloat32(0, NaN, true); }), EXIT.format, /step NaN is not a positive finite f32/);
  await assertAllRefuse(withStream(tiny, (s) => { new DataView(s.buffer, s.byteOffset).setFloat32(0, -0.5, true); }), EXIT.format, /step -0\.5 is not a positive finite f32/);
  // The unary stream emptied: remainders then zero bytes to the block's end (k = 0: the whole body is unary).
  await assertAllRefuse(withStream(tiny, (s, d) => { s[4] = 0; s.fill(0, 5, riceA(d).bytes); }), EXIT.format, /unary stream ends before value 0/);
});

test('agree: int blocks with a reserved code 0 or a NaN scale are refused by all three', async () => {
  const int4 = seed('tiny-int4');
  await assertAllRefuse(withStream(int4, (s) => { s[0] = 0; }), EXIT.format, /int4 block: code 0 at index 0 is reserved/);
  // Layer 0's A: k int4 codes, then its f16 scales; 0x7e00 is a NaN.
  await assertAllRefuse(withStream(int4, (s, d) => {
    const kA = rows(d)[0][field('num_basis_A')] as number;
    const at = Math.ceil((kA * 4) / 8);
    s[at] = 0x00; s[at + 1] = 0x7e;
  }), EXIT.format, /group 0 has scale bits 0x7e00/);
});

test('agree: a stored config expand cannot use (r: "4", an unsupported pattern key) is refused by all three', async () => {
  const tiny = seed('tiny-budget');
  await assertAllRefuse(withEditedDoc(tiny, (d) => { ((d.source as Doc).config as Doc).r = '4'; }), EXIT.format, /r must be a number, found "4"/);
  await assertAllRefuse(withEditedDoc(tiny, (d) => { ((d.source as Doc).config as Doc).rank_pattern = { '(q)\\1': 4 }; }), EXIT.format, /pattern key "\(q\)\\\\1" is not supported/);
});

test('agree: a kohya alpha that its dtype cannot hold (1e300 in F16) is refused by all three', async () => {
  const bad = withEditedDoc(seed('kohya-ratio'), (d) => {
    for (const r of rows(d)) r[field('alpha')] = 1e300;
  });
  const o = await outcomes(bad);
  const codes = [o.inspect, o.verify, o.expand].map((r) => (r === 'ok' ? 'ok' : r.code));
  assert.ok(codes[0] !== 'ok', JSON.stringify(o));
  assert.deepEqual(codes, [codes[0], codes[0], codes[0]], JSON.stringify(o));
  assert.deepEqual(o.written, []);
});

// ---------------------------------------------------------------------------------------------
// Item 5: a test per rule FORMAT.md states (the rules issue 14 added or made explicit)

test('rule: __metadata__ of a NOLA file holds only "nola"', async () => {
  const f = unframe(seed('tiny-budget'))!;
  f.metadata = { ...f.metadata, extra: 'x' };
  await assertAllRefuse(frame(f), EXIT.format, /__metadata__ of a NOLA file holds only "nola", found "extra"/);
});

test('rule: the envelope is compared as values; "document" is exactly "nola.document"', async () => {
  const tiny = seed('tiny-budget-v2');
  // Values, not bytes: reordered keys and whitespace are the same envelope.
  const reordered = editEnvelopeText(tiny, () => '{ "document": "nola.document", "generator": "lowbias32-v1", "format_version": 2 }')!;
  const o = await outcomes(reordered);
  assert.deepEqual([o.inspect, o.verify, o.expand], ['ok', 'ok', 'ok']);
  await assertAllRefuse(editEnvelopeText(tiny, (t) => t.replace('"nola.document"', '"nola.doc"'))!, EXIT.format, /"document" must be "nola\.document", got "nola\.doc"/);
});

test('rule: unknown keys are refused in the document, source, coeffs, key styles, passthrough and version-1 layers', async () => {
  const tiny = seed('tiny-budget');
  await assertAllRefuse(withEditedDoc(tiny, (d) => { d.comment = 'x'; }), EXIT.format, /the document has unknown key "comment"/);
  await assertAllRefuse(withEditedDoc(tiny, (d) => { (d.source as Doc).url = 'x'; }), EXIT.format, /"source" has unknown key "url"/);
  await assertAllRefuse(withEditedDoc(tiny, (d) => { (d.coeffs as Doc).algo = 'sha256'; }), EXIT.format, /"coeffs" has unknown key "algo"/);
  await assertAllRefuse(withEditedDoc(tiny, (d) => { (d.key_styles as Doc[])[0].note = 1; }), EXIT.format, /key style 0 has unknown key "note"/);
  await assertAllRefuse(withEditedDoc(seed('peft-dora-conv'), (d) => { (d.passthrough as Doc[])[0].bytes = 1; }), EXIT.format, /passthrough 0 has unknown key "bytes"/);
  await assertAllRefuse(withEditedDoc(seed('tiny-ratio-v1'), (d) => { (d.layers as Doc[])[0].extra = 1; }), EXIT.format, /layer 0 has unknown key "extra"/);
  // source.metadata and source.config are the source's data: anything goes there.
  const free = await outcomes(withEditedDoc(tiny, (d) => { ((d.source as Doc).config as Doc).anything_new = { nested: [1] }; }));
  assert.deepEqual([free.inspect, free.verify, free.expand], ['ok', 'ok', 'ok']);
});

test('rule: every "source" key is present; source.file may not be adapter_config.json', async () => {
  const tiny = seed('tiny-budget');
  await assertAllRefuse(withEditedDoc(tiny, (d) => { delete (d.source as Doc).config; }), EXIT.format, /"source" has no "config"/);
  await assertAllRefuse(withEditedDoc(tiny, (d) => { (d.source as Doc).file = 'adapter_config.json'; }), EXIT.format, /source\.file may not be "adapter_config\.json"/);
});

test('rule: 1 <= rank <= source rank <= min(d_in, d_out)', async () => {
  const tiny = seed('tiny-budget');
  await assertAllRefuse(withEditedDoc(tiny, (d) => { rows(d)[0][field('rank')] = (rows(d)[0][field('shape_A')] as number[])[0] + 1; }), EXIT.format, /layer 0: rank \d+ exceeds the source rank \d+/);
  await assertAllRefuse(withEditedDoc(tiny, (d) => {
    const r = rows(d)[0];
    r[field('shape_A')] = [8, 4];
  }), EXIT.format, /layer 0: source rank 8 exceeds min\(d_in, d_out\) = 4/);
});

test('rule: a rice segment states at least 5 + ceil(count/8) bytes', async () => {
  await assertAllRefuse(withEditedDoc(seed('tiny-budget-v2'), (d) => {
    const q = rows(d)[0][field('quant_A')] as Array<[string, number, number]>;
    q[0][2] = 5 + Math.ceil(q[0][1] / 8) - 1;
  }), EXIT.format, /rice segment of \d+ values in \d+ bytes \(needs at least \d+\)/);
});

/** The first rans segment of the file: its layer, factor, offset in the stream and size. */
function firstRans(doc: Doc): { layer: number; factor: 'A' | 'B'; offset: number; count: number; bytes: number } {
  let offset = 0;
  for (const [i, row] of rows(doc).entries()) {
    for (const factor of ['A', 'B'] as const) {
      for (const seg of row[field(`quant_${factor}`)] as Array<[string, number, number]>) {
        if (seg[0] === 'rans') return { layer: i, factor, offset, count: seg[1], bytes: seg[2] };
        offset += seg[2]; // the default seed is entropy-coded throughout: no scales
      }
    }
  }
  throw new Error('no rans segment');
}

test('rule: a rans segment states at least 9 bytes, and only a version-3 file holds one', async () => {
  const tiny = seed('tiny-budget');
  assert.equal(JSON.parse(unframe(tiny)!.metadata!.nola).format_version, 3);
  await assertAllRefuse(withEditedDoc(tiny, (d) => {
    const r = firstRans(d);
    (rows(d)[r.layer][field(`quant_${r.factor}`)] as Array<[string, number, number]>).find((s) => s[0] === 'rans')![2] = 8;
  }), EXIT.format, /segment \["rans",\d+,8\] is not .*\["rans", count ≥ 1, bytes ≥ 9\]/);
  await assertAllRefuse(editEnvelopeText(tiny, (t) => t.replace('"format_version":3', '"format_version":2'))!, EXIT.format,
    /quant_[AB] has a rans segment, which needs format_version 3 \(the file states 2\)/);
});

test('agree: corrupt rans blocks (p = 96, state below 2^23, a changed byte, NaN step) are refused by all three', async () => {
  const tiny = seed('tiny-budget');
  let r = { offset: 0, bytes: 0, count: 0 };
  withEditedDoc(tiny, (d) => { r = firstRans(d); });
  await assertAllRefuse(withStream(tiny, (s) => { s[r.offset + 4] = 96; }), EXIT.format, /rans block: model p = 96 exceeds 95/);
  await assertAllRefuse(withStream(tiny, (s) => { s.set([0, 0, 0x10, 0], r.offset + 5); }), EXIT.format, /rans block: state 1048576 is outside \[2\^23, 2\^31\)/);
  await assertAllRefuse(withStream(tiny, (s) => { new DataView(s.buffer, s.byteOffset).setFloat32(r.offset, NaN, true); }), EXIT.format, /rans block: step NaN is not a positive finite f32/);
  // A changed renormalization byte decodes to other levels and cannot end in the writer's start state.
  await assertAllRefuse(withStream(tiny, (s) => { s[r.offset + r.bytes - 1] ^= 0x5a; }), EXIT.format, /rans block: (the coder ends in state|the bytes end before|\d+ bytes after)/);
});

test('rule: the document inflates to at most 10^8 bytes, with nothing after the zlib stream, nesting at most 40 levels', async () => {
  const tiny = seed('tiny-budget');
  const f = unframe(tiny)!;
  const doc = f.tensors.find((t) => t.name === 'nola.document')!;
  doc.data = new Uint8Array(Buffer.concat([doc.data, Buffer.from([0, 1, 2])]));
  doc.shape = [doc.data.length];
  await assertAllRefuse(frame(f), EXIT.format, /document tensor "nola\.document" has 3 bytes after the end of its zlib stream/);
  doc.data = deflateSync(Buffer.alloc(100_000_001, 0x20));
  doc.shape = [doc.data.length];
  await assertAllRefuse(frame(f), EXIT.format, /inflates past 100000000 bytes/);
  await assertAllRefuse(withEditedDoc(tiny, (d) => { ((d.source as Doc).config as Doc).deep = JSON.parse('['.repeat(39) + ']'.repeat(39)); }), EXIT.format, /nests deeper than 40 levels/);
});

test('rule: a version-1 file needs no error_expanded, and its coefficient tensor names need not carry the layer index', async () => {
  const v1 = withEditedDoc(seed('tiny-ratio-v1'), (d) => { for (const l of d.layers as Doc[]) delete l.error_expanded; });
  const o = await outcomes(v1);
  assert.deepEqual([o.inspect, o.verify, o.expand], ['ok', 'ok', 'ok']);
  // Renaming nola.coeffs.0.A to nola.coeffs.9.A (tensor and reference) is still a valid file.
  const renamed = withDocText(seed('tiny-ratio-v1'), (t) => t.replace('"nola.coeffs.0.A"', '"nola.coeffs.9.A"'));
  const g = unframe(renamed)!;
  g.tensors.find((t) => t.name === 'nola.coeffs.0.A')!.name = 'nola.coeffs.9.A';
  const r = await outcomes(frame(g));
  assert.deepEqual([r.inspect, r.verify, r.expand], ['ok', 'ok', 'ok']);
});

test('the independent numpy reader (nola_ref.py validate) enforces the same rules on the same cases', { skip: python3Missing() ?? false }, async () => {
  const tiny = seed('tiny-budget');
  const f = unframe(tiny)!;
  f.metadata = { ...f.metadata, extra: 'x' };
  const g = unframe(tiny)!;
  const doc = g.tensors.find((t) => t.name === 'nola.document')!;
  doc.data = new Uint8Array(Buffer.concat([doc.data, Buffer.from([0])]));
  doc.shape = [doc.data.length];
  const cases: Array<[string, Uint8Array, boolean]> = [
    ['valid', tiny, true],
    ['valid v1', seed('tiny-ratio-v1'), true],
    ['extra metadata', frame(f), false],
    ['bytes after zlib', frame(g), false],
    ['document name', editEnvelopeText(tiny, (t) => t.replace('"nola.document"', '"nola.doc"'))!, false],
    ['unknown key', withEditedDoc(tiny, (d) => { d.comment = 1; }), false],
    ['unknown v1 layer key', withEditedDoc(seed('tiny-ratio-v1'), (d) => { (d.layers as Doc[])[0].extra = 1; }), false],
    ['rank above source', withEditedDoc(tiny, (d) => { rows(d)[0][field('rank')] = (rows(d)[0][field('shape_A')] as number[])[0] + 1; }), false],
    ['wrong sha256', withEditedDoc(tiny, (d) => { (d.coeffs as Doc).sha256 = '0'.repeat(64); }), false],
    ['source.file', withEditedDoc(tiny, (d) => { (d.source as Doc).file = 'adapter_config.json'; }), false],
  ];
  for (const [what, bytes, ok] of cases) {
    const file = path.join(tmp.dir, `ref-${k++}.nola.safetensors`);
    await writeFile(file, bytes);
    const r = spawnSync('python3', [path.join(REPO, 'scripts/reference/nola_ref.py'), 'validate', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${what}: ${r.stderr}`);
    assert.equal((JSON.parse(r.stdout) as { ok: boolean }).ok, ok, `${what}: ${r.stdout}`);
    const o = await outcomes(bytes);
    assert.equal(o.expand === 'ok', ok, `${what}: nola ${JSON.stringify(o.expand)}`);
  }
});
