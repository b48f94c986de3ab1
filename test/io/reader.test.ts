/**
 * One malformed-bytes fixture per rule of the reader. Every fixture starts from the valid file built by
 * `validParts()` (by hand, not with our writer) and breaks exactly one thing.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, closeSync, ftruncateSync, openSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { FormatError, IoError } from '../../src/errors.js';
import { openSafetensors } from '../../src/io/safetensors/reader.js';
import type { SafetensorsLimits } from '../../src/io/safetensors/types.js';
import { buildFile, f32Bytes, headerJson, makeTempDir, type HeaderEntry } from './helpers.js';

let tmp: { dir: string; cleanup: () => void };
before(() => { tmp = makeTempDir(); });
after(() => tmp.cleanup());

let counter = 0;
function fixture(bytes: Uint8Array, name = `f${counter++}.safetensors`): string {
  const p = path.join(tmp.dir, name);
  writeFileSync(p, bytes);
  return p;
}

/** a.weight: F32 [2,2] = 1,2,3,4 at [0,16); b.bias: F16 [3] = 1,-2,0.5 at [16,22). */
function validParts(): { entries: Record<string, HeaderEntry>; data: Uint8Array; metadata: Record<string, string> } {
  const f16 = Uint8Array.from([0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38]); // 1, -2, 0.5 (IEEE half)
  return {
    entries: {
      'a.weight': { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] },
      'b.bias': { dtype: 'F16', shape: [3], data_offsets: [16, 22] },
    },
    data: Buffer.concat([f32Bytes([1, 2, 3, 4]), f16]),
    metadata: { format: 'pt' },
  };
}

function validFile(): Buffer {
  const v = validParts();
  return buildFile(headerJson(v.entries, v.metadata), v.data);
}

/** File from header JSON text + the valid data section. */
function withHeader(json: string, data: Uint8Array = validParts().data): Buffer {
  return buildFile(json, data);
}

function withLength(bytes: Buffer, n: bigint): Buffer {
  const copy = Buffer.from(bytes);
  copy.writeBigUInt64LE(n, 0);
  return copy;
}

async function rejects(bytes: Uint8Array, message: RegExp, limits?: Partial<SafetensorsLimits>): Promise<string> {
  const p = fixture(bytes);
  const err = await openSafetensors(p, limits).then(
    async (f) => { await f.close(); return null; },
    (e: unknown) => e,
  );
  assert.ok(err instanceof FormatError, `expected FormatError, got ${String(err)}`);
  const msg = (err as Error).message;
  assert.ok(msg.startsWith(`${p}: `), `message should name the file: ${msg}`);
  assert.ok(!msg.includes('\n'), 'one line');
  assert.match(msg, message);
  return msg;
}

async function opens(bytes: Uint8Array, limits?: Partial<SafetensorsLimits>) {
  return openSafetensors(fixture(bytes), limits);
}

