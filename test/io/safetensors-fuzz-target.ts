/** The safetensors reader as a fuzz target: valid seed files built in code, and the consistency check. */
import { writeFile } from 'node:fs/promises';
import { FormatError } from '../../src/errors.js';
import { dtypeSize } from '../../src/io/safetensors/dtypes.js';
import { openSafetensors } from '../../src/io/safetensors/reader.js';
import type { CheckResult } from './fuzz-core.js';
import { buildFile, f32Bytes, headerJson } from './helpers.js';

/** Small valid files covering every dtype, metadata, 0-d and empty tensors, odd header lengths. */
export function safetensorsSeeds(): Uint8Array[] {
  const seeds: Uint8Array[] = [];
  // F32 + F16 with metadata, header padded to 8.
  seeds.push(buildFile(headerJson({
    'a.weight': { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] },
    'b.bias': { dtype: 'F16', shape: [3], data_offsets: [16, 22] },
  }, { format: 'pt' }), Buffer.concat([f32Bytes([1, 2, 3, 4]), Buffer.from([0, 0x3c, 0, 0xc0, 0, 0x38])]), 2));
  // Every dtype once, listed out of offset order, odd header length.
  const dtypes = ['F64', 'I64', 'U64', 'F32', 'I32', 'U32', 'BF16', 'F16', 'I16', 'U16', 'I8', 'U8', 'BOOL', 'F8_E4M3', 'F8_E5M2'] as const;
  const entries: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> = {};
  let off = 0;
  for (const [i, d] of dtypes.entries()) {
    const n = 1 + (i % 3);
    entries[`t${i}.${d}`] = { dtype: d, shape: [n], data_offsets: [off, off + n * dtypeSize(d)] };
    off += n * dtypeSize(d);
  }
  const reversed = Object.fromEntries(Object.entries(entries).reverse());
  seeds.push(buildFile(headerJson(reversed, { a: '1', b: 'two' }), Uint8Array.from({ length: off }, (_, i) => (i * 37) & 0xff), 1));
  // Empty file and an empty-metadata file.
  seeds.push(buildFile('{}', new Uint8Array(0), 6));
  seeds.push(buildFile('{"__metadata__":{}}'));
  // 0-d alpha + empty tensor + BF16 and F64 at unaligned offsets.
  const data = Buffer.alloc(4 + 3 + 8 + 4);
  data.writeFloatLE(8, 0);
  data.set([1, 2, 3], 4);
  data.writeDoubleLE(-0.5, 7);
  data.writeUInt16LE(0x3fc0, 15);
  data.writeUInt16LE(0x7fc0, 17); // BF16 NaN
  seeds.push(buildFile(headerJson({
    alpha: { dtype: 'F32', shape: [], data_offsets: [0, 4] },
    empty: { dtype: 'F16', shape: [0, 4], data_offsets: [4, 4] },
    u: { dtype: 'U8', shape: [3], data_offsets: [4, 7] },
    d: { dtype: 'F64', shape: [1, 1], data_offsets: [7, 15] },
    bf: { dtype: 'BF16', shape: [2], data_offsets: [15, 19] },
  }), data));
  // Many small tensors (LoRA-like names).
  const many: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> = {};
  for (let i = 0; i < 12; i++) {
    many[`lora_unet_block_${i}.lora_${i % 2 ? 'up' : 'down'}.weight`] = { dtype: 'F16', shape: [2, 2], data_offsets: [8 * i, 8 * i + 8] };
  }
  seeds.push(buildFile(headerJson(many, { ss_network_dim: '2', ss_network_alpha: '1.0' }), new Uint8Array(96).fill(0x3c), 3));
  return seeds;
}

/**
 * Writes the bytes to `scratch` and opens them. A FormatError at open is a clean rejection. A file that
 * opens must be self-consistent: tensors tile the data section, every tensor reads back as the exact
 * bytes at its offsets, and the float views have one value per element. Anything else throws.
 */
export function makeSafetensorsCheck(scratch: string): (bytes: Uint8Array) => Promise<CheckResult> {
  return async (bytes) => {
    await writeFile(scratch, bytes);
    let f;
    try {
      f = await openSafetensors(scratch);
    } catch (err) {
      if (err instanceof FormatError && !err.message.includes('\n') && err.message.startsWith(`${scratch}: `)) return 'clean-error';
      throw err;
    }
    try {
      if (f.fileSize !== bytes.length || f.dataStart !== 8 + f.headerLength) throw new Error('inconsistent sizes');
      if (f.metadata !== null && Object.values(f.metadata).some((v) => typeof v !== 'string')) throw new Error('non-string metadata');
      const sorted = [...f.tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
      let pos = 0;
      for (const t of sorted) {
        if (t.begin !== pos) throw new Error(`tensor ${t.name} not contiguous`);
        pos = t.end;
        const numel = t.shape.reduce((p, d) => p * d, 1);
        if (t.end - t.begin !== numel * dtypeSize(t.dtype)) throw new Error(`tensor ${t.name} size mismatch`);
        const raw = await f.readRaw(t.name);
        const expected = bytes.subarray(f.dataStart + t.begin, f.dataStart + t.end);
        if (!Buffer.from(expected).equals(raw)) throw new Error(`tensor ${t.name} bytes differ`);
        const a = await f.readFloat32(t.name);
        const b = await f.readFloat64(t.name);
        if (a.length !== numel || b.length !== numel) throw new Error(`tensor ${t.name} decoded length`);
        for (let i = 0; i < numel; i++) {
          if (!(Object.is(a[i], Math.fround(b[i])) || (Number.isNaN(a[i]) && Number.isNaN(b[i])))) {
            throw new Error(`tensor ${t.name}[${i}]: float32 ${a[i]} vs float64 ${b[i]}`);
          }
        }
      }
      if (f.dataStart + pos !== f.fileSize) throw new Error('data section not covered');
      if (new Set(f.tensors.map((t) => t.name)).size !== f.tensors.length) throw new Error('duplicate names accepted');
    } finally {
      await f.close();
    }
    return 'ok';
  };
}
