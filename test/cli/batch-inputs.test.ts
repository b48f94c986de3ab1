/**
 * Finding the inputs of a run over many files (src/pipeline/batch-inputs.ts): the folder walk and its
 * PEFT folders, patterns, relative paths, and the shard key. Shard numbers were computed with
 * python3's hashlib (int(sha256(path).hexdigest()[:12], 16) % N), not with the code under test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { discoverInputs, expandGlob, parseList, parseShard, shardOf } from '../../src/pipeline/batch-inputs.js';
import { UsageError } from '../../src/errors.js';

test('shardOf: first 48 bits of the SHA-256 of the relative path, mod N (values from python3 hashlib)', () => {
  const expected: Array<[string, number[]]> = [
    ['a/b.safetensors', [0, 0, 0, 5]],
    ['peft/adapter_model.safetensors', [0, 1, 3, 3]],
    ['x.safetensors', [0, 0, 2, 3]],
    ['deep/er/k.safetensors', [0, 0, 2, 4]],
  ];
  for (const [p, shards] of expected) assert.deepEqual([1, 2, 4, 7].map((n) => shardOf(p, n)), shards, p);
});

test('parseShard: I/N, auto from JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID, and its refusals', () => {
  assert.deepEqual(parseShard('2/4', undefined, {}), { index: 2, count: 4 });
  assert.deepEqual(parseShard('auto', '8', { JOB_COMPLETION_INDEX: '5' }), { index: 5, count: 8 });
  assert.deepEqual(parseShard('auto', '8', { SLURM_ARRAY_TASK_ID: '7' }), { index: 7, count: 8 });
  assert.deepEqual(parseShard('auto', '8', { JOB_COMPLETION_INDEX: '1', SLURM_ARRAY_TASK_ID: '7' }), { index: 1, count: 8 }, 'Kubernetes first');
  for (const [spec, shards, env, what] of [
    ['4/4', undefined, {}, /not below/],
    ['1/0', undefined, {}, /at least 1/],
    ['x', undefined, {}, /I\/N/],
    ['auto', undefined, { JOB_COMPLETION_INDEX: '0' }, /--shards/],
    ['auto', '4', {}, /neither JOB_COMPLETION_INDEX/],
    ['auto', '4', { SLURM_ARRAY_TASK_ID: '4' }, /not below/],
    ['1/4', '4', {}, /--shards goes with --shard auto/],
  ] as const) {
    assert.throws(() => parseShard(spec, shards, env), (e: unknown) => e instanceof UsageError && what.test(e.message), `${spec} ${shards}`);
  }
});

test('the walk: LoRA files and PEFT folders, recursively; NOLA files, hidden names, other files and --out-dir left out', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nola-inputs-'));
  try {
    const touch = (p: string): void => {
      mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
      writeFileSync(path.join(dir, p), 'x');
    };
    for (const p of [
      'lib/a.safetensors', 'lib/a.nola.safetensors', 'lib/.hidden.safetensors', 'lib/notes.txt',
      'lib/sub/peft/adapter_model.safetensors', 'lib/sub/peft/adapter_config.json', 'lib/sub/peft/extra.safetensors',
      'lib/sub/deeper/b.safetensors', 'lib/out/c.safetensors', 'lib/.cache/d.safetensors',
    ]) touch(p);
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      const items = await discoverInputs(['lib'], { command: 'compress', exclude: ['lib/out'] });
      assert.deepEqual(items.map((i) => [i.input, i.rel]), [
        ['lib/a.safetensors', 'a.safetensors'],
        ['lib/sub/deeper/b.safetensors', 'sub/deeper/b.safetensors'],
        ['lib/sub/peft', 'sub/peft/adapter_model.safetensors'],
        ['lib/sub/peft/extra.safetensors', 'sub/peft/extra.safetensors'],
      ]);
      assert.deepEqual(items.map((i) => i.inputRel), ['a.safetensors', 'sub/deeper/b.safetensors', 'sub/peft', 'sub/peft/extra.safetensors']);
      // Named directly, a file or a PEFT folder keeps its own name; a missing path stays an input (it fails when processed).
      const direct = await discoverInputs(['lib/sub/peft', 'lib/a.safetensors', 'gone.safetensors'], { command: 'compress' });
      assert.deepEqual(direct.map((i) => [i.input, i.rel]), [
        ['lib/sub/peft', 'peft/adapter_model.safetensors'],
        ['lib/sub/peft/extra.safetensors', 'peft/extra.safetensors'],
        ['lib/a.safetensors', 'a.safetensors'],
        ['gone.safetensors', 'gone.safetensors'],
      ]);
      // --root: every relative path from there; the same file named twice is one input.
      const rooted = await discoverInputs(['lib/sub/deeper/b.safetensors', path.join(dir, 'lib/sub/deeper/b.safetensors')], { command: 'compress', root: 'lib' });
      assert.deepEqual(rooted.map((i) => i.rel), ['sub/deeper/b.safetensors']);
      // expand takes the NOLA files.
      assert.deepEqual((await discoverInputs(['lib'], { command: 'expand' })).map((i) => i.rel), ['a.nola.safetensors']);
      // Patterns.
      assert.deepEqual((await expandGlob('lib/**/*.safetensors')).matches.sort(), [
        'lib/a.nola.safetensors', 'lib/a.safetensors', 'lib/out/c.safetensors', 'lib/sub/deeper/b.safetensors',
        'lib/sub/peft/adapter_model.safetensors', 'lib/sub/peft/extra.safetensors',
      ]);
      assert.deepEqual((await expandGlob('lib/?.safetensors')).matches, ['lib/a.safetensors']);
      assert.deepEqual((await expandGlob('lib/sub/[dp]e*')).matches, ['lib/sub/deeper', 'lib/sub/peft']);
      assert.deepEqual((await expandGlob('lib/.c*/*')).matches, ['lib/.cache/d.safetensors']);
      // A pattern's matches are relative to its folders before the first wildcard, as a folder's entries are to it.
      const globbed = await discoverInputs(['lib/sub/*'], { command: 'compress' });
      assert.deepEqual(globbed.map((i) => i.rel), ['deeper/b.safetensors', 'peft/adapter_model.safetensors', 'peft/extra.safetensors']);
    } finally {
      process.chdir(cwd);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('parseList: one path a line; blank lines and # comments skipped; CRLF accepted', () => {
  assert.deepEqual(parseList('# library\r\na.safetensors\r\n\r\n  b/c  \n#x\n'), ['a.safetensors', 'b/c']);
});
