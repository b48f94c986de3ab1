/**
 * A seeded mutation fuzzer for file readers. Generic over the target: give it valid seed files and a
 * `check` that opens the mutated bytes and returns 'ok' (read fine, and consistently) or 'clean-error'
 * (rejected with the expected typed error). Anything else — another exception, a hang, an unhandled
 * rejection — is a failure, reported with the case number so `caseRandom(seed, i)` replays it alone.
 *
 * The mutators know the safetensors framing (u64 length + JSON header + data), which the NOLA container
 * shares; on bytes without that framing the structured ones fall back to byte-level mutations.
 */

export type CheckResult = 'ok' | 'clean-error';

export interface FuzzOptions {
  seeds: Uint8Array[];
  cases: number;
  seed: number;
  check: (bytes: Uint8Array) => Promise<CheckResult>;
  /** Per-case limit for asynchronous hangs (a synchronous loop blocks everything: the runner's timeout catches it). */
  timeoutMs?: number;
  /** Stop after this many failures. */
  maxFailures?: number;
  /** Run only these case numbers (to replay a failure). */
  only?: number[];
  mutators?: readonly Mutator[];
}

export interface FuzzFailure {
  caseIndex: number;
  mutations: string[];
  error: string;
  bytes: Uint8Array;
}

export interface FuzzSummary {
  cases: number;
  ok: number;
  cleanErrors: number;
  failures: FuzzFailure[];
  ms: number;
}

// ---------------------------------------------------------------------------------------------
// PRNG

/** mulberry32: small, fast, good enough to drive mutations; seeded per case so cases replay alone. */
export class Random {
  private s: number;
  constructor(seed: number) { this.s = seed >>> 0; }
  u32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Integer in [0, n). */
  int(n: number): number { return n <= 0 ? 0 : Math.floor((this.u32() / 2 ** 32) * n); }
  chance(p: number): boolean { return this.u32() / 2 ** 32 < p; }
  pick<T>(xs: readonly T[]): T { return xs[this.int(xs.length)]; }
}

export function caseRandom(seed: number, caseIndex: number): Random {
  // Mix so neighbouring (seed, case) pairs give unrelated streams.
  let h = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(caseIndex + 1, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return new Random(h);
}

// ---------------------------------------------------------------------------------------------
// Framing helpers

interface Framed {
  headerText: string;
  data: Uint8Array;
}

/** Splits bytes into (JSON header text, data) when they have valid u64-length + UTF-8 framing. */
function unframe(bytes: Uint8Array): Framed | null {
  if (bytes.length < 8) return null;
  const n = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true);
  if (n > BigInt(bytes.length - 8)) return null;
  try {
    const headerText = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + Number(n)));
    return { headerText, data: bytes.subarray(8 + Number(n)) };
  } catch {
    return null;
  }
}

function frame(headerText: string, data: Uint8Array, rng: Random): Uint8Array {
  let header = new TextEncoder().encode(headerText);
  // Usually pad to 8 like writers do; sometimes leave an odd length, which is valid too.
  if (rng.chance(0.7)) {
    const padded = new Uint8Array(Math.ceil(header.length / 8) * 8).fill(0x20);
    padded.set(header);
    header = padded;
  }
  const out = new Uint8Array(8 + header.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  out.set(data, 8 + header.length);
  return out;
}

/** JSON text that is inserted verbatim (numbers JSON.stringify cannot spell: 2^53+1, 1e400, -0). */
class Raw { constructor(readonly text: string) {} }
type Json = string | number | boolean | null | Raw | Json[] | Entries;
/** An object as an ordered list of entries, so duplicate keys can be expressed. */
class Entries { constructor(public list: Array<[string, Json]>) {} }

function toJson(v: unknown): Json {
  if (Array.isArray(v)) return v.map(toJson);
  if (v !== null && typeof v === 'object') return new Entries(Object.entries(v).map(([k, x]) => [k, toJson(x)]));
  return v as Json;
}

function stringify(v: Json): string {
  if (v instanceof Raw) return v.text;
  if (v instanceof Entries) return `{${v.list.map(([k, x]) => `${JSON.stringify(k)}:${stringify(x)}`).join(',')}}`;
  if (Array.isArray(v)) return `[${v.map(stringify).join(',')}]`;
  return JSON.stringify(v);
}

// ---------------------------------------------------------------------------------------------
// Mutators

export interface Mutator {
  name: string;
  apply(bytes: Uint8Array, rng: Random): Uint8Array;
}

const WEIRD_INTS = [
  '0', '1', '-1', '-0', '1.5', '2.0', '1e3', '1e400', '9007199254740991', '9007199254740992', '9007199254740993',
  '18446744073709551615', '18446744073709551616', '4294967296', '2147483648', '100000000000000000000000000000',
];
const WEIRD_VALUES: Json[] = [
  null, true, 'F32', '', [], new Entries([]), new Raw('-1'), new Raw('1e400'), new Raw('0.5'), [new Raw('1')],
];
const DTYPES = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'U16', 'U32', 'U64', 'BOOL', 'F8_E4M3', 'F8_E5M2', 'F17', 'f32', '', 'C64'];

