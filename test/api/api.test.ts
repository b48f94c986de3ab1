/**
 * The programmatic API as a user imports it (`from 'nola'`, through package.json `exports`).
 *
 * Expected values come from a second path: the built CLI (`nola expand`) writes the expanded files,
 * and a minimal safetensors parser here (independent of src/io) reads them back. load() must give the
 * same tensors (order, names, dtypes, shapes, bytes), the same metadata and the same adapter config,
 * without writing anything. Errors must be the exported classes with their exit codes, and a script
 * that hits every kind of bad input must finish on its own with nothing on stdout or stderr.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  compress, expand, inspect, load, toFloat32Array, EXIT, FormatError, IoError, NolaError, UsageError, type LoadedLora,
} from 'nola';
import { REPO, runNola } from '../cli/cli-helpers.js';
import { generateFixtures } from '../../fixtures/generate.js';

const REAL = path.resolve(REPO, '../shared/real-loras');

interface FileTensor { name: string; dtype: string; shape: number[]; bytes: Buffer }

/** A safetensors file as stored: metadata, and tensors in header order with their bytes. */
export function readStored(file: string): { metadata: Record<string, string> | null; tensors: FileTensor[] } {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const metadata = (header.__metadata__ as Record<string, string> | undefined) ?? null;
  delete header.__metadata__;
  const tensors = Object.entries(header as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>).map(
    ([name, h]) => ({ name, dtype: h.dtype, shape: h.shape, bytes: buf.subarray(8 + n + h.data_offsets[0], 8 + n + h.data_offsets[1]) }));
  return { metadata, tensors };
}

function listTree(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();
}

/** load() against the files `nola expand` wrote into outDir (the LoRA, and adapter_config.json when there is one). */
function assertSameAsExpanded(loaded: LoadedLora, expandedFile: string, what: string): void {
  const stored = readStored(expandedFile);
  assert.deepEqual(loaded.tensors.map((t) => t.name), stored.tensors.map((t) => t.name), `${what}: tensor names in file order`);
  for (let i = 0; i < stored.tensors.length; i++) {
    const s = stored.tensors[i], l = loaded.tensors[i];
    assert.equal(l.dtype, s.dtype, `${what}: ${s.name} dtype`);
    assert.deepEqual(l.shape, s.shape, `${what}: ${s.name} shape`);
    assert.ok(l.bytes instanceof Uint8Array, `${what}: ${s.name} bytes is a Uint8Array`);
    assert.ok(Buffer.from(l.bytes.buffer, l.bytes.byteOffset, l.bytes.byteLength).equals(s.bytes), `${what}: ${s.name} bytes`);
  }
  assert.deepEqual(loaded.metadata, stored.metadata, `${what}: metadata`);
  const configFile = path.join(path.dirname(expandedFile), 'adapter_config.json');
  if (existsSync(configFile)) {
    // Compared as text: expand writes JSON.stringify(config, null, 2); key order matters to PEFT's pattern precedence.
    assert.equal(JSON.stringify(loaded.config, null, 2), readFileSync(configFile, 'utf8'), `${what}: adapter config`);
  } else {
    assert.equal(loaded.config, null, `${what}: no config`);
  }
}

const SHARED = [
  { dir: 'peft-distilbert-imdb', file: 'adapter_model.safetensors' },
  { dir: 'diffusers-sd15', file: 'pytorch_lora_weights.safetensors' },
  { dir: 'diffusers-sd2-bf16', file: 'pytorch_lora_weights.safetensors' },
];

