/**
 * The NOLA reader as a fuzz target (issue 5 item 5): openNola + parseDocument + expand's dequantize and
 * synthesis, through the same functions `nola inspect`, `nola expand` and `nola verify` call.
 *
 * Seeds are NOLA files written by the compress pipeline from generated fixtures (fixtures/generate.ts):
 * tiny-peft in the default budget mode, with `--preset paper` and with `--quant int4`, plus a kohya file
 * (alpha tensors, kohya hashes on expand) and a PEFT DoRA/conv file (passthrough tensors). Besides the
 * byte-level mutators of fuzz-core, the mutators here edit the `nola` metadata document: numbers, names,
 * enums (dtypes, quant modes, basis, kind, family), counts (layers, shapes) and the raw JSON text.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { generateFixtures } from '../../fixtures/generate.js';
import { resolveStrategy, type StrategyFlags } from '../../src/cli/options.js';
import { NolaError } from '../../src/errors.js';
import { compress } from '../../src/pipeline/compress.js';
import { expand } from '../../src/pipeline/expand.js';
import { inspect } from '../../src/pipeline/inspect.js';
import { verify } from '../../src/pipeline/verify.js';
import { openNola } from '../../src/pipeline/nola-source.js';
import { openSafetensors } from '../../src/io/safetensors/reader.js';
import { DEFAULT_MUTATORS, flipBits, Random, type CheckResult, type Mutator } from '../io/fuzz-core.js';
import { editDocumentText, editEnvelopeText, toVersion1 } from './nola-file.js';

export interface NolaSeed { name: string; bytes: Uint8Array }

/** Compresses generated fixtures with the CLI's flag parsing; `iters` kept low: seeds need validity, not accuracy. */
export async function nolaSeeds(dir: string): Promise<NolaSeed[]> {
  const fixtures = await generateFixtures(path.join(dir, 'fixtures'));
  const byPath = (suffix: string): string => {
    const f = fixtures.find((x) => x.path.endsWith(suffix));
    if (!f) throw new Error(`fixture ${suffix} not generated`);
    return f.path;
  };
  const jobs: Array<[string, string, StrategyFlags, (1 | 2 | 3)?]> = [
    ['tiny-budget', byPath('tiny-peft/adapter_model.safetensors'), {}],
    // The default writes rans blocks (version 3) where they are shorter; version 2 keeps rice blocks.
    ['tiny-budget-v2', byPath('tiny-peft/adapter_model.safetensors'), {}, 2],
    ['tiny-paper', byPath('tiny-peft/adapter_model.safetensors'), { preset: 'paper' }],
    ['tiny-int4', byPath('tiny-peft/adapter_model.safetensors'), { quant: 'int4' }],
    ['kohya-sdxl', byPath('kohya-sdxl-bf16.safetensors'), {}],
    ['peft-dora-conv', byPath('peft-dora-conv-bf16/adapter_model.safetensors'), {}],
    ['tiny-fixed', byPath('tiny-peft/adapter_model.safetensors'), { quant: 'fixed' }],
    // --ratio with fixed-size precisions allocates whole factors (no segments): exact version-1 renderings.
    ['tiny-ratio', byPath('tiny-peft/adapter_model.safetensors'), { ratio: '4', quant: 'fixed' }],
    ['kohya-ratio', byPath('kohya-sdxl-bf16.safetensors'), { ratio: '4', quant: 'fixed' }],
    ['dora-ratio', byPath('peft-dora-conv-bf16/adapter_model.safetensors'), { ratio: '4', quant: 'fixed' }],
  ];
  const seeds: NolaSeed[] = [];
  for (const [name, input, flags, formatVersion] of jobs) {
    const output = path.join(dir, `${name}.nola.safetensors`);
    await compress({ input, output, force: true, settings: { strategy: resolveStrategy(flags), seed: 0, fit: { refineIters: 3, alsRounds: 2 } }, ...(formatVersion ? { formatVersion } : {}) });
    seeds.push({ name, bytes: new Uint8Array(await readFile(output)) });
  }
  // Version-1 files (nola 0.1) stay readable: the same content in that layout, so the v1 reader is fuzzed too.
  for (const name of ['tiny-paper', 'tiny-int4', 'tiny-ratio', 'kohya-ratio', 'dora-ratio']) {
    seeds.push({ name: `${name}-v1`, bytes: toVersion1(seeds.find((x) => x.name === name)!.bytes) });
  }
  return seeds;
}

// ---------------------------------------------------------------------------------------------
// Mutators of the `nola` document

export type Doc = Record<string, unknown>;

/** `edit` applied to the document text (version 1: the `nola` metadata; version 2: the inflated document tensor); bytes without that structure get bit flips. */
function docMutator(name: string, edit: (docText: string, rng: Random) => string): Mutator {
  return {
    name,
    apply(bytes, rng) {
      return editDocumentText(bytes, (text) => edit(text, rng)) ?? flipBits.apply(bytes, rng);
    },
  };
}