describe('valid files', () => {
  test('the base fixture opens and its values match what was written', async () => {
    const bytes = validFile();
    const f = await opens(bytes);
    try {
      assert.equal(f.fileSize, bytes.length);
      assert.equal(f.headerLength, bytes.readUInt32LE(0));
      assert.equal(f.dataStart, 8 + f.headerLength);
      assert.deepEqual(f.metadata, { format: 'pt' });
      assert.deepEqual(f.tensors.map((t) => [t.name, t.dtype, t.shape, t.begin, t.end]), [
        ['a.weight', 'F32', [2, 2], 0, 16],
        ['b.bias', 'F16', [3], 16, 22],
      ]);
      assert.deepEqual(Array.from(await f.readFloat32('a.weight')), [1, 2, 3, 4]);
      assert.deepEqual(Array.from(await f.readFloat64('b.bias')), [1, -2, 0.5]);
      assert.deepEqual(await f.readRaw('b.bias'), Buffer.from([0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38]));
      assert.equal(f.get('nope'), undefined);
      await assert.rejects(f.readRaw('nope'), FormatError);
    } finally {
      await f.close();
    }
    await f.close(); // idempotent
    await assert.rejects(f.readRaw('a.weight'), /after close/);
  });

  test('header padded with trailing spaces, or with a length that is not a multiple of 8, is accepted', async () => {
    const v = validParts();
    for (const pad of [0, 1, 3, 7, 100]) {
      const f = await opens(buildFile(headerJson(v.entries), v.data, pad));
      assert.equal(f.headerLength, Buffer.byteLength(headerJson(v.entries)) + pad);
      assert.deepEqual(Array.from(await f.readFloat32('a.weight')), [1, 2, 3, 4]);
      await f.close();
    }
    // Tab/newline padding is JSON whitespace too (serde_json accepts it after the value).
    const f = await opens(withHeader(headerJson(v.entries) + '\n\t \r'));
    assert.equal(f.tensors.length, 2);
    await f.close();
  });

  test('tensors listed out of offset order are accepted (the reference sorts by offsets)', async () => {
    const v = validParts();
    const f = await opens(withHeader(headerJson({ 'b.bias': v.entries['b.bias'], 'a.weight': v.entries['a.weight'] })));
    assert.deepEqual(f.tensors.map((t) => t.name), ['b.bias', 'a.weight']); // header order kept
    assert.deepEqual(Array.from(await f.readFloat32('a.weight')), [1, 2, 3, 4]);
    await f.close();
  });

  test('no metadata, null metadata (reference: Option<HashMap>), empty file {}, 0-d and zero-size tensors', async () => {
    const v = validParts();
    let f = await opens(withHeader(headerJson(v.entries)));
    assert.equal(f.metadata, null);
    await f.close();
    f = await opens(withHeader(JSON.stringify({ __metadata__: null, ...v.entries })));
    assert.equal(f.metadata, null);
    await f.close();
    f = await opens(buildFile('{}'));
    assert.deepEqual(f.tensors, []);
    await f.close();
    const scalar = f32Bytes([0.25]);
    f = await opens(buildFile(headerJson({
      empty: { dtype: 'F32', shape: [0, 5], data_offsets: [0, 0] },
      alpha: { dtype: 'F32', shape: [], data_offsets: [0, 4] },
    }), scalar));
    assert.deepEqual(Array.from(await f.readFloat32('alpha')), [0.25]);
    assert.deepEqual(Array.from(await f.readFloat32('empty')), []);
    await f.close();
  });

  test('odd names survive: escapes, surrogate pairs, "__proto__" as tensor and metadata key', async () => {
    const json = '{"__metadata__":{"__proto__":"x","k\\u00e9":"\\ud83d\\ude00"},' +
      '"__proto__":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a\\"b\\n":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}';
    const f = await opens(buildFile(json, Uint8Array.from([7, 9])));
    assert.deepEqual(f.tensors.map((t) => t.name), ['__proto__', 'a"b\n']);
    assert.equal(Object.getPrototypeOf(f.metadata), Object.prototype);
    assert.deepEqual(Object.entries(f.metadata ?? {}), [['__proto__', 'x'], ['ké', '\u{1f600}']]);
    assert.deepEqual(Array.from(await f.readFloat32('a"b\n')), [9]);
    await f.close();
  });

  test('a header length of 640 (bytes 80 02 ..) is not mistaken for a pickle', async () => {
    const v = validParts();
    const json = headerJson(v.entries);
    const f = await opens(buildFile(json, v.data, 640 - Buffer.byteLength(json)));
    assert.equal(f.headerLength, 640);
    await f.close();
  });

  test('concurrent reads of different tensors are independent', async () => {
    const f = await opens(validFile());
    const [a, b, a2] = await Promise.all([f.readFloat32('a.weight'), f.readFloat32('b.bias'), f.readRaw('a.weight')]);
    assert.deepEqual(Array.from(a), [1, 2, 3, 4]);
    assert.deepEqual(Array.from(b), [1, -2, 0.5]);
    assert.deepEqual(a2, Buffer.from(f32Bytes([1, 2, 3, 4])));
    await f.close();
  });
});

describe('rules: the 8-byte length', () => {
  test('file shorter than 8 bytes', async () => {
    await rejects(Uint8Array.from([1, 0, 0, 0, 0]), /file is 5 bytes, too short/);
    await rejects(new Uint8Array(0), /file is 0 bytes/);
  });

  test('header length above limits.maxHeaderBytes (default 100_000_000, the reference MAX_HEADER_SIZE)', async () => {
    await rejects(withLength(validFile(), 100_000_001n), /header length 100000001 exceeds the limit of 100000000 bytes/);
    await rejects(validFile(), /exceeds the limit of 16 bytes/, { maxHeaderBytes: 16 });
  });

  test('header length 2^63 and 2^64-1 give a clean error (u64 read as BigInt)', async () => {
    await rejects(withLength(validFile(), 2n ** 63n), /header length 9223372036854775808 exceeds the limit/);
    await rejects(withLength(validFile(), 2n ** 64n - 1n), /header length 18446744073709551615 exceeds/);
  });

  test('header length past the end of the file', async () => {
    const bytes = validFile();
    await rejects(withLength(bytes, BigInt(bytes.length)), new RegExp(`header length ${bytes.length} runs past the end of the file \\(${bytes.length} bytes\\)`));
  });
});

