/**
 * The Python reader (python/nola_reader) against the CLI: for the three shared adapters, every generated
 * fixture and a float64 adapter made here, compress and expand with the built CLI as a user would,
 * then require nola_reader.load() to give the expanded file's tensors byte for byte (order, names,
 * dtypes, shapes), its metadata (values and key order) and the adapter_config.json text exactly.
 * The float64 adapter exposes every bit of the synthesis (F32/BF16 rounding would hide most float64
 * differences), and a direct comparison of the DCT-III on lengths that take each FFT plan (radix-2,
 * split, direct, Bluestein) pins the Python port of src/core/dct.ts + fft.ts to nola's float64 bits.
 * Skipped, with a note, where python3 with numpy is absent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPO, runNola } from '../cli/cli-helpers.js';
import { generateFixtures } from '../../fixtures/generate.js';
import { dct3 } from '../../src/core/dct.js';
import { orthogonalSelection } from '../../src/core/orthogonal-basis.js';
import { componentSeed } from '../../src/core/component-basis.js';
import { editDocumentText } from '../pipeline/nola-file.js';

const REAL = path.resolve(REPO, '../shared/real-loras');
const PYTHONPATH = path.join(REPO, 'python');
const numpy = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;
const NO_NUMPY = 'python3 with numpy not found: the Python reader is not checked here';

/**
 * What the reader returns, as JSON: tensors in order with sha256 of their bytes, metadata, config text;
 * load(path, to=argv[2] or None, **argv[3]) (argv[3]: JSON keyword arguments). A NolaError it raises is
 * printed, not thrown.
 */
const SUMMARY = `
import sys, json, hashlib, nola_reader
try:
    l = nola_reader.load(sys.argv[1], to=sys.argv[2] or None, **json.loads(sys.argv[3]))
except nola_reader.NolaError as e:
    print(json.dumps({'error': type(e).__name__, 'exit_code': e.exit_code, 'message': str(e)}))
    sys.exit(0)
print(json.dumps({
  'family': l.family,
  'tensors': [[n, l.dtypes[n], list(l.tensors[n].shape), hashlib.sha256(l.bytes(n)).hexdigest()] for n in l.tensors],
  'metadata': l.metadata, 'config_text': l.config_text, 'config': l.config,
}))
`;

interface Summary { family: string; tensors: Array<[string, string, number[], string]>; metadata: Record<string, string> | null; config_text: string | null; config: unknown }
interface Refusal { error: string; exit_code: number; message: string }

