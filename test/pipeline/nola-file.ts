/**
 * Test-side access to NOLA files, written from docs/FORMAT.md and independent of src/: split a
 * safetensors file into header and tensors and put it back together, edit the document of either
 * format version, and rewrite a version-2 file as the version-1 file with the same content (so the
 * version-1 reader, which nola keeps for files of nola 0.1, stays under test).
 */
import { deflateSync, inflateSync } from 'node:zlib';

export interface HeaderEntry { dtype: string; shape: number[]; data_offsets: [number, number] }

export interface Framed {
  metadata: Record<string, string> | null;
  /** Tensors in file order. */
  tensors: Array<{ name: string; dtype: string; shape: number[]; data: Uint8Array }>;
}

/** null when `bytes` is not a parseable safetensors file. */
export function unframe(bytes: Uint8Array): Framed | null {
  if (bytes.length < 8) return null;
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true));
  if (n > bytes.length - 8) return null;
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
  if (typeof header !== 'object' || header === null) return null;
  const base = 8 + n;
  const metadata = (header.__metadata__ ?? null) as Record<string, string> | null;
  const entries = Object.entries(header).filter(([k]) => k !== '__metadata__') as Array<[string, HeaderEntry]>;
  if (entries.some(([, e]) => !Array.isArray(e?.data_offsets) || e.data_offsets[1] + base > bytes.length)) return null;
  entries.sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
  return {
    metadata,
    tensors: entries.map(([name, e]) => ({ name, dtype: e.dtype, shape: e.shape, data: bytes.subarray(base + e.data_offsets[0], base + e.data_offsets[1]) })),
  };
}

/** A safetensors file holding `f`: tensors contiguous in the given order, header padded with spaces to 8 bytes. */
export function frame(f: Framed): Uint8Array {
  const header: Record<string, unknown> = {};
  if (f.metadata !== null) header.__metadata__ = f.metadata;
  let offset = 0;
  for (const t of f.tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] };
    offset += t.data.length;
  }
  let text = Buffer.from(JSON.stringify(header), 'utf8');
  text = Buffer.concat([text, Buffer.alloc(-text.length & 7, 0x20)]);
  const out = new Uint8Array(8 + text.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  let at = 8 + text.length;
  for (const t of f.tensors) { out.set(t.data, at); at += t.data.length; }
  return out;
}

/**
 * `bytes` with its document text replaced by `edit(text)`: the `nola` metadata of a version-1 file,
 * the inflated document tensor of a version-2 file (deflated again afterwards). null when `bytes`
 * has no such structure.
 */
export function editDocumentText(bytes: Uint8Array, edit: (text: string) => string): Uint8Array | null {
  const f = unframe(bytes);
  if (f === null || typeof f.metadata?.nola !== 'string') return null;
  let envelope: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(f.metadata.nola) as unknown;
    // A mutated envelope may be any JSON value: only an object can name a document tensor.
    if (typeof parsed === 'object' && parsed !== null) envelope = parsed as Record<string, unknown>;
  } catch {
    // not JSON: edited as version-1 text below
  }
  const docTensor = f.tensors.find((t) => t.name === envelope.document);
  if ((envelope.format_version === 2 || envelope.format_version === 3) && docTensor !== undefined) {
    let text: string;
    try {
      text = inflateSync(docTensor.data).toString('utf8');
    } catch {
      return null;
    }
    docTensor.data = deflateSync(edit(text));
    docTensor.shape = [docTensor.data.length];
  } else {
    f.metadata = { ...f.metadata, nola: edit(f.metadata.nola) };
  }
  return frame(f);
}

/** `bytes` with its `nola` metadata text (for version 2 the short envelope) replaced by `edit(text)`. */
export function editEnvelopeText(bytes: Uint8Array, edit: (text: string) => string): Uint8Array | null {
  const f = unframe(bytes);
  if (f === null || typeof f.metadata?.nola !== 'string') return null;
  f.metadata = { ...f.metadata, nola: edit(f.metadata.nola) };
  return frame(f);
}

/** The document of a NOLA file as JSON: version 1 the metadata, version 2 the inflated body. */
export function documentJson(bytes: Uint8Array): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  editDocumentText(bytes, (text) => { out = JSON.parse(text) as Record<string, unknown>; return text; });
  if (out === undefined) throw new Error('not a NOLA file');
  return out;
}