describe('rules: header text', () => {
  test('header not valid UTF-8', async () => {
    const bytes = Buffer.from(validFile());
    const at = bytes.indexOf('a.weight');
    bytes[at] = 0xff;
    await rejects(bytes, /header is not valid UTF-8/);
  });

  test('header starting with something other than "{"', async () => {
    const v = validParts();
    await rejects(withHeader(' ' + headerJson(v.entries)), /header does not start with '\{' \(first byte is 0x20\)/);
    await rejects(withHeader('\ufeff' + headerJson(v.entries)), /first byte is 0xef/); // UTF-8 BOM
    await rejects(withHeader('[1,2]'), /first byte is 0x5b/);
    await rejects(buildFile(''), /header does not start with '\{' \(it is empty\)/);
  });

  test('header not valid JSON', async () => {
    const v = validParts();
    const json = headerJson(v.entries);
    await rejects(withHeader(json.slice(0, -1) + ',}'), /header is not valid JSON: expected a key but found '\}' at character/);
    await rejects(withHeader(json.slice(0, -1)), /header is not valid JSON: .*end of header/);
    await rejects(withHeader(json + 'x'), /header is not valid JSON: unexpected 'x' after the closing '\}'/);
    await rejects(withHeader(json + '\0'), /unexpected character U\+0000 after the closing/); // NUL padding is not whitespace
    await rejects(withHeader('{"a":{"dtype":"F32","shape":[01],"data_offsets":[0,0]}}'), /not valid JSON/);
    await rejects(withHeader('{"a\tb":1}'), /control character in string/);
    await rejects(withHeader('{"a\\x":1}'), /invalid escape/);
  });

  test('lone surrogate escapes are rejected (not valid UTF-8 when written back)', async () => {
    await rejects(buildFile('{"\\ud800":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'), /lone high surrogate/);
    await rejects(buildFile('{"\\udc00":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'), /lone low surrogate/);
  });

  test('nesting deeper than 128 levels is a clean error, not a stack overflow', async () => {
    await rejects(buildFile('{"a":' + '['.repeat(100_000) + ']'.repeat(100_000) + '}'), /nests deeper than 128 levels/);
  });

  test('duplicate top-level key (JSON.parse would keep the last one silently)', async () => {
    const v = validParts();
    const a = JSON.stringify(v.entries['a.weight']);
    const json = `{"a.weight":${a},"b.bias":${JSON.stringify(v.entries['b.bias'])},"a.weight":${a}}`;
    assert.equal(Object.keys(JSON.parse(json)).length, 2); // the trap this rule is about
    await rejects(withHeader(json), /header has duplicate key "a\.weight"$/);
  });

  test('duplicate key inside a tensor entry or inside __metadata__', async () => {
    await rejects(withHeader('{"a.weight":{"dtype":"F32","dtype":"F16","shape":[2,2],"data_offsets":[0,16]}}'),
      /duplicate key "dtype" inside "a\.weight"/);
    const v = validParts();
    await rejects(withHeader(`{"__metadata__":{"format":"pt","format":"np"},${headerJson(v.entries).slice(1)}`),
      /duplicate key "format" inside "__metadata__"/);
  });
});