function byteFallback(bytes: Uint8Array, rng: Random): Uint8Array {
  return flipBits.apply(bytes, rng);
}

/** Applies `edit` to the parsed header (when it parses) and re-frames it. */
function headerMutator(name: string, edit: (root: Entries, rng: Random) => void): Mutator {
  return {
    name,
    apply(bytes, rng) {
      const f = unframe(bytes);
      let parsed: unknown;
      try {
        parsed = f ? JSON.parse(f.headerText) : undefined;
      } catch {
        parsed = undefined;
      }
      if (!f || parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return byteFallback(bytes, rng);
      let text: string;
      try {
        const root = toJson(parsed) as Entries;
        edit(root, rng);
        text = stringify(root);
      } catch (err) {
        // Headers nested beyond this helper's stack (after repeated deep-nesting edits): mutate bytes instead.
        if (err instanceof RangeError) return byteFallback(bytes, rng);
        throw err;
      }
      return frame(text, f.data, rng);
    },
  };
}

function tensorEntries(root: Entries): Array<[string, Json]> {
  return root.list.filter(([k, v]) => k !== '__metadata__' && v instanceof Entries);
}

function field(entry: Json, key: string): [string, Json] | undefined {
  return entry instanceof Entries ? entry.list.find(([k]) => k === key) : undefined;
}

export const flipBits: Mutator = {
  name: 'flip-bits',
  apply(bytes, rng) {
    const out = bytes.slice();
    if (out.length === 0) return Uint8Array.of(rng.int(256));
    const flips = 1 + rng.int(8);
    for (let i = 0; i < flips; i++) out[rng.int(out.length)] ^= 1 << rng.int(8);
    return out;
  },
};

const setHeaderByte: Mutator = {
  name: 'header-byte',
  apply(bytes, rng) {
    const f = unframe(bytes);
    if (!f || bytes.length <= 8) return byteFallback(bytes, rng);
    const out = bytes.slice();
    const headerLen = bytes.length - 8 - f.data.length;
    const interesting = [0x00, 0x20, 0x22, 0x2c, 0x3a, 0x5b, 0x5d, 0x7b, 0x7d, 0x5c, 0x2d, 0x30, 0x39, 0x65, 0x80, 0xc3, 0xff];
    out[8 + rng.int(Math.max(1, headerLen))] = rng.chance(0.6) ? rng.pick(interesting) : rng.int(256);
    return out;
  },
};

const truncate: Mutator = {
  name: 'truncate',
  apply(bytes, rng) {
    if (bytes.length === 0) return bytes;
    const cut = rng.chance(0.5) ? bytes.length - 1 - rng.int(Math.min(16, bytes.length)) : rng.int(bytes.length);
    return bytes.slice(0, Math.max(0, cut));
  },
};

const appendBytes: Mutator = {
  name: 'append',
  apply(bytes, rng) {
    const extra = Uint8Array.from({ length: 1 + rng.int(16) }, () => (rng.chance(0.5) ? 0x20 : rng.int(256)));
    const out = new Uint8Array(bytes.length + extra.length);
    out.set(bytes);
    out.set(extra, bytes.length);
    return out;
  },
};

const headerLength: Mutator = {
  name: 'header-length',
  apply(bytes, rng) {
    const out = bytes.length >= 8 ? bytes.slice() : new Uint8Array(8 + rng.int(8));
    if (bytes.length < 8) out.set(bytes);
    const dv = new DataView(out.buffer);
    const n = dv.getBigUint64(0, true);
    const choices: bigint[] = [
      0n, 1n, 7n, 8n, n + 1n, n - 1n > 0n ? n - 1n : 0n, n + 8n, n - 8n > 0n ? n - 8n : 0n, BigInt(out.length), BigInt(out.length - 8),
      100_000_000n, 100_000_001n, 2n ** 31n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, BigInt(rng.u32()),
    ];
    dv.setBigUint64(0, rng.pick(choices) & (2n ** 64n - 1n), true);
    return out;
  },
};

const flipData: Mutator = {
  name: 'data-bytes',
  apply(bytes, rng) {
    const f = unframe(bytes);
    if (!f || f.data.length === 0) return byteFallback(bytes, rng);
    const out = bytes.slice();
    const start = bytes.length - f.data.length;
    for (let i = 0, k = 1 + rng.int(4); i < k; i++) out[start + rng.int(f.data.length)] = rng.pick([0xff, 0x7f, 0x80, 0x00, rng.int(256)]);
    return out;
  },
};

const duplicateKey = headerMutator('duplicate-key', (root, rng) => {
  if (root.list.length === 0) { root.list.push(['a', new Entries([])], ['a', new Entries([])]); return; }
  const victim = rng.pick(root.list);
  const target = rng.chance(0.7) ? root : (victim[1] instanceof Entries ? victim[1] : root);
  if (target.list.length === 0) return;
  const e = rng.pick(target.list);
  target.list.splice(rng.int(target.list.length + 1), 0, [e[0], e[1]]);
});

const shiftOffsets = headerMutator('shift-offsets', (root, rng) => {
  const ts = tensorEntries(root);
  if (!ts.length) return;
  const off = field(rng.pick(ts)[1], 'data_offsets');
  if (!off || !Array.isArray(off[1]) || off[1].length < 2) return;
  const i = rng.int(2);
  const cur = typeof off[1][i] === 'number' ? (off[1][i] as number) : 0;
  off[1][i] = rng.pick([cur + 1, cur - 1, cur + 2, cur + 4, cur - 4, cur * 2, 0, cur + 1000]);
});

const swapDtype = headerMutator('swap-dtype', (root, rng) => {
  const ts = tensorEntries(root);
  if (!ts.length) return;
  const d = field(rng.pick(ts)[1], 'dtype');
  if (d) d[1] = rng.chance(0.9) ? rng.pick(DTYPES) : rng.pick(WEIRD_VALUES);
});

const hugeNumber = headerMutator('huge-number', (root, rng) => {
  const ts = tensorEntries(root);
  if (!ts.length) return;
  const f = field(rng.pick(ts)[1], rng.chance(0.5) ? 'shape' : 'data_offsets');
  if (!f || !Array.isArray(f[1])) return;
  const arr = f[1];
  const raw = new Raw(rng.pick(WEIRD_INTS));
  if (arr.length === 0 || rng.chance(0.1)) arr.push(raw);
  else arr[rng.int(arr.length)] = raw;
});

const editShape = headerMutator('edit-shape', (root, rng) => {
  const ts = tensorEntries(root);
  if (!ts.length) return;
  const f = field(rng.pick(ts)[1], 'shape');
  if (!f || !Array.isArray(f[1])) return;
  const shape = f[1];
  switch (rng.int(5)) {
    case 0: shape.push(rng.pick([0, 1, 2, 3])); break;
    case 1: shape.pop(); break;
    case 2: if (shape.length) shape[rng.int(shape.length)] = rng.pick([0, 1, 2, 7, 1 << 20]); break;
    case 3: shape.reverse(); break;
    default: f[1] = rng.pick(WEIRD_VALUES);
  }
});

const breakEntry = headerMutator('break-entry', (root, rng) => {
  const ts = tensorEntries(root);
  const which = rng.int(6);
  if (which === 0 && root.list.length) { root.list.splice(rng.int(root.list.length), 1); return; }
  if (which === 1) { root.list.reverse(); return; }
  if (which === 2) { root.list.push([rng.pick(['x', '', '__metadata__', 'a.weight']), rng.pick(WEIRD_VALUES)]); return; }
  if (!ts.length) return;
  const entry = rng.pick(ts)[1] as Entries;
  if (which === 3 && entry.list.length) entry.list.splice(rng.int(entry.list.length), 1);
  else if (which === 4) entry.list.push([rng.pick(['extra', 'offsets', 'dtype']), rng.pick(WEIRD_VALUES)]);
  else if (entry.list.length) entry.list[rng.int(entry.list.length)][1] = rng.pick(WEIRD_VALUES);
});

const breakMetadata = headerMutator('break-metadata', (root, rng) => {
  const m = root.list.find(([k]) => k === '__metadata__');
  if (!m) { root.list.unshift(['__metadata__', rng.pick(WEIRD_VALUES)]); return; }
  if (m[1] instanceof Entries && m[1].list.length && rng.chance(0.6)) m[1].list[rng.int(m[1].list.length)][1] = rng.pick(WEIRD_VALUES);
  else if (m[1] instanceof Entries && rng.chance(0.5)) m[1].list.push(['\u0000k\u{1f600}', 'v\n"']);
  else m[1] = rng.pick(WEIRD_VALUES);
});

const deepNesting = headerMutator('deep-nesting', (root, rng) => {
  // Past the reader's limit of 128, but shallow enough for this file's own recursive helpers.
  const depth = rng.pick([10, 127, 128, 129, 130, 1000]);
  root.list.push(['deep', new Raw('['.repeat(depth) + ']'.repeat(depth))]);
});

export const DEFAULT_MUTATORS: readonly Mutator[] = [
  flipBits, setHeaderByte, truncate, appendBytes, headerLength, flipData,
  duplicateKey, shiftOffsets, swapDtype, hugeNumber, editShape, breakEntry, breakMetadata, deepNesting,
];

// ---------------------------------------------------------------------------------------------
// Runner

function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message.split('\n')[0].slice(0, 300)}`;
  return String(err);
}

/** One case's bytes and the mutations applied: deterministic in (seed, caseIndex, seeds). */
export function makeCase(seeds: readonly Uint8Array[], seed: number, caseIndex: number, mutators: readonly Mutator[] = DEFAULT_MUTATORS): { bytes: Uint8Array; mutations: string[] } {
  const rng = caseRandom(seed, caseIndex);
  // A plain copy: seeds may be Buffers, whose slice() is a view, and mutators must never touch a seed.
  let bytes: Uint8Array = new Uint8Array(seeds[rng.int(seeds.length)]);
  const mutations: string[] = [];
  const count = 1 + (rng.chance(0.3) ? rng.int(3) : 0);
  for (let i = 0; i < count; i++) {
    const m = rng.pick(mutators);
    bytes = m.apply(bytes, rng);
    mutations.push(m.name);
  }
  return { bytes, mutations };
}

export async function runFuzz(opts: FuzzOptions): Promise<FuzzSummary> {
  const mutators = opts.mutators ?? DEFAULT_MUTATORS;
  const timeoutMs = opts.timeoutMs ?? 5000;
  const maxFailures = opts.maxFailures ?? 20;
  const started = Date.now();
  const summary: FuzzSummary = { cases: 0, ok: 0, cleanErrors: 0, failures: [], ms: 0 };
  let stray: unknown[] = [];
  const onUnhandled = (reason: unknown) => { stray.push(reason); };
  process.on('unhandledRejection', onUnhandled);
  try {
    const indices = opts.only ?? Array.from({ length: opts.cases }, (_, i) => i);
    for (const caseIndex of indices) {
      const { bytes, mutations } = makeCase(opts.seeds, opts.seed, caseIndex, mutators);
      stray = [];
      let timer: NodeJS.Timeout | undefined;
      let error: string | null = null;
      try {
        const result = await Promise.race([
          opts.check(bytes),
          new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`hang: no result after ${timeoutMs} ms`)), timeoutMs); }),
        ]);
        if (result === 'ok') summary.ok++;
        else if (result === 'clean-error') summary.cleanErrors++;
        else error = `check returned ${String(result)}`;
      } catch (err) {
        error = describeError(err);
      } finally {
        clearTimeout(timer);
      }
      // Let a rejection that nobody awaited surface before judging the case.
      await new Promise((r) => setImmediate(r));
      if (!error && stray.length) error = `unhandled rejection: ${describeError(stray[0])}`;
      summary.cases++;
      if (error) {
        summary.failures.push({ caseIndex, mutations, error, bytes });
        if (summary.failures.length >= maxFailures) break;
      }
    }
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
  summary.ms = Date.now() - started;
  return summary;
}

export function formatSummary(name: string, seed: number, s: FuzzSummary): string {
  return `fuzz ${name}: ${s.cases} cases, seed ${seed}, ${s.ok} ok, ${s.cleanErrors} clean errors, ` +
    `${s.failures.length} failures, ${(s.ms / 1000).toFixed(1)} s`;
}
