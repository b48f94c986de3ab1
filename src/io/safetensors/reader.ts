/**
 * Strict, streaming safetensors reader.
 *
 * Only the 8-byte length and the header are read at open; tensor bytes are read by offset on demand, so
 * a multi-gigabyte file is never held in memory. The checks mirror the reference Rust crate
 * (safetensors/src/tensor.rs, `read_metadata` + `Metadata::validate`) and add the ones JavaScript needs
 * because `JSON.parse` keeps the last of duplicate keys and rounds integers above 2^53: the header is
 * parsed by the small strict parser below, which sees every key and every number's digits.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { constants as bufferConstants } from 'node:buffer';
import { constants as fsConstants } from 'node:fs';
import { FormatError, IoError } from '../../errors.js';
import {
  ALL_DTYPES, decodeToFloat32, decodeToFloat64, dtypeSize, isDType, type DType,
} from './dtypes.js';
import type { SafetensorsFile, SafetensorsLimits, TensorInfo } from './types.js';

export const DEFAULT_LIMITS: Readonly<SafetensorsLimits> = {
  maxHeaderBytes: 100_000_000, // the reference crate's MAX_HEADER_SIZE
  maxTensors: 100_000,
};

/** serde_json's default recursion limit; a header never needs more than 3 levels. */
const MAX_JSON_DEPTH = 128;

const PICKLE_HINT =
  'this is a PyTorch .bin/pickle checkpoint, not safetensors; convert it first, e.g. python -c ' +
  '"import torch; from safetensors.torch import save_file; ' +
  "save_file(torch.load('adapter_model.bin'), 'adapter_model.safetensors')\"";

const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export async function openSafetensors(path: string, limits?: Partial<SafetensorsLimits>): Promise<SafetensorsFile> {
  const lim: SafetensorsLimits = { ...DEFAULT_LIMITS, ...limits };
  const fail = (msg: string): never => { throw new FormatError(`${path}: ${msg}`); };
  let fh: FileHandle;
  try {
    // Non-blocking: opening a FIFO for reading would otherwise wait for a writer forever (checked below).
    fh = await open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (err) {
    throw ioError(path, err, 'cannot open');
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new IoError(`${path}: ${st.isDirectory() ? 'is a directory' : 'is not a regular file'}`);
    const fileSize = st.size;
    const head = await readExactly(fh, path, 0, Math.min(fileSize, 16), 'the header length');
    const pickle = looksLikeTorchCheckpoint(head, lim);
    // The hint replaces only the errors a pickle would trigger before the JSON is even looked at.
    const failHeader = (msg: string): never => fail(pickle ? PICKLE_HINT : msg);

    if (fileSize < 8) failHeader(`file is ${fileSize} bytes, too short for a safetensors header (needs at least 8)`);
    const n = head.readBigUInt64LE(0);
    if (n > BigInt(lim.maxHeaderBytes)) failHeader(`header length ${n} exceeds the limit of ${lim.maxHeaderBytes} bytes`);
    const headerLength = Number(n);
    if (8 + headerLength > fileSize) {
      failHeader(`header length ${headerLength} runs past the end of the file (${fileSize} bytes)`);
    }
    if (headerLength === 0 || head[8] !== 0x7b) {
      failHeader(`header does not start with '{' (${headerLength === 0 ? 'it is empty' : `first byte is 0x${head[8].toString(16).padStart(2, '0')}`})`);
    }
    const headerBytes = await readExactly(fh, path, 8, headerLength, 'the header');
    const { metadata, tensors } = parseHeader(headerBytes, lim, fail);
    checkLayout(tensors, fileSize - 8 - headerLength, fail);
    return new OpenSafetensors(fh, path, fileSize, headerLength, metadata, tensors);
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

/**
 * PyTorch's zip container (torch.save since 1.6) or a bare pickle (protocol 2-5). A safetensors file
 * whose header length happens to start with the same two bytes (e.g. 640 = 80 02 00..) is told apart by
 * a plausible length followed by '{'.
 */
function looksLikeTorchCheckpoint(head: Buffer, lim: SafetensorsLimits): boolean {
  if (head.length >= 9 && head[8] === 0x7b && head.readBigUInt64LE(0) <= BigInt(lim.maxHeaderBytes)) return false;
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return true;
  return head.length >= 2 && head[0] === 0x80 && head[1] >= 2 && head[1] <= 5;
}

function ioError(path: string, err: unknown, what: string): Error {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT': return new IoError(`${path}: no such file`);
    case 'EACCES':
    case 'EPERM': return new IoError(`${path}: permission denied`);
    case 'EISDIR': return new IoError(`${path}: is a directory`);
    case 'ENOTDIR': return new IoError(`${path}: a parent of this path is not a folder`);
    case 'EMFILE':
    case 'ENFILE': return new IoError(`${path}: too many open files`);
    case 'EIO': return new IoError(`${path}: input/output error`);
    default:
      if (code) return new IoError(`${path}: ${what} failed (${code})`);
      return err instanceof Error ? err : new Error(String(err));
  }
}

/** Reads `length` bytes at `position`, looping over short reads; a file that shrank is a FormatError. */
async function readExactly(fh: FileHandle, path: string, position: number, length: number, what: string, into?: Uint8Array): Promise<Buffer> {
  const buf = into ? Buffer.from(into.buffer, into.byteOffset, into.byteLength) : Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(buf, done, length - done, position + done));
    } catch (err) {
      throw ioError(path, err, `reading ${what}`);
    }
    if (bytesRead === 0) {
      throw new FormatError(`${path}: file ended while reading ${what} (${done} of ${length} bytes; did it change while open?)`);
    }
    done += bytesRead;
  }
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Header: strict JSON, then schema

