import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../../src/errors.js';
import { dtypeSize } from '../../src/io/safetensors/dtypes.js';
import { openSafetensors } from '../../src/io/safetensors/reader.js';
import { writeSafetensors } from '../../src/io/safetensors/writer.js';
import type { TensorSpec } from '../../src/io/safetensors/types.js';
import { makeTempDir, PY_SAFETENSORS_DUMP, runPython } from './helpers.js';

let tmp: { dir: string; cleanup: () => void };
before(() => { tmp = makeTempDir(); });
after(() => tmp.cleanup());
let n = 0;
const out = (name = `w${n++}.safetensors`) => path.join(tmp.dir, name);
const f32 = (xs: number[]) => Float32Array.from(xs);

describe('golden bytes from the reference crate tests (safetensors/src/tensor.rs)', () => {
  test('test_serialization: attn.0 F32 [1,2,3], header exactly 64 bytes', async () => {
    const p = out();
    await writeSafetensors(p, [{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3] }], null, () => f32([0, 1, 2, 3, 4, 5]));
    const expected = [
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100,
      116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34,
      58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115,
      101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63,
      0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ];
    assert.deepEqual(Array.from(readFileSync(p)), expected);
  });

  test('test_serialization_forced_alignement: attn0 F32 [1,1,2,3], padded with 7 spaces to 72', async () => {
    const p = out();
    await writeSafetensors(p, [{ name: 'attn0', dtype: 'F32', shape: [1, 1, 2, 3] }], null, () => f32([0, 1, 2, 3, 4, 5]));
    const expected = [
      72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116,
      121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58,
      91, 49, 44, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102,
      115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 32, 32, 32, 32, 32,
      32, 32, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0,
      160, 64,
    ];
    assert.deepEqual(Array.from(readFileSync(p)), expected);
  });

  test('test_empty: no tensors, with and without metadata', async () => {
    const p = out();
    await writeSafetensors(p, [], null, () => { throw new Error('not called'); });
    assert.deepEqual(Array.from(readFileSync(p)), [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    const q = out();
    await writeSafetensors(q, [], { framework: 'pt' }, () => { throw new Error('not called'); });
    assert.deepEqual(Array.from(readFileSync(q)), [
      40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95,
      95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112,
      116, 34, 125, 125, 32, 32, 32, 32, 32,
    ]);
  });
});

describe('layout', () => {
  test('tensors are sorted by the reference Dtype order (descending), then by name in UTF-8 byte order', async () => {
    // Expected order from `prepare` in safetensors/src/tensor.rs: right.dtype().cmp(&left.dtype()).then(lname.cmp(rname)),
    // with enum order BOOL < U8 < I8 < F8_E5M2 < F8_E4M3 < I16 < U16 < F16 < BF16 < I32 < U32 < F32 < F64 < I64 < U64.
    // Names compare as Rust strs (UTF-8 bytes): U+FF5E (ef bd be) < U+1F600 (f0 9f 98 80), the reverse of
    // JavaScript's UTF-16 order (d83d < ff5e).
    const specs: TensorSpec[] = [
      { name: 'z', dtype: 'F16', shape: [1] },
      { name: 'a', dtype: 'BF16', shape: [1] },
      { name: 'b', dtype: 'F64', shape: [1] },
      { name: 'c', dtype: 'I64', shape: [1] },
      { name: 'x', dtype: 'I32', shape: [1] },
      { name: 'y', dtype: 'F32', shape: [1] },
      { name: '\u{1f600}', dtype: 'F32', shape: [1] },
      { name: '\uff5e', dtype: 'F32', shape: [1] },
      { name: 'bool', dtype: 'BOOL', shape: [3] },
      { name: 'u8', dtype: 'U8', shape: [3] },
    ];
    const p = out();
    const calls: number[] = [];
    await writeSafetensors(p, specs, null, (spec, i) => {
      calls.push(i);
      assert.equal(spec, specs[i]);
      return new Uint8Array(spec.shape.reduce((a, b) => a * b, 1) * dtypeSize(spec.dtype));
    });
    const want = ['c', 'b', 'y', '\uff5e', '\u{1f600}', 'x', 'a', 'z', 'u8', 'bool'];
    const f = await openSafetensors(p);
    assert.deepEqual(f.tensors.map((t) => t.name), want);
    assert.deepEqual(calls, want.map((w) => specs.findIndex((s) => s.name === w)));
    let pos = 0;
    for (const t of f.tensors) { assert.equal(t.begin, pos); pos = t.end; }
    await f.close();
  });

  test('produce is called one tensor at a time, in file order', async () => {
    let active = 0;
    let maxActive = 0;
    const specs: TensorSpec[] = Array.from({ length: 6 }, (_, i) => ({ name: `t${i}`, dtype: 'F32', shape: [2] }));
    await writeSafetensors(out(), specs, null, async (_s, i) => {
      active++;
      maxActive = Math.max(maxActive, active);
      await new Promise((r) => setTimeout(r, 2));
      active--;
      return f32([i, -i]);
    });
    assert.equal(maxActive, 1);
  });
});

describe('round trips', () => {
  // Values exactly representable in F16, BF16, F32 and F64 (few significant bits, moderate exponents),
  // so the expected read-back is the input itself.
  const exact = [0, -0, 1, -1, 0.5, -2.25, 1024, 3.0517578125e-5, -0.00390625, 6, 48, Infinity, -Infinity];
  for (const dtype of ['F32', 'F16', 'BF16', 'F64'] as const) {
    for (const src of ['Float32Array', 'Float64Array'] as const) {
      test(`${dtype} from ${src}`, async () => {
        const p = out();
        const values = src === 'Float32Array' ? Float32Array.from(exact) : Float64Array.from(exact);
        // An odd-sized U8 tensor (sorted last) checks that the data section length is still exact.
        await writeSafetensors(p, [
          { name: 'v', dtype, shape: [exact.length] },
          { name: 'odd', dtype: 'U8', shape: [3] },
        ], { k: 'v' }, (s) => (s.name === 'v' ? values : Uint8Array.from([1, 2, 3])));
        const f = await openSafetensors(p);
        assert.deepEqual(Array.from(await f.readFloat64('v')), exact);
        assert.deepEqual(Array.from(await f.readFloat32('v')), exact);
        assert.deepEqual(Array.from(await f.readRaw('odd')), [1, 2, 3]);
        assert.deepEqual(f.metadata, { k: 'v' });
        assert.equal(f.headerLength % 8, 0);
        await f.close();
      });
    }
  }

  test('rounding on write: F16 and BF16 ties go to even (closed form)', async () => {
    const p = out();
    // 1 + 2^-11 is halfway between F16 1 and 1+2^-10 -> 1 (even); 1 + 3*2^-11 -> 1 + 2^-9 (even).
    // 1 + 2^-8 is halfway between BF16 1 and 1+2^-7 -> 1; 1 + 3*2^-8 -> 1 + 2^-6.
    await writeSafetensors(p, [
      { name: 'h', dtype: 'F16', shape: [2] },
      { name: 'b', dtype: 'BF16', shape: [2] },
    ], null, (s) => (s.name === 'h' ? Float64Array.from([1 + 2 ** -11, 1 + 3 * 2 ** -11]) : f32([1 + 2 ** -8, 1 + 3 * 2 ** -8])));
    const f = await openSafetensors(p);
    assert.deepEqual(Array.from(await f.readFloat64('h')), [1, 1 + 2 ** -9]);
    assert.deepEqual(Array.from(await f.readFloat64('b')), [1, 1 + 2 ** -6]);
    await f.close();
  });

  test('an independent python/numpy parser reads the same header layout and values', async (t) => {
    const p = out();
    const meta = { format: 'pt', note: 'quote " backslash \\ newline \n é 😀' };
    const specs: TensorSpec[] = [
      { name: 'lora.up.weight', dtype: 'F16', shape: [2, 3] },
      { name: 'lora.down.weight', dtype: 'F16', shape: [3, 2] },
      { name: 'alpha', dtype: 'F32', shape: [] },
      { name: 'big', dtype: 'F64', shape: [2] },
      { name: 'bf', dtype: 'BF16', shape: [1, 2] },
      { name: 'ids', dtype: 'U8', shape: [5] },
    ];
    const data: Record<string, Float32Array | Float64Array | Uint8Array> = {
      'lora.up.weight': f32([1, 2, 3, -4, 0.5, 0.25]),
      'lora.down.weight': Float64Array.from([-1, 0, 1, 2, 4, 8]),
      alpha: f32([8]),
      big: Float64Array.from([Math.PI, -1e300]),
      bf: f32([1.5, -3]),
      ids: Uint8Array.from([0, 1, 2, 254, 255]),
    };
    await writeSafetensors(p, specs, meta, (s) => data[s.name]);
    const r = runPython(PY_SAFETENSORS_DUMP, ['1', p]);
    if (!r.ok) { t.skip(r.reason); return; }
    const [dump] = JSON.parse(r.stdout);
    assert.equal(dump.header_len % 8, 0);
    assert.equal(dump.file_len, 8 + dump.header_len + 2 * 6 * 2 + 4 + 16 + 4 + 5);
    assert.match(dump.header_raw, /^\{"__metadata__":\{"format":"pt","note":"quote \\" backslash \\\\ newline \\n é 😀"\},"big":/);
    assert.match(dump.header_raw, /\} *$/);
    assert.deepEqual(dump.keys, ['__metadata__', 'big', 'alpha', 'bf', 'lora.down.weight', 'lora.up.weight', 'ids']);
    assert.deepEqual(dump.metadata, meta);
    let pos = 0;
    for (const k of dump.keys.slice(1)) {
      assert.equal(dump.tensors[k].offsets[0], pos, k);
      pos = dump.tensors[k].offsets[1];
    }
    for (const s of specs) {
      const e = dump.tensors[s.name];
      assert.equal(e.dtype, s.dtype);
      assert.deepEqual(e.shape, s.shape);
      assert.deepEqual(e.values, Array.from(data[s.name]), s.name);
    }
  });
});

describe('finalizeMetadata', () => {
  test('receives the SHA-256 of the data section; its entries are merged into the header', async () => {
    const p = out();
    let seen = '';
    const specs: TensorSpec[] = [
      { name: 'a', dtype: 'F16', shape: [1000] },
      { name: 'b', dtype: 'F32', shape: [3] },
    ];
    await writeSafetensors(p, specs, { ss_network_dim: '4' }, (s) => (s.name === 'a' ? Float32Array.from({ length: 1000 }, (_, i) => i / 7) : f32([1, 2, 3])), {
      finalizeMetadata: (sha) => { seen = sha; return { sshs_model_hash: sha, ss_network_dim: '8' }; },
    });
    // Independent: hash the bytes after the header as kohya's addnet_hash_safetensors does.
    const bytes = readFileSync(p);
    const hlen = Number(bytes.readBigUInt64LE(0));
    const want = createHash('sha256').update(bytes.subarray(8 + hlen)).digest('hex');
    assert.equal(seen, want);
    const f = await openSafetensors(p);
    assert.deepEqual(f.metadata, { ss_network_dim: '8', sshs_model_hash: want });
    assert.equal(f.headerLength % 8, 0);
    assert.deepEqual(Array.from(await f.readFloat32('b')), [1, 2, 3]);
    await f.close();
    assert.deepEqual(readdirSync(tmp.dir).filter((x) => x.endsWith('.tmp')), []);
  });
});

describe('failures leave nothing behind', () => {
  test('produce throwing midway: no target and no temp file, the error passes through', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const p = path.join(dir, 'big.safetensors');
      const boom = new Error('boom');
      const specs: TensorSpec[] = [0, 1, 2].map((i) => ({ name: `t${i}`, dtype: 'F32', shape: [1 << 20] }));
      for (const finalizeMetadata of [undefined, () => ({})]) {
        let calls = 0;
        await assert.rejects(writeSafetensors(p, specs, null, () => {
          if (++calls === 2) throw boom;
          return new Float32Array(1 << 20).fill(1);
        }, { finalizeMetadata }), (e) => e === boom);
        assert.deepEqual(readdirSync(dir), []);
      }
    } finally {
      cleanup();
    }
  });

  test('an existing file is untouched without force (produce never runs); replaced with force', async () => {
    const p = out();
    writeFileSync(p, 'precious');
    let called = false;
    const specs: TensorSpec[] = [{ name: 'a', dtype: 'F32', shape: [1] }];
    await assert.rejects(writeSafetensors(p, specs, null, () => { called = true; return f32([1]); }),
      (e) => e instanceof UsageError && e.message === `${p} exists; pass --force to overwrite`);
    assert.equal(called, false);
    assert.equal(readFileSync(p, 'utf8'), 'precious');
    await writeSafetensors(p, specs, null, () => f32([1]), { force: true });
    const f = await openSafetensors(p);
    assert.deepEqual(Array.from(await f.readFloat32('a')), [1]);
    await f.close();
  });

  test('wrong produce results are errors naming the tensor, and nothing is written', async () => {
    const p = out();
    const spec: TensorSpec = { name: 'w', dtype: 'F16', shape: [2, 2] };
    await assert.rejects(writeSafetensors(p, [spec], null, () => new Uint8Array(6)), /tensor "w" \(F16 \[2,2\]\) needs 8 bytes, produce returned 6/);
    await assert.rejects(writeSafetensors(p, [spec], null, () => f32([1, 2, 3])), /tensor "w" \(F16 \[2,2\]\) needs 4 values, produce returned 3/);
    await assert.rejects(writeSafetensors(p, [{ name: 'i', dtype: 'I32', shape: [1] }], null, () => f32([1])), /floats can only be encoded into F64\/F32\/F16\/BF16/);
    await assert.rejects(writeSafetensors(p, [spec, spec], null, () => new Uint8Array(8)), /duplicate tensor name "w"/);
    await assert.rejects(writeSafetensors(p, [{ ...spec, shape: [-1] }], null, () => new Uint8Array(0)), /shape must be non-negative integers/);
    await assert.rejects(writeSafetensors(p, [{ ...spec, name: '__metadata__' }], null, () => new Uint8Array(8)), /cannot be a tensor name/);
    await assert.rejects(writeSafetensors(p, [{ ...spec, name: 'bad\ud800' }], null, () => new Uint8Array(8)), /lone surrogate/);
    await assert.rejects(writeSafetensors(p, [], { n: 3 as unknown as string }, () => new Uint8Array(0)), /metadata value for "n" must be a string/);
    assert.deepEqual(readdirSync(tmp.dir).filter((x) => x === path.basename(p) || x.endsWith('.tmp')), []);
  });
});