function python(args: string[], input?: string): string {
  const r = spawnSync('python3', args, { encoding: 'utf8', env: { ...process.env, PYTHONPATH }, maxBuffer: 1 << 28, input });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

function readerSummary(nolaFile: string, to?: string, kw: Record<string, number> = {}): Summary | Refusal {
  return JSON.parse(python(['-c', SUMMARY, nolaFile, to ?? '', JSON.stringify(kw)])) as Summary | Refusal;
}

/** The expanded file as stored, parsed here (independent of src/io). */
function fileSummary(file: string): { tensors: Array<[string, string, number[], string]>; metadata: Record<string, string> | null } {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const metadata = (header.__metadata__ as unknown as Record<string, string> | undefined) ?? null;
  delete (header as Record<string, unknown>).__metadata__;
  return {
    metadata,
    tensors: Object.entries(header).map(([name, h]) => [name, h.dtype, h.shape,
      createHash('sha256').update(buf.subarray(8 + n + h.data_offsets[0], 8 + n + h.data_offsets[1])).digest('hex')]),
  };
}

const FAMILIES = ['peft', 'kohya', 'diffusers'] as const;

/**
 * `nola expand NOLA [--to TO]` against load(NOLA, to=TO): the same file when nola writes one (tensors in
 * file order with their bytes, metadata values and key order, adapter_config.json text); when nola refuses
 * (exit 2), a UsageError with nola's message word for word. Returns the reader's result and what happened.
 */
async function expandCompare(nolaFile: string, work: string, tag: string, to?: string): Promise<{ py: Summary | Refusal; refused: boolean }> {
  const outDir = path.join(work, `${tag}.out`) + path.sep;
  const exp = await runNola(['expand', nolaFile, '-o', outDir, '--json', ...(to === undefined ? [] : ['--to', to])]);
  const py = readerSummary(nolaFile, to);
  if (exp.code !== 0) {
    assert.ok(to !== undefined, `${tag}: nola expand failed: ${exp.stderr}`);
    assert.equal(exp.code, 2, `${tag}: nola refuses --to ${to} as a usage error: ${exp.stderr}`);
    const line = exp.stderr.split('\n').find((l) => l.startsWith('nola: error: '));
    assert.ok(line !== undefined, `${tag}: nola's error line: ${exp.stderr}`);
    assert.deepEqual(py, { error: 'UsageError', exit_code: 2, message: line.slice('nola: error: '.length) }, `${tag}: load(to=${to}) refuses as nola does`);
    return { py, refused: true };
  }
  assert.ok(!('error' in py), `${tag}: nola writes the file but load() raised ${JSON.stringify(py)}`);
  const { output, config, family } = JSON.parse(exp.stdout) as { output: string; config: string | null; family: string };
  const file = fileSummary(output);
  assert.equal(py.family, family, `${tag}: family`);
  if (to !== undefined) assert.equal(py.family, to, `${tag}: family is --to's`);
  assert.deepEqual(py.tensors.map((t) => t[0]), file.tensors.map((t) => t[0]), `${tag}: tensor names in file order`);
  for (let i = 0; i < file.tensors.length; i++) assert.deepEqual(py.tensors[i], file.tensors[i], `${tag}: tensor ${file.tensors[i][0]} (name, dtype, shape, sha256 of bytes)`);
  // Key order too: PEFT pattern precedence and kohya's hashes depend on the stored text.
  assert.equal(JSON.stringify(py.metadata), JSON.stringify(file.metadata), `${tag}: metadata`);
  if (config !== null) {
    const text = readFileSync(config, 'utf8');
    assert.equal(py.config_text, text, `${tag}: adapter_config.json text`);
    assert.deepEqual(py.config, JSON.parse(text), `${tag}: config value`);
  } else {
    assert.equal(py.config_text, null, `${tag}: no config`);
  }
  return { py, refused: false };
}

/**
 * Compresses `source`, then compares load() with nola expand: as the source (to=None), and, when `seen` is
 * given, with every --to family (recorded in `seen` as 'diffusers->kohya' / 'kohya->peft refused'...).
 */
async function compressExpandCompare(source: string, work: string, tag: string, flags: string[], seen?: Set<string>): Promise<Summary> {
  const nolaFile = path.join(work, `${tag}.nola.safetensors`);
  const comp = await runNola(['compress', source, '-o', nolaFile, ...flags]);
  assert.equal(comp.code, 0, `${source} ${flags.join(' ')}: ${comp.stderr}`);
  const { py, refused } = await expandCompare(nolaFile, work, tag);
  assert.ok(!refused);
  const summary = py as Summary;
  if (seen !== undefined) {
    for (const to of FAMILIES) {
      const r = await expandCompare(nolaFile, work, `${tag}-to-${to}`, to);
      seen.add(`${summary.family}->${to}${r.refused ? ' refused' : ''}`);
    }
  }
  return summary;
}

const SHARED = ['peft-distilbert-imdb', 'diffusers-sd15', 'diffusers-sd2-bf16'];

/** What `nola expand --to` does with each shared adapter: every conversion it makes is compared, every refusal too. */
const SHARED_TO: Record<string, string[]> = {
  'peft-distilbert-imdb': ['peft->peft', 'peft->kohya refused', 'peft->diffusers refused'],
  'diffusers-sd15': ['diffusers->peft', 'diffusers->kohya', 'diffusers->diffusers'],
  'diffusers-sd2-bf16': ['diffusers->peft', 'diffusers->kohya', 'diffusers->diffusers'],
};

for (const dir of SHARED) {
  test(`python reader ${dir}: load() and load(to=peft|kohya|diffusers) equal nola expand [--to] byte for byte, or refuse as it does (default compress)`, { timeout: 300_000 }, async (t) => {
    if (!numpy) return t.skip(NO_NUMPY);
    const source = path.join(REAL, dir);
    if (!existsSync(source)) return t.skip(`${source} not found (../shared/real-loras is beside the checkout in CI)`);
    const work = mkdtempSync(path.join(tmpdir(), 'nola-py-'));
    try {
      const seen = new Set<string>();
      await compressExpandCompare(source, work, dir, [], seen);
      assert.deepEqual([...seen].sort(), [...SHARED_TO[dir]].sort(), `${dir}: conversions made and refused`);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
}

test('python reader on every generated fixture, at several settings (every basis; rice, int, f16 storage; format version 1), as the source and with every to=', { timeout: 600_000 }, async (t) => {
  if (!numpy) return t.skip(NO_NUMPY);
  const work = mkdtempSync(path.join(tmpdir(), 'nola-py-fx-'));
  try {
    const fixtures = await generateFixtures(path.join(work, 'src'));
    const settings = [
      ['--max-error', '0.05'],
      // 150, not 300: at the full span of these 64-wide layers the uniform basis is so ill-conditioned that
      // int5 keeps nothing, and empty layers (all-zero factors) would hide a wrong B scale.
      ['--coeffs', '150', '--quant', 'int5'],
      ['--ratio', '6', '--quant', 'fixed'],
      ['--preset', 'paper'],
      ['--basis', 'orthogonal', '--coeffs', '250', '--quant', 'f16', '--format-version', '1'],
    ];
    let hashed = 0;
    const seen = new Set<string>();
    for (const [i, f] of fixtures.entries()) {
      const py = await compressExpandCompare(f.path, work, `fx${i}`, settings[i % settings.length], seen);
      if (py.metadata?.sshs_model_hash !== undefined) hashed++;
    }
    assert.ok(hashed > 0, 'a fixture with kohya hashes was covered');
    // diffusers -> peft is refused for the files that adapt several components (processor, peft-style-f16).
    assert.deepEqual([...seen].sort(), [
      'diffusers->diffusers', 'diffusers->kohya', 'diffusers->peft', 'diffusers->peft refused',
      'kohya->diffusers refused', 'kohya->kohya', 'kohya->peft refused',
      'peft->diffusers refused', 'peft->kohya refused', 'peft->peft',
    ], 'every family to every family, made or refused');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

/** A PEFT adapter with F64 factors (d_in 96, 53, 45: radix-2 split, Bluestein and odd composite DCT lengths). */
function writeF64Adapter(dir: string): void {
  const modules = [['q', 96, 64], ['k', 53, 40], ['v', 45, 30]] as const;
  const r = 8;
  let s = 7;
  const rnd = (): number => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return s / 2 ** 32 - 0.5; };
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  const blobs: Buffer[] = [];
  let off = 0;
  const add = (name: string, shape: number[], scale: number): void => {
    const v = new Float64Array(shape[0] * shape[1]);
    for (let i = 0; i < v.length; i++) v[i] = rnd() * scale * (1 + (i % r));
    header[name] = { dtype: 'F64', shape, data_offsets: [off, off + v.byteLength] };
    off += v.byteLength;
    blobs.push(Buffer.from(v.buffer));
  };
  for (const [m, dIn, dOut] of modules) {
    add(`base_model.model.layers.0.${m}.lora_A.weight`, [r, dIn], 0.2);
    add(`base_model.model.layers.0.${m}.lora_B.weight`, [dOut, r], 0.01);
  }
  const json = Buffer.from(JSON.stringify(header));
  const padded = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(padded.length));
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'adapter_model.safetensors'), Buffer.concat([len, padded, ...blobs]));
  writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r, lora_alpha: 16, target_modules: ['q', 'k', 'v'] }, null, 2));
}

