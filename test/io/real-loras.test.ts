/** The published LoRA files in ../shared/real-loras (see its MANIFEST.md) through the reader and writer. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { openSafetensors } from '../../src/io/safetensors/reader.js';
import { writeSafetensors } from '../../src/io/safetensors/writer.js';
import { makeTempDir, PY_SAFETENSORS_DUMP, REAL_LORAS, runPython } from './helpers.js';

const files = existsSync(REAL_LORAS)
  ? readdirSync(REAL_LORAS, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .flatMap((d) => readdirSync(path.join(REAL_LORAS, d.name)).filter((f) => f.endsWith('.safetensors')).map((f) => path.join(REAL_LORAS, d.name, f)))
    .sort()
  : [];
const skip = files.length === 0 && `no real LoRA files under ${REAL_LORAS}`;

let tmp: { dir: string; cleanup: () => void };
before(() => { tmp = makeTempDir(); });
after(() => tmp.cleanup());

describe('real LoRA files', { skip }, () => {
  test('all six files are found, including ones whose header length is not a multiple of 8', async () => {
    assert.equal(files.length, 6);
    const odd: string[] = [];
    for (const p of files) {
      const f = await openSafetensors(p);
      if (f.headerLength % 8 !== 0) odd.push(path.basename(path.dirname(p)));
      await f.close();
    }
    // From MANIFEST.md (reject-lycoris-lokr) and the file bytes (cloneofsimo's header is 35033 bytes).
    assert.deepEqual(odd.sort(), ['reject-cloneofsimo', 'reject-lycoris-lokr']);
  });

  test('the raw tensors, in offset order, are exactly the data section of the file', async () => {
    for (const p of files) {
      const bytes = readFileSync(p);
      const f = await openSafetensors(p);
      const sorted = [...f.tensors].sort((a, b) => a.begin - b.begin);
      const parts = await Promise.all(sorted.map((t) => f.readRaw(t.name)));
      assert.ok(Buffer.concat(parts).equals(bytes.subarray(f.dataStart)), p);
      assert.equal(f.fileSize, bytes.length);
      await f.close();
    }
  });

  test('names, dtypes, shapes, offsets, metadata and value sums agree with an independent python/numpy parser', async (t) => {
    const r = runPython(PY_SAFETENSORS_DUMP, ['0', ...files]);
    if (!r.ok) { t.skip(r.reason); return; }
    const dumps = JSON.parse(r.stdout) as Array<{
      header_len: number; keys: string[]; metadata?: Record<string, string>;
      tensors: Record<string, { dtype: string; shape: number[]; offsets: [number, number]; sum: number; sumsq: number; count: number }>;
    }>;
    for (const [i, p] of files.entries()) {
      const d = dumps[i];
      const f = await openSafetensors(p);
      assert.equal(f.headerLength, d.header_len);
      assert.deepEqual(f.tensors.map((x) => x.name), d.keys.filter((k) => k !== '__metadata__'));
      assert.deepEqual(f.metadata, d.metadata ?? null);
      for (const info of f.tensors) {
        const e = d.tensors[info.name];
        assert.deepEqual([info.dtype, info.shape, [info.begin, info.end]], [e.dtype, e.shape, e.offsets]);
        const v = await f.readFloat64(info.name);
        assert.equal(v.length, e.count);
        let sum = 0;
        let sumsq = 0;
        for (const x of v) { sum += x; sumsq += x * x; }
        // Same values in both; only the summation order differs (numpy sums pairwise).
        const tol = 1e-12 * Math.sqrt(v.length * e.sumsq) + 1e-300;
        assert.ok(Math.abs(sum - e.sum) <= tol, `${info.name}: ${sum} vs ${e.sum}`);
        assert.ok(Math.abs(sumsq - e.sumsq) <= 1e-12 * e.sumsq + 1e-300, `${info.name}: ${sumsq} vs ${e.sumsq}`);
        const single = await f.readFloat32(info.name);
        assert.deepEqual(single, Float32Array.from(v)); // every stored dtype here fits a float exactly
      }
      await f.close();
    }
  });

  test('rewriting each file with our writer keeps every tensor byte-for-byte, and metadata', async () => {
    for (const p of files) {
      const src = await openSafetensors(p);
      const dst = path.join(tmp.dir, path.basename(path.dirname(p)) + '.safetensors');
      await writeSafetensors(dst, src.tensors.map(({ name, dtype, shape }) => ({ name, dtype, shape })), src.metadata, (s) => src.readRaw(s.name));
      const back = await openSafetensors(dst);
      assert.equal(back.headerLength % 8, 0);
      assert.deepEqual(back.metadata, src.metadata);
      assert.deepEqual(back.tensors.map((t) => t.name).sort(), src.tensors.map((t) => t.name).sort());
      for (const t of src.tensors) {
        assert.deepEqual(back.get(t.name)?.shape, t.shape);
        assert.ok((await back.readRaw(t.name)).equals(await src.readRaw(t.name)), `${p}: ${t.name}`);
      }
      await back.close();
      await src.close();
    }
  });
});