/** Version-2 layer rows as objects named by the document's layer_fields, keys and dtypes filled in from the key styles. */
export function layerObjects(doc: Record<string, unknown>): Array<Record<string, unknown>> {
  const fields = doc.layer_fields as string[];
  const styles = doc.key_styles as Array<Record<string, unknown>>;
  return (doc.layers as unknown[][]).map((row) => {
    const e = Object.fromEntries(fields.map((f, i) => [f, row[i]])) as Record<string, unknown>;
    const style = styles[e.style as number];
    const name = e.name as string;
    for (const f of ['A', 'B', 'alpha']) {
      const p = style[f] as string | [string, string] | undefined;
      if (p !== undefined) e[`key_${f}`] = typeof p === 'string' ? p : p[0] + name + p[1];
    }
    for (const f of ['dtype_A', 'dtype_B', 'dtype_alpha']) if (style[f] !== undefined) e[f] = style[f];
    return e;
  });
}

const GROUP = 64;

function blockSizes(count: number, mode: string): { codes: number; scales: number; dtype: string; shape: number } {
  if (typeof mode !== 'string') throw new Error('version 1 has no quantization segments: this file has no version-1 rendering');
  if (mode === 'f32') return { codes: 4 * count, scales: 0, dtype: 'F32', shape: count };
  if (mode === 'f16' || mode === 'bf16') return { codes: 2 * count, scales: 0, dtype: mode.toUpperCase(), shape: count };
  const bits = Number(mode.slice(3));
  const codes = Math.ceil((count * bits) / 8);
  return { codes, scales: 2 * Math.ceil(count / GROUP), dtype: 'U8', shape: codes };
}

/** The version-1 file with the same layers, coefficients and passthrough tensors as the version-2 file `bytes`. */
export function toVersion1(bytes: Uint8Array): Uint8Array {
  const f = unframe(bytes);
  if (f === null) throw new Error('not a safetensors file');
  const envelope = JSON.parse(f.metadata!.nola) as Record<string, unknown>;
  if (envelope.format_version !== 2) throw new Error('not a version-2 NOLA file');
  const doc = documentJson(bytes);
  const coeffName = (doc.coeffs as { tensor: string }).tensor;
  const stream = f.tensors.find((t) => t.name === coeffName)!.data;
  const tensors = f.tensors.filter((t) => t.name !== coeffName && t.name !== envelope.document);
  let at = 0;
  const layers = layerObjects(doc).map((e, i) => {
    const shapeA = e.shape_A as number[];
    const out: Record<string, unknown> = {
      name: e.name, kind: e.kind, key_A: e.key_A, key_B: e.key_B,
      ...(e.key_alpha !== undefined ? { key_alpha: e.key_alpha, dtype_alpha: e.dtype_alpha } : {}),
      dtype_A: e.dtype_A, dtype_B: e.dtype_B,
      shape_A: shapeA, shape_B: [e.d_out, shapeA[0], ...shapeA.slice(2).map(() => 1)],
      source_rank: shapeA[0], rank: e.rank, d_in: shapeA.slice(1).reduce((p, d) => p * d, 1), d_out: e.d_out,
      ...(e.alpha !== null ? { alpha: e.alpha } : {}),
      source_scale: e.scale, scale: e.scale, basis: e.basis, seed_A: e.seed_A, seed_B: e.seed_B,
      num_basis_A: e.num_basis_A, num_basis_B: e.num_basis_B, quant_A: e.quant_A, quant_B: e.quant_B,
    };
    for (const factor of ['A', 'B']) {
      const s = blockSizes(e[`num_basis_${factor}`] as number, e[`quant_${factor}`] as string);
      const name = `nola.coeffs.${i}.${factor}`;
      tensors.push({ name, dtype: s.dtype, shape: [s.shape], data: stream.subarray(at, at + s.codes) });
      out[`coeffs_${factor}`] = name;
      at += s.codes;
      if (s.scales > 0) {
        tensors.push({ name: `${name}.scales`, dtype: 'F16', shape: [s.scales / 2], data: stream.subarray(at, at + s.scales) });
        out[`scales_${factor}`] = `${name}.scales`;
        at += s.scales;
      }
    }
    out.error = e.error;
    if (e.error_expanded !== null) out.error_expanded = e.error_expanded;
    return out;
  });
  const v1 = { format_version: 1, generator: envelope.generator, source: doc.source, layers, passthrough: doc.passthrough };
  return frame({ metadata: { ...f.metadata, nola: JSON.stringify(v1) }, tensors });
}