test('python reader on an F64 adapter: every float64 bit of the synthesis equals nola expand (uniform, orthogonal-components and orthogonal layers)', { timeout: 300_000 }, async (t) => {
  if (!numpy) return t.skip(NO_NUMPY);
  const work = mkdtempSync(path.join(tmpdir(), 'nola-py-f64-'));
  try {
    writeF64Adapter(path.join(work, 'f64'));
    const bases = new Set<string>();
    const settings = [['--max-error', '0.02'], ['--coeffs', '200', '--quant', 'f32'], ['--max-error', '0.3', '--rank', '3'],
      ['--basis', 'orthogonal', '--coeffs', '300', '--quant', 'f32']];
    for (const [i, flags] of settings.entries()) {
      const py = await compressExpandCompare(path.join(work, 'f64'), work, `f64-${i}`, flags);
      assert.ok(py.tensors.every((x) => x[1] === 'F64'), 'F64 out');
      const info = await runNola(['inspect', path.join(work, `f64-${i}.nola.safetensors`), '--json']);
      for (const l of (JSON.parse(info.stdout) as { layers: Array<{ basis: string }> }).layers) bases.add(l.basis);
    }
    assert.deepEqual([...bases].sort(), ['orthogonal', 'orthogonal-components', 'uniform'], 'every basis was synthesized');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

/** An F32 safetensors file of the given tensors (deterministic values), with optional metadata. */
function writeF32File(file: string, tensors: Array<[string, number[]]>, metadata?: Record<string, string>): void {
  let s = 11;
  const rnd = (): number => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return s / 2 ** 32 - 0.5; };
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  const blobs: Buffer[] = [];
  let off = 0;
  for (const [name, shape] of tensors) {
    const v = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rnd() * 0.2);
    header[name] = { dtype: 'F32', shape, data_offsets: [off, off + v.byteLength] };
    off += v.byteLength;
    blobs.push(Buffer.from(v.buffer));
  }
  const json = Buffer.from(JSON.stringify(header));
  const padded = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(padded.length));
  writeFileSync(file, Buffer.concat([len, padded, ...blobs]));
}

