/** Shared helpers for the io tests: a hand-rolled safetensors builder, temp dirs, and a python3 bridge. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root, found from this file's location (dist/test/io/helpers.js or test/io/helpers.ts). */
export function findRepoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (path.basename(dir) === 'test') {
      const parent = path.dirname(dir);
      return path.basename(parent) === 'dist' ? path.dirname(parent) : parent;
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error('repo root not found');
    dir = up;
  }
}

export const REAL_LORAS = path.resolve(findRepoRoot(), '../shared/real-loras');

export function makeTempDir(prefix = 'nola-io-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Builds safetensors bytes from a header given as raw JSON text and a data section, independently of
 * src/io/safetensors/writer.ts, so reader tests do not depend on the writer. `pad` adds trailing spaces.
 */
export function buildFile(headerJson: string, data: Uint8Array = new Uint8Array(0), pad = 0): Buffer {
  const header = Buffer.from(headerJson + ' '.repeat(pad), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([len, header, data]);
}

export interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** JSON text for a header built from entries, in the given order. */
export function headerJson(entries: Record<string, HeaderEntry>, metadata?: Record<string, string>): string {
  const obj: Record<string, unknown> = {};
  if (metadata) obj.__metadata__ = metadata;
  Object.assign(obj, entries);
  return JSON.stringify(obj);
}

/** Little-endian F32 bytes of the given numbers (via DataView: independent of the code under test). */
export function f32Bytes(values: number[]): Uint8Array {
  const out = new Uint8Array(4 * values.length);
  const dv = new DataView(out.buffer);
  values.forEach((v, i) => dv.setFloat32(4 * i, v, true));
  return out;
}

export interface PythonResult { ok: true; stdout: string }
export interface PythonMissing { ok: false; reason: string }

let pythonProbe: PythonMissing | null | undefined;

/** Runs `python3 -c code` with numpy available; `ok: false` when python3 or numpy is missing. */
export function runPython(code: string, args: string[] = [], input?: string): PythonResult | PythonMissing {
  if (pythonProbe === undefined) {
    const probe = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
    pythonProbe = probe.error || probe.status !== 0
      ? { ok: false, reason: 'python3 with numpy is not available' }
      : null;
  }
  if (pythonProbe) return pythonProbe;
  const r = spawnSync('python3', ['-c', code, ...args], { encoding: 'utf8', input, maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`python3 failed (${r.status}): ${r.stderr}`);
  return { ok: true, stdout: r.stdout };
}

/**
 * A tiny safetensors parser in pure python + numpy, independent of ours. Prints one JSON document:
 * [{header_len, header_raw, file_len, keys (header order), metadata?, tensors: {name: {dtype, shape, offsets,
 * count, sum, sumsq, values?}}}], one per file; NaN/±Inf are spelled 'nan'/'inf'/'-inf'.
 * BF16 is decoded as uint16 << 16 viewed as float32.
 */
export const PY_SAFETENSORS_DUMP = `
import sys, json, struct, math
import numpy as np
def enc(x):
    # JSON has no NaN/Infinity: spell them as strings.
    if math.isnan(x): return 'nan'
    if math.isinf(x): return 'inf' if x > 0 else '-inf'
    return x
def main(p, want_values):
    with open(p, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    text = raw[8:8+n].decode('utf-8')
    pairs = json.loads(text, object_pairs_hook=lambda kv: kv)
    data = raw[8+n:]
    out = {'header_len': n, 'header_raw': text, 'file_len': len(raw), 'keys': [k for k, _ in pairs], 'tensors': {}}
    np_types = {'F64': '<f8', 'F32': '<f4', 'F16': '<f2', 'I64': '<i8', 'I32': '<i4', 'I16': '<i2', 'I8': 'i1', 'U8': 'u1'}
    for k, v in pairs:
        if k == '__metadata__':
            out['metadata'] = dict(v)
            continue
        v = dict(v)
        b, e = v['data_offsets']
        chunk = data[b:e]
        if v['dtype'] == 'BF16':
            arr = (np.frombuffer(chunk, dtype='<u2').astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(chunk, dtype=np_types[v['dtype']])
        entry = {'dtype': v['dtype'], 'shape': v['shape'], 'offsets': [b, e], 'count': int(arr.size)}
        a64 = arr.astype(np.float64)
        entry['sum'] = enc(float(a64.sum())) if arr.size else 0.0
        entry['sumsq'] = enc(float((a64 * a64).sum())) if arr.size else 0.0
        if want_values:
            entry['values'] = [enc(x) for x in a64.tolist()]
        out['tensors'][k] = entry
    return out
want = sys.argv[1] == '1'
print(json.dumps([main(p, want) for p in sys.argv[2:]]))
`;