class JsonNumber { constructor(readonly text: string) {} }
class JsonObject { constructor(readonly entries: Array<[string, JsonValue]>) {} }
type JsonValue = string | boolean | null | JsonNumber | JsonObject | JsonValue[];

/**
 * A small JSON parser that rejects duplicate keys at every level, lone surrogate escapes (not valid
 * UTF-8, so the name could not be written back) and nesting beyond MAX_JSON_DEPTH, and keeps number
 * lexemes so integers can be checked exactly.
 */
class StrictJson {
  private i = 0;
  private rootTensors = 0;
  /** maxTensors: most tensors the root object may list, refused while parsing, before the rest is built. */
  constructor(private readonly s: string, private readonly fail: (msg: string) => never, private readonly maxTensors = Infinity) {}

  parseObjectDocument(): JsonObject {
    const v = this.value(0, null);
    this.ws();
    if (this.i < this.s.length) this.syntax(`unexpected ${this.describe()} after the closing '}'`);
    if (!(v instanceof JsonObject)) return this.fail('header is not a JSON object');
    return v;
  }

  private syntax(msg: string): never {
    return this.fail(`header is not valid JSON: ${msg} at character ${this.i}`);
  }

  private describe(): string {
    if (this.i >= this.s.length) return 'end of header';
    const c = this.s[this.i];
    return /^[\x21-\x7e]$/.test(c) ? `'${c}'` : `character U+${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  }

  private ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.i++;
      else break;
    }
  }

  private value(depth: number, parentKey: string | null): JsonValue {
    if (depth > MAX_JSON_DEPTH) this.fail(`header nests deeper than ${MAX_JSON_DEPTH} levels`);
    this.ws();
    const c = this.s[this.i];
    switch (c) {
      case '{': return this.object(depth, parentKey);
      case '[': return this.array(depth, parentKey);
      case '"': return this.string();
      case 't': return this.literal('true', true);
      case 'f': return this.literal('false', false);
      case 'n': return this.literal('null', null);
      default:
        if (c === '-' || (c >= '0' && c <= '9')) return this.number();
        return this.syntax(`unexpected ${this.describe()}`);
    }
  }

  private literal<T extends boolean | null>(word: string, v: T): T {
    if (!this.s.startsWith(word, this.i)) this.syntax(`unexpected ${this.describe()}`);
    this.i += word.length;
    return v;
  }

  private static readonly NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

  private number(): JsonNumber {
    const re = StrictJson.NUMBER;
    re.lastIndex = this.i;
    const m = re.exec(this.s);
    if (!m) return this.syntax('malformed number');
    this.i += m[0].length;
    return new JsonNumber(m[0]);
  }

  private string(): string {
    const s = this.s;
    this.i++; // opening quote
    let out = '';
    let start = this.i;
    for (;;) {
      if (this.i >= s.length) return this.syntax('unterminated string');
      const c = s.charCodeAt(this.i);
      if (c === 0x22) {
        out += s.slice(start, this.i);
        this.i++;
        return out;
      }
      if (c === 0x5c) {
        out += s.slice(start, this.i);
        out += this.escape();
        start = this.i;
      } else if (c < 0x20) {
        return this.syntax('control character in string');
      } else {
        this.i++;
      }
    }
  }

  private escape(): string {
    const s = this.s;
    const e = s[this.i + 1];
    this.i += 2;
    switch (e) {
      case '"': return '"';
      case '\\': return '\\';
      case '/': return '/';
      case 'b': return '\b';
      case 'f': return '\f';
      case 'n': return '\n';
      case 'r': return '\r';
      case 't': return '\t';
      case 'u': {
        const hi = this.hex4();
        if (hi >= 0xdc00 && hi <= 0xdfff) this.syntax('lone low surrogate escape');
        if (hi < 0xd800 || hi > 0xdbff) return String.fromCharCode(hi);
        if (s[this.i] !== '\\' || s[this.i + 1] !== 'u') this.syntax('lone high surrogate escape');
        this.i += 2;
        const lo = this.hex4();
        if (lo < 0xdc00 || lo > 0xdfff) this.syntax('lone high surrogate escape');
        return String.fromCharCode(hi, lo);
      }
      default:
        this.i -= 1;
        return this.syntax('invalid escape');
    }
  }

  private hex4(): number {
    const h = this.s.slice(this.i, this.i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) this.syntax('invalid \\u escape');
    this.i += 4;
    return parseInt(h, 16);
  }

  private array(depth: number, parentKey: string | null): JsonValue[] {
    this.i++;
    const out: JsonValue[] = [];
    this.ws();
    if (this.s[this.i] === ']') { this.i++; return out; }
    for (;;) {
      out.push(this.value(depth + 1, parentKey));
      this.ws();
      const c = this.s[this.i];
      if (c === ',') { this.i++; continue; }
      if (c === ']') { this.i++; return out; }
      return this.syntax(`expected ',' or ']' but found ${this.describe()}`);
    }
  }

  private object(depth: number, parentKey: string | null): JsonObject {
    this.i++;
    const entries: Array<[string, JsonValue]> = [];
    const seen = new Set<string>();
    this.ws();
    if (this.s[this.i] === '}') { this.i++; return new JsonObject(entries); }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') return this.syntax(`expected a key but found ${this.describe()}`);
      const key = this.string();
      if (seen.has(key)) {
        this.fail(parentKey === null
          ? `header has duplicate key ${JSON.stringify(key)}`
          : `header has duplicate key ${JSON.stringify(key)} inside ${JSON.stringify(parentKey)}`);
      }
      seen.add(key);
      this.ws();
      if (this.s[this.i] !== ':') return this.syntax(`expected ':' but found ${this.describe()}`);
      this.i++;
      entries.push([key, this.value(depth + 1, key)]);
      if (depth === 0 && key !== '__metadata__' && ++this.rootTensors > this.maxTensors) {
        this.fail(`header lists more than ${this.maxTensors} tensors, the limit (stopped reading it there)`);
      }
      this.ws();
      const c = this.s[this.i];
      if (c === ',') { this.i++; continue; }
      if (c === '}') { this.i++; return new JsonObject(entries); }
      return this.syntax(`expected ',' or '}' but found ${this.describe()}`);
    }
  }
}

interface ParsedHeader {
  metadata: Record<string, string> | null;
  tensors: TensorInfo[];
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const TENSOR_FIELDS = ['dtype', 'shape', 'data_offsets'] as const;

function parseHeader(bytes: Uint8Array, lim: SafetensorsLimits, fail: (msg: string) => never): ParsedHeader {
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    return fail('header is not valid UTF-8');
  }
  const root = new StrictJson(text, fail, lim.maxTensors).parseObjectDocument();
  const tensorCount = root.entries.length - (root.entries.some(([k]) => k === '__metadata__') ? 1 : 0);
  if (tensorCount > lim.maxTensors) fail(`header lists ${tensorCount} tensors, more than the limit of ${lim.maxTensors}`);

  let metadata: Record<string, string> | null = null;
  const tensors: TensorInfo[] = [];
  for (const [key, value] of root.entries) {
    if (key === '__metadata__') metadata = parseMetadata(value, fail);
    else tensors.push(parseTensorEntry(key, value, fail));
  }
  return { metadata, tensors };
}

function parseMetadata(value: JsonValue, fail: (msg: string) => never): Record<string, string> | null {
  // The reference reads `__metadata__` as Option<HashMap<String, String>>, so null means "none".
  if (value === null) return null;
  if (!(value instanceof JsonObject)) return fail(`__metadata__ must be an object of strings, not ${jsonKind(value)}`);
  for (const [k, v] of value.entries) {
    if (typeof v !== 'string') fail(`__metadata__ value for ${JSON.stringify(k)} must be a string, not ${jsonKind(v)}`);
  }
  // fromEntries defines own properties, so a "__proto__" key stays data instead of changing the prototype.
  return Object.fromEntries(value.entries) as Record<string, string>;
}

function jsonKind(v: JsonValue): string {
  if (v === null) return 'null';
  if (v instanceof JsonNumber) return `a number (${v.text})`;
  if (v instanceof JsonObject) return 'an object';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'boolean') return `a boolean (${v})`;
  return `a string (${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v)})`;
}

function parseTensorEntry(name: string, value: JsonValue, fail: (msg: string) => never): TensorInfo {
  const t = `tensor ${JSON.stringify(name)}`;
  if (!(value instanceof JsonObject)) return fail(`${t} must be an object with dtype, shape and data_offsets, not ${jsonKind(value)}`);
  const fields = new Map(value.entries);
  for (const k of fields.keys()) {
    if (!(TENSOR_FIELDS as readonly string[]).includes(k)) fail(`${t} has unexpected field ${JSON.stringify(k)}`);
  }
  for (const k of TENSOR_FIELDS) if (!fields.has(k)) fail(`${t} is missing "${k}"`);

  const dtype = fields.get('dtype') as JsonValue;
  if (typeof dtype !== 'string') return fail(`${t} dtype must be a string, not ${jsonKind(dtype)}`);
  if (!isDType(dtype)) return fail(`${t} has unknown dtype ${JSON.stringify(dtype)} (known: ${ALL_DTYPES.join(', ')})`);

  const shapeV = fields.get('shape') as JsonValue;
  if (!Array.isArray(shapeV)) return fail(`${t} shape must be an array of integers, not ${jsonKind(shapeV)}`);
  const shape = shapeV.map((d, i) => exactInteger(d, `${t} shape[${i}]`, fail));

  const offV = fields.get('data_offsets') as JsonValue;
  if (!Array.isArray(offV) || offV.length !== 2) {
    return fail(`${t} data_offsets must be an array of two integers, not ${Array.isArray(offV) ? `${offV.length} values` : jsonKind(offV)}`);
  }
  const begin = exactInteger(offV[0], `${t} data_offsets[0]`, fail);
  const end = exactInteger(offV[1], `${t} data_offsets[1]`, fail);
  return { name, dtype, shape, begin, end };
}

/** A non-negative integer written in plain digits, at most 2^53 - 1 (so it survives as a JS number). */
function exactInteger(v: JsonValue, what: string, fail: (msg: string) => never): number {
  if (!(v instanceof JsonNumber)) return fail(`${what} must be a non-negative integer, not ${jsonKind(v)}`);
  const text = v.text;
  if (text.startsWith('-')) return fail(`${what} is negative (${text})`);
  if (!/^[0-9]+$/.test(text)) return fail(`${what} is not an integer (${text})`);
  if (text.length >= 16 && BigInt(text) > BigInt(Number.MAX_SAFE_INTEGER)) {
    return fail(`${what} is ${text}, above 2^53 - 1`);
  }
  return Number(text);
}

/**
 * The reference layout rules: sorted by offsets, tensors tile the data section from 0 with no gap or
 * overlap, each covers exactly dtype size x product(shape) bytes, and the last one ends at end of file.
 */
function checkLayout(tensors: readonly TensorInfo[], dataLength: number, fail: (msg: string) => never): number {
  for (const t of tensors) {
    if (t.end < t.begin) fail(`tensor ${JSON.stringify(t.name)} has data_offsets [${t.begin},${t.end}]: end is before begin`);
  }
  const order = tensors.map((_, i) => i).sort((a, b) => tensors[a].begin - tensors[b].begin || tensors[a].end - tensors[b].end);
  let pos = 0;
  for (const i of order) {
    const t = tensors[i];
    const q = JSON.stringify(t.name);
    if (t.begin > pos) {
      fail(pos === 0
        ? `tensor ${q} starts at data offset ${t.begin}, but the first tensor must start at 0`
        : `gap of ${t.begin - pos} bytes before tensor ${q}: it starts at ${t.begin}, the previous tensor ends at ${pos}`);
    }
    if (t.begin < pos) fail(`tensor ${q} overlaps the previous one: it starts at ${t.begin}, the previous tensor ends at ${pos}`);
    const numel = t.shape.reduce((p, d) => p * BigInt(d), 1n);
    const need = numel * BigInt(dtypeSize(t.dtype));
    const have = t.end - t.begin;
    if (BigInt(have) !== need) fail(`tensor ${q} has ${have} bytes but ${t.dtype} [${t.shape.join(',')}] needs ${need}`);
    pos = t.end;
  }
  if (pos < dataLength) fail(`data section is ${dataLength} bytes but the tensors end at ${pos} (${dataLength - pos} trailing bytes)`);
  if (pos > dataLength) fail(`file is truncated: the tensors need ${pos} bytes of data but only ${dataLength} follow the header`);
  return pos;
}

// ---------------------------------------------------------------------------------------------

class OpenSafetensors implements SafetensorsFile {
  readonly dataStart: number;
  private readonly byName: Map<string, TensorInfo>;
  private closed = false;

  constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    readonly fileSize: number,
    readonly headerLength: number,
    readonly metadata: Record<string, string> | null,
    readonly tensors: readonly TensorInfo[],
  ) {
    this.dataStart = 8 + headerLength;
    this.byName = new Map(tensors.map((t) => [t.name, t]));
  }

  get(name: string): TensorInfo | undefined {
    return this.byName.get(name);
  }

  private info(name: string): TensorInfo {
    if (this.closed) throw new Error(`${this.path}: read after close`);
    const t = this.byName.get(name);
    if (!t) throw new FormatError(`${this.path}: no tensor named ${JSON.stringify(name)}`);
    const len = t.end - t.begin;
    if (len > bufferConstants.MAX_LENGTH) {
      throw new FormatError(`${this.path}: tensor ${JSON.stringify(name)} is ${len} bytes, more than one buffer can hold here`);
    }
    return t;
  }

  private async readInto(t: TensorInfo, into?: Uint8Array): Promise<Buffer> {
    const len = t.end - t.begin;
    return readExactly(this.fh, this.path, this.dataStart + t.begin, len, `tensor ${JSON.stringify(t.name)}`, into);
  }

  async readRaw(name: string): Promise<Buffer> {
    return this.readInto(this.info(name));
  }

  /** Bytes [offset, offset + length) of one tensor's data. */
  async readRange(name: string, offset: number, length: number): Promise<Buffer> {
    const t = this.info(name);
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > t.end - t.begin) {
      throw new FormatError(`${this.path}: bytes ${offset}..${offset + length} are outside tensor ${JSON.stringify(name)} (${t.end - t.begin} bytes)`);
    }
    return readExactly(this.fh, this.path, this.dataStart + t.begin + offset, length, `tensor ${JSON.stringify(name)}`);
  }

  async readFloat32(name: string): Promise<Float32Array> {
    const t = this.info(name);
    if (t.dtype === 'F32' && HOST_LE) {
      // Read straight into the result: no second copy of a large tensor.
      const out = new Float32Array((t.end - t.begin) / 4);
      await this.readInto(t, new Uint8Array(out.buffer));
      return out;
    }
    return decodeToFloat32(await this.readInto(t), t.dtype as DType);
  }

  async readFloat64(name: string): Promise<Float64Array> {
    const t = this.info(name);
    if (t.dtype === 'F64' && HOST_LE) {
      const out = new Float64Array((t.end - t.begin) / 8);
      await this.readInto(t, new Uint8Array(out.buffer));
      return out;
    }
    return decodeToFloat64(await this.readInto(t), t.dtype);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
  }
}