test('python reader: diffusers to= on made files: kohya hashes recomputed, lora_adapter_metadata as the PEFT config; a component with no kohya prefix and non-LoRA tensors refused with nola\'s words', { timeout: 300_000 }, async (t) => {
  if (!numpy) return t.skip(NO_NUMPY);
  const work = mkdtempSync(path.join(tmpdir(), 'nola-py-to-'));
  try {
    const b = 'down_blocks.0.attentions.0.transformer_blocks.0.attn1';
    const lora = (prefix: string): Array<[string, number[]]> => [[`${prefix}.lora_A.weight`, [4, 64]], [`${prefix}.lora_B.weight`, [64, 4]]];
    // 'prior' is a diffusers component kohya has no prefix for; with unet beside it, PEFT is refused too (two components).
    writeF32File(path.join(work, 'prior.safetensors'), [...lora(`prior.${b}.to_k`), ...lora(`unet.${b}.to_q`)]);
    // Four tensors compress keeps verbatim (more than the three a refusal names) in a one-component file.
    writeF32File(path.join(work, 'extra.safetensors'), [...lora(`unet.${b}.to_k`), ...['norm1', 'norm2', 'norm3', 'ff'].map((n): [string, number[]] => [`unet.${b}.${n}.weight`, [64]])],
      { format: 'pt' });
    // kohya hashes (recomputed on every output) and a flat lora_adapter_metadata (dropped for kohya, the base of
    // the PEFT config), compressed to a lower rank so alphas and the config are rewritten.
    const adapterMeta = { r: 4, lora_alpha: 8, target_modules: ['to_k', 'to_q'], use_dora: false, lora_dropout: 0.0 };
    writeF32File(path.join(work, 'hashed.safetensors'), [...lora(`unet.${b}.to_k`), ...lora(`unet.${b}.to_q`)], {
      ss_network_dim: '4', ss_output_name: 'x', sshs_model_hash: '0'.repeat(64), sshs_legacy_hash: '12345678',
      lora_adapter_metadata: JSON.stringify(adapterMeta, null, 2),
    });
    // Two ranks, one layer each: PEFT's r and lora_alpha are the smaller of the tied values, the other goes to the patterns.
    writeF32File(path.join(work, 'ranks.safetensors'), [[`unet.${b}.to_k.lora_A.weight`, [2, 64]], [`unet.${b}.to_k.lora_B.weight`, [64, 2]],
      [`unet.${b}.to_q.lora_A.weight`, [6, 64]], [`unet.${b}.to_q.lora_B.weight`, [64, 6]]]);
    const want: Record<string, { flags: string[]; to: Record<string, RegExp | null> }> = {
      prior: { flags: [], to: { kohya: /--to kohya: layer 'prior\..*' is in component 'prior', which has no kohya prefix/, peft: /--to peft: the file adapts 2 pipeline components \(prior, unet\)/, diffusers: null } },
      extra: { flags: [], to: { kohya: /--to kohya: 4 non-LoRA tensors \('unet\..*' \(\+1 more\)\) have no equivalent name in kohya keys/, peft: /--to peft: 4 non-LoRA tensors .* in peft keys/, diffusers: null } },
      hashed: { flags: ['--rank', '3'], to: { kohya: null, peft: null, diffusers: null } },
      ranks: { flags: ['--rank', 'keep'], to: { kohya: null, peft: null, diffusers: null } },
    };
    for (const [tag, { flags, to: cases }] of Object.entries(want)) {
      const nolaFile = path.join(work, `${tag}.nola.safetensors`);
      const comp = await runNola(['compress', path.join(work, `${tag}.safetensors`), '-o', nolaFile, ...flags]);
      assert.equal(comp.code, 0, comp.stderr);
      for (const [to, message] of Object.entries(cases)) {
        const { py, refused } = await expandCompare(nolaFile, work, `${tag}-to-${to}`, to);
        assert.equal(refused, message !== null, `${tag} --to ${to}: refused`);
        if (message !== null) assert.match((py as Refusal).message, message, `${tag} --to ${to}: the refusal`);
        if (tag === 'hashed' && to === 'kohya') {
          const meta = (py as Summary).metadata!;
          assert.match(meta.sshs_model_hash, /^[0-9a-f]{64}$/);
          assert.notEqual(meta.sshs_model_hash, '0'.repeat(64), 'sshs_model_hash recomputed');
          assert.equal(meta.lora_adapter_metadata, undefined, 'no lora_adapter_metadata in a kohya file');
          assert.equal(meta.ss_network_dim, '3', 'ss_network_dim follows --rank 3, as a kohya -> kohya expand does');
        }
        if (tag === 'ranks' && to === 'peft') {
          const c = (py as Summary).config as Record<string, unknown>;
          assert.deepEqual([c.r, c.lora_alpha, c.rank_pattern, c.alpha_pattern], [2, 2, { to_q: 6 }, { to_q: 6 }], 'ties go to the smaller value');
        }
        if (tag === 'hashed' && to === 'peft') assert.equal((py as Summary).config_text?.includes('"use_dora": false'), true, 'the PEFT config keeps lora_adapter_metadata\'s fields');
      }
    }
    const bad = python(['-c', `
import sys, nola_reader
try:
    nola_reader.load(sys.argv[1], to='lycoris'); print('loaded')
except nola_reader.UsageError as e:
    print(e.exit_code, e)
`, path.join(work, 'prior.nola.safetensors')]);
    assert.equal(bad.trim(), "2 to must be None, 'peft', 'kohya' or 'diffusers', got 'lycoris'");
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('python reader: its DCT-III equals src/core/dct.ts bit for bit on every FFT plan kind', (t) => {
  if (!numpy) return t.skip(NO_NUMPY);
  // 1..16 (radix-2 and small direct), 47/48 (direct), 53, 97, 1031 (Bluestein), composites through one split.
  const sizes = [1, 2, 3, 5, 6, 7, 12, 16, 47, 48, 49, 53, 96, 97, 100, 210, 1024, 1031, 1536, 2062, 3072, 6144, 12372];
  let seed = 12345;
  const rnd = (): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed / 2 ** 32 - 0.5; };
  const inputs = sizes.map((n) => Float64Array.from({ length: n }, (_, i) => (i % 7 === 0 ? 0 : rnd())));
  const expected = inputs.map((x) => { const out = new Float64Array(x.length); dct3(x, out, x.length); return out; });
  const blob = Buffer.concat(inputs.map((x) => Buffer.from(x.buffer)));
  const script = `
import sys, json, numpy as np
from nola_reader import _fft
sizes = json.loads(sys.argv[1]); data = np.frombuffer(sys.stdin.buffer.read(), '<f8'); at = 0; out = []
for n in sizes:
    out.append(_fft.dct3(data[at:at + n][None, :])[0]); at += n
sys.stdout.write(np.concatenate(out).astype('<f8').tobytes().hex())
`;
  const r = spawnSync('python3', ['-c', script, JSON.stringify(sizes)], { env: { ...process.env, PYTHONPATH }, input: blob, maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, r.stderr?.toString());
  const got = Buffer.from(r.stdout.toString(), 'hex');
  let at = 0;
  for (const [i, n] of sizes.entries()) {
    const want = Buffer.from(expected[i].buffer);
    assert.ok(got.subarray(at, at + 8 * n).equals(want), `n = ${n}: float64 bits differ`);
    at += 8 * n;
  }
});

test('python reader: the selections of component bases made in lockstep (full_selections) equal src/core/orthogonal-basis.ts', (t) => {
  if (!numpy) return t.skip(NO_NUMPY);
  // 40 seeds take the lockstep (LOCKSTEP_MIN_SEEDS = 32), 5 the plain loop; lengths 1 and 2 are the edge cases
  // (every r = t at the last step), 1280 and 4099 a real layer's and an odd one.
  const cases = [40, 5].flatMap((count) => [1, 2, 3, 97, 1280, 4099].map((n) => ({ n, seeds: Array.from({ length: count }, (_, i) => componentSeed(0x9e3779b9 + n, i)) })));
  const want = cases.map(({ n, seeds }) => seeds.map((s) => Array.from(orthogonalSelection(s, n, n))));
  const script = `
import sys, json
from nola_reader._synth import full_selections
print(json.dumps([full_selections(c['seeds'], c['n']).tolist() for c in json.loads(sys.stdin.read())]))
`;
  const r = spawnSync('python3', ['-c', script], { encoding: 'utf8', env: { ...process.env, PYTHONPATH }, input: JSON.stringify(cases), maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout) as number[][][];
  for (const [i, c] of cases.entries()) assert.deepEqual(got[i], want[i], `${c.seeds.length} seeds of length ${c.n}`);
});

test('python reader: bad input raises its typed errors (format error exit code 3)', (t) => {
  if (!numpy) return t.skip(NO_NUMPY);
  const work = mkdtempSync(path.join(tmpdir(), 'nola-py-bad-'));
  try {
    writeFileSync(path.join(work, 'junk.safetensors'), 'definitely not safetensors');
    writeF64Adapter(path.join(work, 'lora'));
    const out = python(['-c', `
import sys, nola_reader
for f in sys.argv[1:]:
    try:
        nola_reader.load(f); print('loaded')
    except nola_reader.NolaError as e:
        print(type(e).__name__, e.exit_code)
`, path.join(work, 'junk.safetensors'), path.join(work, 'lora', 'adapter_model.safetensors')]);
    assert.deepEqual(out.trim().split('\n'), ['FormatError 3', 'FormatError 3']);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('python reader: a stored config whose pattern has an array-index key beside others is refused by both readers, in the same words', async (t) => {
  if (!numpy) return t.skip(NO_NUMPY);
  const work = mkdtempSync(path.join(tmpdir(), 'nola-py-index-key-'));
  try {
    writeF64Adapter(path.join(work, 'lora'));
    const good = path.join(work, 'good.nola.safetensors');
    assert.equal((await runNola(['compress', path.join(work, 'lora'), '-o', good, '--max-error', '0.3'])).code, 0);
    // A hand-edited document: PEFT would take the keys in the text's order, a JavaScript reader lists "0" first.
    const edited = editDocumentText(readFileSync(good), (text) => text.replace('"lora_alpha":16,', '"lora_alpha":16,"alpha_pattern":{"q":16,"0":4},'));
    assert.ok(edited !== null && edited.length > 0);
    const bad = path.join(work, 'bad.nola.safetensors');
    writeFileSync(bad, edited);
    const exp = await runNola(['expand', bad, '-o', path.join(work, 'out') + path.sep]);
    assert.equal(exp.code, 3, exp.stderr);
    const line = exp.stderr.split('\n').find((l) => l.startsWith('nola: error: '))!;
    assert.match(line, /alpha_pattern key '0' is an array index/);
    const py = readerSummary(bad) as Refusal;
    assert.equal(py.error, 'FormatError');
    assert.equal(py.exit_code, 3);
    assert.ok(line.endsWith(py.message.replace(/^[^:]*: /, '')), `${py.message} vs ${line}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

/** A python3 that has torch (the reader's optional framework), if any: the one on PATH, else the system one. */
function pythonWithTorch(): string | undefined {
  for (const exe of ['python3', '/usr/bin/python3']) {
    if (spawnSync(exe, ['-c', 'import torch, numpy'], { encoding: 'utf8' }).status === 0) return exe;
  }
  return undefined;
}

test("python reader with framework 'pt': torch tensors of the expanded dtypes (bfloat16, float16, float32) and the same bytes", { timeout: 300_000 }, async (t) => {
  const exe = pythonWithTorch();
  if (exe === undefined) return t.skip('no python3 with torch and numpy: the optional torch output is not checked here');
  const work = mkdtempSync(path.join(tmpdir(), 'nola-py-pt-'));
  try {
    const fixtures = await generateFixtures(path.join(work, 'src'));
    const script = `
import sys, json, hashlib, torch, nola_reader
l = nola_reader.load(sys.argv[1], 'pt')
def raw(t):
    return (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
print(json.dumps([[n, str(t.dtype), list(t.shape), hashlib.sha256(raw(t)).hexdigest()] for n, t in l.tensors.items()]))
`;
    const torchName: Record<string, string> = { F32: 'torch.float32', F16: 'torch.float16', BF16: 'torch.bfloat16', F64: 'torch.float64', I64: 'torch.int64' };
    const seen = new Set<string>();
    for (const [i, f] of fixtures.entries()) {
      const nolaFile = path.join(work, `${i}.nola.safetensors`);
      assert.equal((await runNola(['compress', f.path, '-o', nolaFile])).code, 0);
      const outDir = path.join(work, `out${i}`) + path.sep;
      const exp = await runNola(['expand', nolaFile, '-o', outDir, '--json']);
      assert.equal(exp.code, 0, exp.stderr);
      const file = fileSummary((JSON.parse(exp.stdout) as { output: string }).output);
      const r: SpawnSyncReturns<string> = spawnSync(exe as string, ['-c', script, nolaFile], { encoding: 'utf8', env: { ...process.env, PYTHONPATH }, maxBuffer: 1 << 26 });
      assert.equal(r.status, 0, r.stderr);
      const got = JSON.parse(r.stdout) as Array<[string, string, number[], string]>;
      const want = file.tensors.filter((x) => torchName[x[1]] !== undefined);
      const byName = new Map(got.map((g) => [g[0], g]));
      for (const [name, dtype, shape, sha] of want) {
        assert.deepEqual(byName.get(name), [name, torchName[dtype], shape, sha], `${f.path}: ${name}`);
        seen.add(dtype);
      }
    }
    for (const d of ['F32', 'F16', 'BF16']) assert.ok(seen.has(d), `a ${d} tensor was checked`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test("python reader: its JSON.stringify / Number#toString equal JavaScript's (metadata and config text)", (t) => {
  if (!numpy) return t.skip(NO_NUMPY);
  let seed = 99;
  const rnd = (): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed / 2 ** 32; };
  const numbers: number[] = [0, -0, 1, 16, 0.1, 1 / 3, 2 / 3 * 16, 1e21, 1e-7, 1.5e-7, 123456789012345680000, 5e-324, 1.7976931348623157e308, 1e-6, 0.000001234, 100, 2 ** 53, 2 ** 53 + 2];
  for (let i = 0; i < 300; i++) numbers.push((rnd() - 0.5) * 10 ** Math.floor(rnd() * 60 - 30));
  const value = { r: 4, lora_alpha: 5.333333333333333, '10': 'x', '2': [1, 2.5, { a: null, b: true }], rank_pattern: { 'a\\.b': 3 }, alpha_pattern: {}, list: [], s: 'é "q" \\ \n\t\u0001' };
  const out = JSON.parse(python(['-c', `
import sys, json
from nola_reader import _js
nums = json.loads(sys.argv[1]); value = json.loads(sys.argv[2])
print(json.dumps({'numbers': [_js.number(x) for x in nums], 'compact': _js.stringify(value), 'indented': _js.stringify(value, 2)}))
`, JSON.stringify(numbers), JSON.stringify(value)])) as { numbers: string[]; compact: string; indented: string };
  assert.deepEqual(out.numbers, numbers.map((x) => String(x)));
  assert.equal(out.compact, JSON.stringify(value));
  assert.equal(out.indented, JSON.stringify(value, null, 2));
});

test("python reader: nola's limits (values per factor, output bytes, uniform-basis work), checked before decoding, refused with nola's figures", async (t) => {
  if (!numpy) return t.skip(NO_NUMPY);
  const work = mkdtempSync(path.join(tmpdir(), 'nola-py-limits-'));
  try {
    writeF64Adapter(path.join(work, 'lora'));
    const nolaFile = path.join(work, 'x.nola.safetensors');
    // The paper preset: a uniform basis, so all three limits apply.
    assert.equal((await runNola(['compress', path.join(work, 'lora'), '-o', nolaFile, '--preset', 'paper'])).code, 0);
    const load = (file: string, kw: Record<string, number>): Partial<Refusal> => readerSummary(file, undefined, kw) as Partial<Refusal>;
    // nola's CLI is the second method: the figures it prints at limit 1 are the ones the reader must print.
    const cases = [
      { option: '--max-factor-values', kw: 'max_factor_values', figure: / is (\d+ x \d+) values/ },
      { option: '--max-output-bytes', kw: 'max_output_bytes', figure: / would produce (\d+) bytes/ },
      { option: '--max-basis-work', kw: 'max_basis_work', figure: / need (\S+) multiply-adds/ },
    ];
    for (const c of cases) {
      const cli = await runNola([c.option, '1', 'expand', nolaFile, '-o', path.join(work, 'out.safetensors')]);
      assert.equal(cli.code, 7, `${c.option} 1: ${cli.stderr}`);
      const want = c.figure.exec(cli.stderr)?.[1];
      assert.ok(want !== undefined, `nola's message: ${cli.stderr}`);
      const py = load(nolaFile, { [c.kw]: 1 });
      assert.equal(py.error, 'IoError', `${c.kw}=1: ${JSON.stringify(py)}`);
      assert.equal(py.exit_code, 7);
      assert.equal(c.figure.exec(py.message!)?.[1], want, `${c.kw}=1: ${py.message} (nola: ${cli.stderr.trim()})`);
      assert.ok(py.message!.startsWith(`${nolaFile}: `) && py.message!.includes(`${c.kw}= raises it`), py.message);
    }
    assert.ok(((readerSummary(nolaFile) as Summary).tensors ?? []).length > 0, 'the defaults load it');
    // A document that claims a factor of 2^24 x rank values (d_out and shape_B edited, blocks unchanged: a valid
    // file) is refused at the default limit before the reader allocates it, as nola refuses it; one of 2^31 x rank
    // values breaks the format's own bound (rank·d_in, d_out·rank ≤ 2^31 − 1), a format error in both.
    const claim = (dOut: number): string => {
      const file = path.join(work, `claim-${dOut}.nola.safetensors`);
      writeFileSync(file, editDocumentText(readFileSync(nolaFile), (text) => {
        // The paper preset writes format version 1: layers are objects (version 2 and 3: rows of layer_fields).
        const doc = JSON.parse(text) as { layers: Array<Record<string, unknown> & { shape_B: number[] }> };
        doc.layers[0].d_out = dOut;
        doc.layers[0].shape_B[0] = dOut;
        return JSON.stringify(doc);
      })!);
      return file;
    };
    const big = load(claim(2 ** 24), {});
    assert.equal(big.error, 'IoError', JSON.stringify(big));
    assert.match(big.message!, / factor B is 16777216 x \d+ values .* more than the limit of 16777216 values per factor/);
    assert.equal((await runNola(['expand', claim(2 ** 24), '-o', path.join(work, 'big.safetensors')])).code, 7, 'nola refuses it at its limit too');
    const huge = load(claim(2 ** 31), {});
    assert.equal(huge.error, 'FormatError', JSON.stringify(huge));
    assert.equal((await runNola(['expand', claim(2 ** 31), '-o', path.join(work, 'huge.safetensors')])).code, 3, 'nola: a format error too');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test("python reader: a layer's ranks and shapes are refused as nola refuses them (rank above the source rank, source rank above min(d_in, d_out), shapes that do not match)", async (t) => {
  if (!numpy) return t.skip(NO_NUMPY);
  const work = mkdtempSync(path.join(tmpdir(), 'nola-py-ranks-'));
  try {
    writeF64Adapter(path.join(work, 'lora'));
    const v3 = path.join(work, 'v3.nola.safetensors'), v1 = path.join(work, 'v1.nola.safetensors');
    assert.equal((await runNola(['compress', path.join(work, 'lora'), '-o', v3, '--rank', '4'])).code, 0);
    assert.equal((await runNola(['compress', path.join(work, 'lora'), '-o', v1, '--preset', 'paper'])).code, 0);
    type Doc = { layer_fields?: string[]; layers: Array<Array<unknown> | Record<string, unknown>> };
    const edits: Array<[string, string, (doc: Doc) => void]> = [
      ['rank above the source rank', v3, (d) => { (d.layers[0] as unknown[])[d.layer_fields!.indexOf('rank')] = 9; }],
      ['source rank above min(d_in, d_out)', v3, (d) => { ((d.layers[2] as unknown[])[d.layer_fields!.indexOf('shape_A')] as number[])[0] = 31; }],
      ['version 1: shape_B not [d_out, source_rank]', v1, (d) => { ((d.layers[0] as Record<string, number[]>).shape_B)[0] += 1; }],
      ['version 1: shape_A of a linear layer with 3 axes', v1, (d) => { (d.layers[0] as Record<string, unknown>).shape_A = [8, 96, 1]; }],
    ];
    for (const [name, file, edit] of edits) {
      const edited = path.join(work, 'edited.nola.safetensors');
      writeFileSync(edited, editDocumentText(readFileSync(file), (text) => { const d = JSON.parse(text) as Doc; edit(d); return JSON.stringify(d); })!);
      const cli = await runNola(['expand', edited, '-o', path.join(work, 'out.safetensors'), '--force']);
      assert.equal(cli.code, 3, `${name}: nola refuses it as a format error: ${cli.stderr}`);
      const py = readerSummary(edited) as Refusal;
      assert.equal(py.error, 'FormatError', `${name}: ${JSON.stringify(py).slice(0, 300)}`);
      assert.equal(py.exit_code, 3);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('python reader: a coefficient stream that does not match its stated SHA-256 is refused', async (t) => {
  if (!numpy) return t.skip(NO_NUMPY);
  const work = mkdtempSync(path.join(tmpdir(), 'nola-py-sha-'));
  try {
    writeF64Adapter(path.join(work, 'lora'));
    const nolaFile = path.join(work, 'x.nola.safetensors');
    assert.equal((await runNola(['compress', path.join(work, 'lora'), '-o', nolaFile])).code, 0);
    const buf = readFileSync(nolaFile);
    const n = Number(buf.readBigUInt64LE(0));
    const h = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
    buf[8 + n + h['nola.coeffs'].data_offsets[0] + 7] ^= 0x10; // one bit inside the first rice block's remainders
    writeFileSync(nolaFile, buf);
    const out = python(['-c', `
import sys, nola_reader
try:
    nola_reader.load(sys.argv[1]); print('loaded')
except nola_reader.FormatError as e:
    print('FormatError', 'SHA-256' in str(e))
`, nolaFile]);
    assert.equal(out.trim(), 'FormatError True');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