describe('rules: header schema', () => {
  const v = validParts();
  const rest = headerJson(v.entries).slice(1);

  test('__metadata__ not an object', async () => {
    await rejects(withHeader(`{"__metadata__":["pt"],${rest}`), /__metadata__ must be an object of strings, not an array/);
    await rejects(withHeader(`{"__metadata__":"pt",${rest}`), /__metadata__ must be an object of strings, not a string/);
  });

  test('__metadata__ value not a string', async () => {
    await rejects(withHeader(`{"__metadata__":{"epochs":3},${rest}`), /__metadata__ value for "epochs" must be a string, not a number \(3\)/);
    await rejects(withHeader(`{"__metadata__":{"x":{"y":"z"}},${rest}`), /__metadata__ value for "x" must be a string, not an object/);
    await rejects(withHeader(`{"__metadata__":{"x":null},${rest}`), /value for "x" must be a string, not null/);
  });

  test('tensor entry missing dtype, shape or data_offsets', async () => {
    for (const field of ['dtype', 'shape', 'data_offsets'] as const) {
      const e: Record<string, unknown> = { ...v.entries['a.weight'] };
      delete e[field];
      await rejects(withHeader(JSON.stringify({ 'a.weight': e, 'b.bias': v.entries['b.bias'] })), new RegExp(`tensor "a\\.weight" is missing "${field}"`));
    }
  });

  test('tensor entry with an unexpected extra field', async () => {
    const e = { ...v.entries['a.weight'], offsets: [0, 16] };
    await rejects(withHeader(JSON.stringify({ 'a.weight': e, 'b.bias': v.entries['b.bias'] })), /tensor "a\.weight" has unexpected field "offsets"/);
  });

  test('tensor entry or its fields of the wrong JSON type', async () => {
    const make = (e: unknown) => withHeader(JSON.stringify({ 'a.weight': e, 'b.bias': v.entries['b.bias'] }));
    const a = v.entries['a.weight'];
    await rejects(make('F32'), /tensor "a\.weight" must be an object with dtype, shape and data_offsets, not a string/);
    await rejects(make({ ...a, dtype: 4 }), /tensor "a\.weight" dtype must be a string, not a number \(4\)/);
    await rejects(make({ ...a, shape: '2,2' }), /shape must be an array of integers, not a string/);
    await rejects(make({ ...a, shape: [2, '2'] }), /shape\[1\] must be a non-negative integer, not a string/);
    await rejects(make({ ...a, data_offsets: [0, 16, 32] }), /data_offsets must be an array of two integers, not 3 values/);
    await rejects(make({ ...a, data_offsets: { begin: 0 } }), /data_offsets must be an array of two integers, not an object/);
    await rejects(make({ ...a, data_offsets: [0, null] }), /data_offsets\[1\] must be a non-negative integer, not null/);
  });

  test('unknown dtype', async () => {
    const make = (dtype: string) => withHeader(JSON.stringify({ 'a.weight': { ...v.entries['a.weight'], dtype }, 'b.bias': v.entries['b.bias'] }));
    await rejects(make('F17'), /tensor "a\.weight" has unknown dtype "F17" \(known: F64, F32/);
    await rejects(make('f32'), /unknown dtype "f32"/); // dtypes are case-sensitive in the reference enum
  });

  test('negative or non-integer shape dims', async () => {
    const make = (dims: string) => withHeader(`{"a.weight":{"dtype":"F32","shape":${dims},"data_offsets":[0,16]},"b.bias":${JSON.stringify(v.entries['b.bias'])}}`);
    await rejects(make('[-2,-2]'), /tensor "a\.weight" shape\[0\] is negative \(-2\)/);
    await rejects(make('[2,2.0]'), /shape\[1\] is not an integer \(2\.0\)/);
    await rejects(make('[2,1.5]'), /shape\[1\] is not an integer \(1\.5\)/);
    await rejects(make('[4e0,1]'), /shape\[0\] is not an integer \(4e0\)/);
    await rejects(make('[-0,4]'), /shape\[0\] is negative \(-0\)/);
  });

  test('integers above 2^53 - 1 in shapes and offsets (JSON.parse would round them)', async () => {
    const big = '9007199254740993'; // 2^53 + 1: JSON.parse gives 9007199254740992
    assert.equal(JSON.parse(big), 2 ** 53);
    await rejects(withHeader(`{"a":{"dtype":"U8","shape":[${big}],"data_offsets":[0,${big}]}}`), /tensor "a" shape\[0\] is 9007199254740993, above 2\^53 - 1/);
    await rejects(withHeader(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551616]}}`), /data_offsets\[1\] is 18446744073709551616, above 2\^53/);
    await rejects(withHeader(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1e400]}}`), /data_offsets\[1\] is not an integer \(1e400\)/);
  });

  test('more tensors than limits.maxTensors', async () => {
    // Counted while parsing (issue 14: a header of 10^6 tensors is refused before it is all built).
    await rejects(validFile(), /header lists more than 1 tensors, the limit \(stopped reading it there\)/, { maxTensors: 1 });
    const f = await opens(validFile(), { maxTensors: 2 }); // __metadata__ does not count
    await f.close();
  });
});