/** `edit` applied to the `nola` metadata text itself (for version 2, the short envelope naming the document tensor). */
function envelopeMutator(name: string, edit: (text: string, rng: Random) => string): Mutator {
  return {
    name,
    apply(bytes, rng) {
      return editEnvelopeText(bytes, (text) => edit(text, rng)) ?? flipBits.apply(bytes, rng);
    },
  };
}

/** `bytes` (a NOLA file) with its document replaced by `edit(document)`: for regression cases built by hand. */
export function withEditedDoc(bytes: Uint8Array, edit: (doc: Doc) => void): Uint8Array {
  return docObjectMutator('edit', (doc) => edit(doc)).apply(bytes, new Random(0));
}

/** `bytes` (a NOLA file) with the text of its document replaced by `edit(text)`. */
export function withDocText(bytes: Uint8Array, edit: (text: string) => string): Uint8Array {
  return docMutator('edit-text', (text) => edit(text)).apply(bytes, new Random(0));
}

/** Same, on the parsed document (text that no longer parses is left to the raw-text mutator). */
function docObjectMutator(name: string, edit: (doc: Doc, rng: Random) => void): Mutator {
  return docMutator(name, (text, rng) => {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      return text;
    }
    if (typeof doc !== 'object' || doc === null) return text;
    edit(doc as Doc, rng);
    return JSON.stringify(doc);
  });
}

type Slot = [Record<string, unknown> | unknown[], string | number];

/** Every (container, key) in the document whose value passes `pick`. */
function slots(v: unknown, pick: (x: unknown, key: string | number) => boolean, out: Slot[] = []): Slot[] {
  if (Array.isArray(v)) {
    v.forEach((x, i) => { if (pick(x, i)) out.push([v, i]); slots(x, pick, out); });
  } else if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) { if (pick(x, k)) out.push([v as Record<string, unknown>, k]); slots(x, pick, out); }
  }
  return out;
}

function setSlot([obj, key]: Slot, value: unknown): void {
  (obj as Record<string | number, unknown>)[key] = value;
}

function getSlot([obj, key]: Slot): unknown {
  return (obj as Record<string | number, unknown>)[key];
}

const NUMBERS = (v: number): unknown[] => [
  0, 1, -1, 2, 3, 0.5, -0.5, 1e300, -1e300, 1e-300, 63, 64, 65, 255, 256, 257, 1023, 1024,
  2 ** 31, 2 ** 32, 2 ** 32 + 1, 2 ** 53, 1e9, 2 ** 40, v + 1, v - 1, v * 2, Math.floor(v / 2), -v, String(v), null,
];

const editNumber = docObjectMutator('nola-number', (doc, rng) => {
  const s = slots(doc, (x) => typeof x === 'number');
  if (!s.length) return;
  const slot = rng.pick(s);
  setSlot(slot, rng.pick(NUMBERS(getSlot(slot) as number)));
});

const ENUMS = [
  'F32', 'F16', 'BF16', 'F64', 'U8', 'I64', 'I32', 'BOOL', 'F8_E4M3', 'f32', 'int8', 'int6', 'int5', 'int4', 'int3', 'int2',
  'int1', 'int16', 'rice', 'uniform', 'orthogonal', 'linear', 'conv', 'embedding', 'peft', 'kohya', 'diffusers', '', 'x',
];

const editEnum = docObjectMutator('nola-enum', (doc, rng) => {
  const keys = new Set(['dtype_A', 'dtype_B', 'dtype_alpha', 'quant_A', 'quant_B', 'basis', 'kind', 'family']);
  const s = slots(doc, (x, k) => typeof k === 'string' && keys.has(k));
  if (!s.length) return;
  setSlot(rng.pick(s), rng.chance(0.9) ? rng.pick(ENUMS) : rng.pick([null, 3, [], {}]));
});

const editName = docObjectMutator('nola-name', (doc, rng) => {
  const s = slots(doc, (x) => typeof x === 'string');
  if (!s.length) return;
  const strings = s.map((slot) => getSlot(slot) as string);
  setSlot(rng.pick(s), rng.pick([
    rng.pick(strings), rng.pick(strings), '', 'x', '__proto__', 'constructor', 'toString', '__metadata__',
    'nola.coeffs.0.A', 'nola.coeffs.0.A.scales', 'nola.passthrough.0', 'a'.repeat(1000), 'a\u0000b',
  ]));
});