for (const c of SHARED) {
  test(`api ${c.dir}: compress(), then load() equals the bytes, metadata and config nola expand writes`, { timeout: 300_000 }, async (t) => {
    const source = path.join(REAL, c.dir);
    if (!existsSync(source)) return t.skip(`${source} not found (../shared/real-loras is beside the checkout in CI)`);
    const work = mkdtempSync(path.join(tmpdir(), 'nola-api-'));
    try {
      const nolaFile = path.join(work, 'x.nola.safetensors');
      const progress: number[] = [];
      const { output, report } = await compress(source, { output: nolaFile, threads: 1, onProgress: (d) => progress.push(d) });
      assert.equal(output, nolaFile);
      assert.ok(report.totals.maxError <= 0.1, 'the default bound holds');
      assert.equal(progress.at(-1), report.layers.length, 'progress reaches every layer');
      const info = await inspect(nolaFile);
      assert.equal(info.kind, 'nola');

      const before = listTree(work);
      const loaded = await load(nolaFile);
      assert.deepEqual(listTree(work), before, 'load() writes nothing');

      const exp = await runNola(['expand', nolaFile, '-o', path.join(work, 'cli') + path.sep]);
      assert.equal(exp.code, 0, exp.stderr);
      assertSameAsExpanded(loaded, path.join(work, 'cli', c.file), c.dir);
      // Synthesized on two worker threads: the same bytes.
      assertSameAsExpanded(await load(nolaFile, { threads: 2 }), path.join(work, 'cli', c.file), `${c.dir} (threads 2)`);

      // expand() writes what the CLI writes.
      const api = await expand(nolaFile, { output: path.join(work, 'api') + path.sep });
      assert.ok(readFileSync(api.output).equals(readFileSync(path.join(work, 'cli', c.file))), 'expand() and nola expand write the same file');
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
}

test('api on the generated fixtures: load() equals nola expand (kohya hashes and alphas, F16/BF16, PEFT patterns, rslora, passthrough)', { timeout: 300_000 }, async () => {
  const work = mkdtempSync(path.join(tmpdir(), 'nola-api-fx-'));
  try {
    const fixtures = await generateFixtures(path.join(work, 'src'));
    let hashed = 0;
    for (const [i, f] of fixtures.entries()) {
      const nolaFile = path.join(work, `${i}.nola.safetensors`);
      // Every other one at a fixed setting (uniform basis, int8) so both bases and several storage modes are covered.
      const flags = i % 2 === 0 ? ['--max-error', '0.05'] : ['--coeffs', '200', '--quant', 'int8'];
      const comp = await runNola(['compress', f.path, '-o', nolaFile, ...flags]);
      assert.equal(comp.code, 0, `${f.path}: ${comp.stderr}`);
      const out = path.join(work, `out${i}`) + path.sep;
      const exp = await runNola(['expand', nolaFile, '-o', out]);
      assert.equal(exp.code, 0, exp.stderr);
      const loaded = await load(nolaFile);
      assertSameAsExpanded(loaded, path.join(out, path.basename(f.path)), path.relative(work, f.path));
      if (loaded.metadata?.sshs_model_hash !== undefined) hashed++;
    }
    assert.ok(hashed > 0, 'some fixture carries kohya hashes (recomputed over the in-memory bytes)');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('api: toFloat32Array decodes a BF16 tensor as the bits say (bf16 = the high half of a float32)', async (t) => {
  const work = mkdtempSync(path.join(tmpdir(), 'nola-api-bf16-'));
  try {
    const fixtures = await generateFixtures(path.join(work, 'src'));
    const f = fixtures.find((x) => x.path.endsWith('kohya-sdxl-bf16.safetensors'));
    if (!f) return t.skip('no BF16 fixture');
    const nolaFile = path.join(work, 'x.nola.safetensors');
    await compress(f.path, { output: nolaFile, threads: 1 });
    const tensor = (await load(nolaFile)).tensors.find((x) => x.dtype === 'BF16')!;
    const bits = new Uint16Array(tensor.bytes.buffer.slice(tensor.bytes.byteOffset, tensor.bytes.byteOffset + tensor.bytes.byteLength));
    const wide = new Uint32Array(bits.length);
    for (let i = 0; i < bits.length; i++) wide[i] = bits[i] << 16;
    assert.deepEqual(toFloat32Array(tensor), new Float32Array(wide.buffer));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('api: bad input throws the exported error classes with their exit codes', async () => {
  const work = mkdtempSync(path.join(tmpdir(), 'nola-api-err-'));
  try {
    const missing = path.join(work, 'missing.nola.safetensors');
    const junk = path.join(work, 'junk.safetensors');
    writeFileSync(junk, Buffer.from('not a safetensors file at all'));
    const fixtures = await generateFixtures(path.join(work, 'src'));
    const lora = fixtures[0].path;
    const cases: Array<[string, () => Promise<unknown>, new (...a: never[]) => NolaError, number]> = [
      ['load of a missing file', () => load(missing), IoError, EXIT.io],
      ['load of a file that is not safetensors', () => load(junk), FormatError, EXIT.format],
      ['load of a LoRA (not a NOLA file)', () => load(lora), FormatError, EXIT.format],
      ['inspect of a missing file', () => inspect(missing), IoError, EXIT.io],
      ['expand of a file that is not safetensors', () => expand(junk), FormatError, EXIT.format],
      ['compress with a negative maxError', () => compress(lora, { output: path.join(work, 'a.nola'), maxError: -1 }), UsageError, EXIT.usage],
      ['compress with an unknown format', () => compress(lora, { format: 'lycoris' as never }), UsageError, EXIT.usage],
      ['load with an unknown target family', () => load(lora, { to: 'onnx' as never }), UsageError, EXIT.usage],
    ];
    for (const [what, run, cls, code] of cases) {
      await assert.rejects(run, (e: unknown) => {
        assert.ok(e instanceof cls, `${what}: ${String(e)} is a ${cls.name}`);
        assert.ok(e instanceof NolaError, `${what}: a NolaError`);
        assert.equal((e as NolaError).exitCode, code, `${what}: exit code`);
        assert.equal((e as Error).name, cls.name);
        return true;
      }, what);
    }
    const existing = path.join(work, 'exists.nola.safetensors');
    writeFileSync(existing, 'x');
    await assert.rejects(() => compress(lora, { output: existing }), UsageError, 'an existing output without force');
    assert.equal(readFileSync(existing, 'utf8'), 'x', 'left untouched');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('api: a script hitting bad input and loading a file never exits the process and prints nothing', { timeout: 120_000 }, async () => {
  const work = mkdtempSync(path.join(tmpdir(), 'nola-api-proc-'));
  try {
    // A user's project: node_modules/nola is this package, imported by name.
    mkdirSync(path.join(work, 'node_modules'));
    symlinkSync(REPO, path.join(work, 'node_modules', 'nola'), 'dir');
    const fixtures = await generateFixtures(path.join(work, 'src'));
    const lora = fixtures[0].path;
    const nolaFile = path.join(work, 'x.nola.safetensors');
    const script = path.join(work, 'user.mjs');
    writeFileSync(script, `
      import { writeFileSync } from 'node:fs';
      import { compress, load, inspect, expand, NolaError } from 'nola';
      const exits = [];
      process.exit = (code) => { exits.push(code); throw new Error('process.exit called'); };
      const caught = [];
      const attempt = async (f) => { try { await f(); caught.push(null); } catch (e) { caught.push(e instanceof NolaError ? e.exitCode : 'untyped: ' + e.message); } };
      await attempt(() => load(${JSON.stringify(path.join(work, 'nope'))}));
      await attempt(() => load(${JSON.stringify(lora)}));
      await attempt(() => expand(${JSON.stringify(lora)}));
      await attempt(() => compress(${JSON.stringify(lora)}, { ratio: 'lots' }));
      await attempt(() => compress(${JSON.stringify(lora)}, { output: ${JSON.stringify(nolaFile)}, threads: 2 }));
      await attempt(() => inspect(${JSON.stringify(nolaFile)}));
      await attempt(() => load(${JSON.stringify(nolaFile)}, { threads: 2 }));
      writeFileSync(process.argv[2], JSON.stringify({ exits, caught, exitCode: process.exitCode ?? null }));
    `);
    const result = path.join(work, 'result.json');
    const r = spawnSync(process.execPath, [script, result], { cwd: work, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '', 'nothing on stdout');
    assert.equal(r.stderr, '', 'nothing on stderr');
    const out = JSON.parse(readFileSync(result, 'utf8')) as { exits: number[]; caught: Array<number | null | string>; exitCode: number | null };
    assert.deepEqual(out.exits, [], 'process.exit never called');
    assert.equal(out.exitCode, null, 'process.exitCode never set');
    assert.deepEqual(out.caught, [EXIT.io, EXIT.format, EXIT.format, EXIT.usage, null, null, null]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('api: the README example runs as written (in a project whose node_modules/nola is this package)', { timeout: 120_000 }, async () => {
  const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Use it from code'));
  const example = /```js\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(example, 'the README has a js example under "Use it from code"');
  const work = mkdtempSync(path.join(tmpdir(), 'nola-api-readme-'));
  try {
    mkdirSync(path.join(work, 'node_modules'));
    symlinkSync(REPO, path.join(work, 'node_modules', 'nola'), 'dir');
    const fixtures = await generateFixtures(path.join(work, 'fx'));
    const peft = fixtures.find((f) => f.path.endsWith(path.join('tiny-peft', 'adapter_model.safetensors')))!;
    mkdirSync(path.join(work, 'adapter'));
    for (const name of ['adapter_model.safetensors', 'adapter_config.json']) {
      writeFileSync(path.join(work, 'adapter', name), readFileSync(path.join(path.dirname(peft.path), name)));
    }
    writeFileSync(path.join(work, 'example.mjs'), example);
    const r = spawnSync(process.execPath, ['example.mjs'], { cwd: work, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '', 'no error printed');
    assert.match(r.stdout, /^adapter\.nola\.safetensors 0\.\d+ \d/, 'compress and inspect results printed');
    assert.match(r.stdout, /lora_A\.weight F\d+/, 'tensors listed');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('api: a TypeScript project importing nola type-checks against the package types (and they are not any)', { timeout: 120_000 }, () => {
  const work = mkdtempSync(path.join(tmpdir(), 'nola-api-ts-'));
  try {
    mkdirSync(path.join(work, 'node_modules'));
    symlinkSync(REPO, path.join(work, 'node_modules', 'nola'), 'dir');
    writeFileSync(path.join(work, 'package.json'), '{ "type": "module" }');
    writeFileSync(path.join(work, 'user.ts'), [
      "import { load, compress, inspect, expand, FormatError, EXIT, type LoadedLora, type CompressResult } from 'nola';",
      "const lora: LoadedLora = await load('x.nola.safetensors');",
      'const rows: number = lora.tensors[0].shape[0] + lora.tensors[0].bytes.byteLength;',
      "const result: CompressResult = await compress('adapter/', { maxError: 0.1, threads: 2 });",
      'const worst: number = result.report.totals.maxError;',
      "const info = await inspect('x'); const kind: 'lora' | 'nola' = info.kind;",
      "const out: string = (await expand('x', { to: 'kohya' })).output;",
      'const code: number = new FormatError(\'m\').exitCode + EXIT.usage;',
      '// @ts-expect-error options are typed: maxError is a number',
      "await compress('a', { maxError: true });",
      '// @ts-expect-error families are a closed set',
      "await load('a', { to: 'onnx' });",
      'console.log(rows, worst, kind, out, code);',
    ].join('\n'));
    const tsc = path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = spawnSync(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022',
      '--types', 'node', '--typeRoots', path.join(REPO, 'node_modules', '@types'), 'user.ts'], { cwd: work, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