describe('rules: data layout', () => {
  const b = validParts().entries['b.bias'];
  const a = validParts().entries['a.weight'];
  const make = (ea: HeaderEntry, eb: HeaderEntry, data = validParts().data) =>
    withHeader(JSON.stringify({ 'a.weight': ea, 'b.bias': eb }), data);

  test('offsets not starting at 0', async () => {
    await rejects(make({ ...a, data_offsets: [2, 18] }, { ...b, data_offsets: [18, 24] }, new Uint8Array(24)),
      /tensor "a\.weight" starts at data offset 2, but the first tensor must start at 0/);
  });

  test('gap between tensors', async () => {
    await rejects(make(a, { ...b, data_offsets: [18, 24] }, new Uint8Array(24)),
      /gap of 2 bytes before tensor "b\.bias": it starts at 18, the previous tensor ends at 16/);
  });

  test('overlapping tensors', async () => {
    await rejects(make(a, { ...b, data_offsets: [14, 20] }, new Uint8Array(20)),
      /tensor "a\.weight" overlaps the previous one: it starts at 14, the previous tensor ends at 20|tensor "b\.bias" overlaps/);
    // Two tensors on the same bytes.
    await rejects(make(a, { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, new Uint8Array(16)), /overlaps the previous one: it starts at 0, the previous tensor ends at 16/);
  });

  test('end before begin', async () => {
    await rejects(make(a, { ...b, data_offsets: [22, 16] }), /tensor "b\.bias" has data_offsets \[22,16\]: end is before begin/);
  });

  test('byte length differs from dtype size x product(shape)', async () => {
    await rejects(make({ ...a, data_offsets: [0, 12] }, { ...b, data_offsets: [12, 18] }, new Uint8Array(18)),
      /tensor "a\.weight" has 12 bytes but F32 \[2,2\] needs 16$/);
    await rejects(make({ ...a, dtype: 'F64' }, b), /tensor "a\.weight" has 16 bytes but F64 \[2,2\] needs 32/);
    // A product that overflows 2^64 must still be a clean mismatch (reference: ValidationOverflow).
    await rejects(make({ ...a, shape: [2 ** 40, 2 ** 40, 2 ** 40] }, b), /has 16 bytes but F32 \[1099511627776,1099511627776,1099511627776\] needs 5316911983139663491615228241121378304/);
  });

  test('trailing bytes after the last tensor', async () => {
    await rejects(make(a, b, Buffer.concat([validParts().data, Buffer.from([0, 0, 0])])), /data section is 25 bytes but the tensors end at 22 \(3 trailing bytes\)/);
  });

  test('truncated data section', async () => {
    await rejects(make(a, b, validParts().data.subarray(0, 20)), /file is truncated: the tensors need 22 bytes of data but only 20 follow the header/);
  });
});

describe('PyTorch checkpoints and filesystem errors', () => {
  const hint = /: this is a PyTorch \.bin\/pickle checkpoint, not safetensors; convert it first, e\.g\. python -c "import torch; from safetensors\.torch import save_file; save_file\(torch\.load\('adapter_model\.bin'\), 'adapter_model\.safetensors'\)"$/;

  test('zip (torch.save >= 1.6) is recognised', async () => {
    // Local file header of a zip: PK\x03\x04, version 20 ... (the first bytes of every torch.save file).
    await rejects(Buffer.concat([Buffer.from('PK\x03\x04\x14\x00\x00\x00\x08\x00', 'latin1'), Buffer.alloc(200)]), hint);
    await rejects(Buffer.from('PK\x03\x04', 'latin1'), hint);
  });

  test('bare pickle protocols 2-5 are recognised', async () => {
    // Legacy torch.save: protocol 2 then LONG1 magic 0x1950a86a20f9469cfc6c.
    await rejects(Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]), hint);
    for (const proto of [3, 4, 5]) await rejects(Buffer.from([0x80, proto, 0x95, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x7d, 0x94]), hint);
    await rejects(Buffer.from([0x80, 0x02, 0x7d]), hint);
  });

  test('missing file or a directory -> IoError with one line', async () => {
    const missing = path.join(tmp.dir, 'nope.safetensors');
    await assert.rejects(openSafetensors(missing), (e: unknown) => e instanceof IoError && e.message === `${missing}: no such file`);
    await assert.rejects(openSafetensors(tmp.dir), (e: unknown) => e instanceof IoError && e.message === `${tmp.dir}: is a directory`);
  });

  test('unreadable file (EACCES) -> IoError with one line', { skip: process.getuid?.() === 0 && 'root reads through mode 000' }, async () => {
    const locked = fixture(validFile(), 'locked.safetensors');
    chmodSync(locked, 0o000);
    try {
      await assert.rejects(openSafetensors(locked), (e: unknown) => e instanceof IoError && e.message === `${locked}: permission denied`);
    } finally {
      chmodSync(locked, 0o644);
    }
  });
});