const editCounts = docObjectMutator('nola-counts', (doc, rng) => {
  const layers = Array.isArray(doc.layers) ? doc.layers as unknown[] : null;
  const pass = Array.isArray(doc.passthrough) ? doc.passthrough as unknown[] : null;
  const arrays = slots(doc, (x) => Array.isArray(x)).map((slot) => getSlot(slot) as unknown[]);
  switch (rng.int(8)) {
    case 0: if (layers?.length) layers.splice(rng.int(layers.length), 1); break;
    case 1: if (layers?.length) layers.push(structuredClone(rng.pick(layers))); break;
    case 2: if (layers && layers.length > 1) layers.reverse(); break;
    case 3: if (pass?.length) pass.splice(rng.int(pass.length), 1); else if (pass) pass.push({ name: 'x', tensor: 'nola.coeffs.0.A' }); break;
    case 4: if (pass?.length) pass.push(structuredClone(rng.pick(pass))); break;
    case 5: if (arrays.length) { const a = rng.pick(arrays); if (rng.chance(0.5)) a.pop(); else a.push(rng.pick([0, 1, 4, 64])); } break;
    case 6: {
      // Swap the two factors' counts (or shapes) of one layer: consistent-looking but wrong.
      if (!layers?.length) break;
      const picked = rng.pick(layers);
      if (Array.isArray(picked)) {
        // A version-2 row: two of its cells swapped.
        const i = rng.int(picked.length), j = rng.int(picked.length);
        [picked[i], picked[j]] = [picked[j], picked[i]];
        break;
      }
      const l = picked as Doc;
      const [x, y] = rng.pick([['num_basis_A', 'num_basis_B'], ['shape_A', 'shape_B'], ['d_in', 'd_out'], ['coeffs_A', 'coeffs_B'], ['rank', 'source_rank']] as const);
      [l[x], l[y]] = [l[y], l[x]];
      break;
    }
    default: doc[rng.pick(['layers', 'passthrough', 'source'])] = rng.pick([null, {}, [], 'x', [null], [1]]);
  }
});

const dropKey = docObjectMutator('nola-drop-key', (doc, rng) => {
  const s = slots(doc, (x, k) => typeof k === 'string');
  if (!s.length) return;
  const [obj, key] = rng.pick(s);
  delete (obj as Record<string, unknown>)[key as string];
});

const rawText = docMutator('nola-raw-text', (text, rng) => {
  switch (rng.int(4)) {
    case 0: return text.slice(0, rng.int(text.length));
    case 1: return text.replace('"layers":', '"layers":[],"layers":');
    case 2: return text.replace(/(\d+)/, rng.pick(['9007199254740993', '1e400', '-0', '00', '1.0']));
    default: return rng.pick(['', 'null', '[]', '{}', '"nola"', '{"format_version":1}']);
  }
});

const envelope = envelopeMutator('nola-envelope', (text, rng) => rng.pick([
  text.replace('"nola.document"', rng.pick(['"nola.coeffs"', '"nola.passthrough.0"', '"missing"', '""', '3'])),
  text.replace(/"format_version":[23]/, rng.pick(['"format_version":1', '"format_version":2', '"format_version":3', '"format_version":4', '"format_version":"2"'])),
  text.replace('}', ',"layers":[]}'),
  text.slice(0, rng.int(text.length)),
]));

export const NOLA_MUTATORS: readonly Mutator[] = [
  ...DEFAULT_MUTATORS,
  editNumber, editNumber, editNumber, editEnum, editEnum, editName, editName, editCounts, editCounts, dropKey, rawText, envelope,
];

// ---------------------------------------------------------------------------------------------
// The check

/**
 * Writes the bytes to `<dir>/case.nola.safetensors`, then runs inspect, expand and verify (no source)
 * on it. 'clean-error': a NolaError subclass with a one-line message naming the file, thrown by the first
 * of them that refuses (all of them must then refuse, or the reader accepts in one place what it refuses
 * in another). 'ok': all three succeed and the expanded file reads back with finite factors.
 */
export function makeNolaCheck(dir: string): (bytes: Uint8Array) => Promise<CheckResult> {
  const input = path.join(dir, 'case.nola.safetensors');
  const output = path.join(dir, 'case.expanded.safetensors');
  return async (bytes) => {
    await writeFile(input, bytes);
    try {
      await inspect(input);
      // expand before verify: verify refuses any changed coefficient byte by its checksum, and the
      // decoders behind expand must meet damaged blocks too.
      const r = await expand({ input, output, force: true });
      await checkExpanded(input, r.output);
      await verify(input, undefined, 1e-4);
    } catch (err) {
      if (err instanceof NolaError && !err.message.includes('\n') && err.message.includes('case.')) return 'clean-error';
      throw err;
    }
    return 'ok';
  };
}

/** The factors expand synthesized are finite (passthrough tensors are copied as stored, whatever they hold). */
async function checkExpanded(input: string, file: string): Promise<void> {
  const nola = await openNola(input);
  const passthrough = new Set(nola.doc.passthrough.map((p) => p.name));
  await nola.reader.close();
  const f = await openSafetensors(file);
  try {
    for (const t of f.tensors) {
      if (passthrough.has(t.name) || !['F64', 'F32', 'F16', 'BF16'].includes(t.dtype)) continue;
      const v = await f.readFloat64(t.name);
      for (let i = 0; i < v.length; i++) {
        if (!Number.isFinite(v[i])) throw new Error(`expand wrote ${v[i]} at ${t.name}[${i}] without refusing`);
      }
    }
  } finally {
    await f.close();
  }
}