describe('round trips at unaligned offsets', () => {
  test('F64/F32/F16/BF16 tensors after an odd-sized U8 tensor and an odd header length decode exactly', async () => {
    // Expected values are written with DataView (F64/F32) and as IEEE half/bfloat bit patterns computed
    // by hand: 1.5 = 0x3e00 (F16) = 0x3fc0 (BF16); -0.25 = 0xb400 (F16) = 0xbe80 (BF16).
    const data = Buffer.alloc(3 + 16 + 8 + 4 + 4);
    data.set([1, 2, 3], 0);
    data.writeDoubleLE(Math.PI, 3);
    data.writeDoubleLE(-1e-300, 11);
    data.writeFloatLE(0.1, 19);
    data.writeFloatLE(-7, 23);
    data.writeUInt16LE(0x3e00, 27); data.writeUInt16LE(0xb400, 29);
    data.writeUInt16LE(0x3fc0, 31); data.writeUInt16LE(0xbe80, 33);
    const json = JSON.stringify({
      u: { dtype: 'U8', shape: [3], data_offsets: [0, 3] },
      d: { dtype: 'F64', shape: [2], data_offsets: [3, 19] },
      f: { dtype: 'F32', shape: [1, 2], data_offsets: [19, 27] },
      h: { dtype: 'F16', shape: [2], data_offsets: [27, 31] },
      bf: { dtype: 'BF16', shape: [2, 1], data_offsets: [31, 35] },
    });
    const f = await opens(buildFile(json, data, (8 - (Buffer.byteLength(json) % 8)) + 3));
    assert.notEqual(f.dataStart % 8, 0);
    assert.deepEqual(Array.from(await f.readFloat64('d')), [Math.PI, -1e-300]);
    assert.deepEqual(Array.from(await f.readFloat32('d')), [Math.fround(Math.PI), -0]);
    assert.deepEqual(Array.from(await f.readFloat32('f')), [Math.fround(0.1), -7]);
    assert.deepEqual(Array.from(await f.readFloat64('f')), [Math.fround(0.1), -7]);
    assert.deepEqual(Array.from(await f.readFloat32('h')), [1.5, -0.25]);
    assert.deepEqual(Array.from(await f.readFloat64('bf')), [1.5, -0.25]);
    assert.deepEqual(Array.from(await f.readFloat32('u')), [1, 2, 3]);
    await f.close();
  });
});

describe('streaming', () => {
  test('a file over 2 GiB opens and reads a tensor past 2^31 without reading the rest (sparse file)', async () => {
    // 'big' is U8 [2^31 + 3] (all zeros, never written: the file is sparse), 'tail' is F32 [2] after it.
    const bigLen = 2 ** 31 + 3;
    const header = Buffer.from(JSON.stringify({
      big: { dtype: 'U8', shape: [bigLen], data_offsets: [0, bigLen] },
      tail: { dtype: 'F32', shape: [2], data_offsets: [bigLen, bigLen + 8] },
    }));
    const p = path.join(tmp.dir, 'huge.safetensors');
    const fd = openSync(p, 'w');
    try {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(header.length));
      writeSync(fd, Buffer.concat([len, header]), 0, 8 + header.length, 0);
      ftruncateSync(fd, 8 + header.length + bigLen + 8);
      writeSync(fd, Buffer.from(f32Bytes([-1.5, 6])), 0, 8, 8 + header.length + bigLen);
    } finally {
      closeSync(fd);
    }
    const rss0 = process.memoryUsage().rss;
    const f = await openSafetensors(p);
    assert.equal(f.fileSize, 8 + header.length + bigLen + 8);
    assert.deepEqual(Array.from(await f.readFloat32('tail')), [-1.5, 6]);
    await f.close();
    assert.ok(process.memoryUsage().rss - rss0 < 256 * 2 ** 20, 'the big tensor was not loaded');
  });
});
