/**
 * Issue #12 item 8: a generated library (three sets of the fixture generator's 12 adapters: kohya,
 * diffusers and PEFT folders, one set nested two folders deep, plus three bad files) compressed in
 * one process. Expected inputs are listed from the generator's own manifests (not from nola's folder
 * walk); expected output names come from compressOutputFor, the one naming rule batch mode uses (it
 * calls the single-file default), so a change of that default moves these expectations with it.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateFixtures } from '../../fixtures/generate.js';
import { writeSafetensors } from '../../src/io/safetensors/writer.js';
import { compressOutputFor } from '../../src/pipeline/batch.js';
import { openNola } from '../../src/pipeline/nola-source.js';
import { EXIT } from '../../src/errors.js';
import type { BatchRecord } from '../../src/pipeline/batch-summary.js';
import { inBatches, runNola, startNola, waitFor } from './cli-helpers.js';

const dir = mkdtempSync(path.join(tmpdir(), 'nola-batch-'));
const SETS = ['lib/a', 'lib/b/nested', 'lib/c'];
const BAD = ['lib/bad/lokr.safetensors', 'lib/bad/truncated.safetensors', 'lib/bad/not-safetensors.safetensors'];
/** Every input the run must see, as its path relative to `dir` (a PEFT adapter is its folder). */
let inputs: string[] = [];
let good: string[] = [];

before(async () => {
  for (const set of SETS) {
    const files = await generateFixtures(path.join(dir, set));
    for (const f of files) good.push(path.relative(dir, f.configPath !== undefined ? path.dirname(f.path) : f.path));
  }
  mkdirSync(path.join(dir, 'lib/bad'), { recursive: true });
  const lokrStem = 'lora_unet_down_blocks_0_attentions_0_proj_in';
  await writeSafetensors(path.join(dir, BAD[0]), [
    { name: `${lokrStem}.lokr_w1`, dtype: 'F16', shape: [4, 4] },
    { name: `${lokrStem}.lokr_w2`, dtype: 'F16', shape: [16, 16] },
  ], { ss_network_module: 'lycoris.kohya', ss_network_args: '{"algo": "lokr"}' }, (s) => new Float64Array(s.shape[0] * s.shape[1]).fill(0.01));
  const whole = readFileSync(path.join(dir, 'lib/a/kohya-sd15.safetensors'));
  writeFileSync(path.join(dir, BAD[1]), whole.subarray(0, whole.length - 100));
  writeFileSync(path.join(dir, BAD[2]), 'this is not a safetensors file\n');
  good = good.sort();
  inputs = [...good, ...BAD].sort();
});

const rel = (p: string): string => path.relative(dir, path.resolve(dir, p));
const nola = (args: string[], env: NodeJS.ProcessEnv = {}) => runNola(args, { cwd: dir, env });

function readSummary(file: string): BatchRecord[] {
  return readFileSync(path.join(dir, file), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as BatchRecord);
}

/** Where the run must write input `input` under `outDir` (the batch naming rule). */
function expectedOutput(input: string, outDir: string): string {
  const abs = path.join(dir, input);
  const file = statSync(abs).isDirectory() ? path.join(abs, 'adapter_model.safetensors') : abs;
  const relFromLib = path.relative(path.join(dir, 'lib'), file).split(path.sep).join('/');
  const inputRel = path.relative(path.join(dir, 'lib'), abs).split(path.sep).join('/');
  return rel(compressOutputFor({ input, file, rel: relFromLib, inputRel }, path.join(dir, outDir)));
}

/** Every file under `root`, hidden ones included, relative to `dir`. */
function allFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(rel(p));
    }
  };
  if (existsSync(path.join(dir, root))) walk(path.join(dir, root));
  return out.sort();
}

const withoutTiming = (r: BatchRecord, outDir: string): Omit<BatchRecord, 'seconds'> => {
  const { seconds: _s, ...rest } = r;
  return { ...rest, output: r.output === null ? null : rel(r.output).replace(new RegExp(`^${outDir}/`), 'OUT/') };
};

test('one run over the library: every good adapter compressed under --out-dir, the bad ones refused by name, exit 8; a second run skips everything', async () => {
  const r = await nola(['compress', 'lib', '--out-dir', 'out', '--summary', 'one.jsonl', '--threads', '1']);
  assert.equal(r.code, EXIT.partial, r.stderr);
  assert.equal(EXIT.partial, 8);
  const records = readSummary('one.jsonl');
  assert.deepEqual(records.map((x) => rel(x.input)).sort(), inputs, 'one record per input, found by the walk');
  for (const x of records) {
    const input = rel(x.input);
    if (BAD.includes(input)) {
      assert.equal(x.status, 'failed', input);
      assert.equal(x.exit_code, EXIT.format, `${input}: ${x.reason}`);
      assert.ok(r.stdout.includes(x.input) && r.stdout.includes(x.reason!), `the totals table names ${input} and its reason`);
      assert.ok(r.stderr.includes(`failed ${x.input}`), `stderr has a line for ${input}`);
    } else {
      assert.equal(x.status, 'done', `${input}: ${x.reason}`);
      assert.equal(rel(x.output!), expectedOutput(input, 'out'));
      assert.ok(x.worst_error! <= 0.1 + 1e-9 && x.weighted_error! <= x.worst_error! + 1e-12, `${input}: errors within the default bound`);
      assert.equal(x.bytes_before, statSync(path.join(dir, input, statSync(path.join(dir, input)).isDirectory() ? 'adapter_model.safetensors' : '')).size);
      assert.equal(x.bytes_after, statSync(path.join(dir, x.output!)).size);
    }
  }
  assert.match(records.find((x) => rel(x.input) === BAD[0])!.reason!, /LoKr/);
  // The output tree: exactly the expected files (PEFT folders as folders), no temp files, nothing for the bad inputs.
  assert.deepEqual(allFiles('out'), good.map((g) => expectedOutput(g, 'out')).sort());
  assert.ok(allFiles('out').includes('out/b/nested/peft-patterns.nola'), 'layout: a nested PEFT folder is mirrored, its NOLA file named after the folder');
  assert.match(r.stdout, /^nola compress: 39 files: 36 done, 0 skipped, 3 failed/m);

  const mtimes = allFiles('out').map((f) => statSync(path.join(dir, f)).mtimeMs);
  const again = await nola(['compress', 'lib', '--out-dir', 'out', '--summary', 'two.jsonl', '--threads', '1']);
  assert.equal(again.code, EXIT.partial, again.stderr);
  const second = readSummary('two.jsonl');
  assert.deepEqual(second.filter((x) => x.status === 'skipped').map((x) => rel(x.input)).sort(), good);
  assert.equal(second.filter((x) => x.status === 'failed').length, BAD.length);
  assert.match(again.stdout, /^nola compress: 39 files: 0 done, 36 skipped, 3 failed/m);
  assert.deepEqual(allFiles('out').map((f) => statSync(path.join(dir, f)).mtimeMs), mtimes, 'a skip rewrites nothing');

  // Other settings: an existing output is not silently taken as up to date, nor replaced without --force.
  const other = await nola(['compress', 'lib/c/tiny-peft', 'lib/c/kohya-sd15.safetensors', '--out-dir', 'out/c', '--max-error', '0.2', '--summary', 'three.jsonl']);
  assert.equal(other.code, EXIT.partial, other.stderr);
  for (const x of readSummary('three.jsonl')) {
    assert.equal(x.status, 'failed');
    assert.equal(x.exit_code, EXIT.usage);
    assert.match(x.reason!, /--force/);
  }
  const forced = await nola(['compress', 'lib/c/tiny-peft', 'lib/c/kohya-sd15.safetensors', '--out-dir', 'out/c', '--max-error', '0.2', '--force', '--summary', 'four.jsonl']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.deepEqual(readSummary('four.jsonl').map((x) => x.status), ['done', 'done']);
});

test('four shards (I/N, JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID) cover every input exactly once, and their merged summary is the single run\'s', async () => {
  const single = await nola(['compress', 'lib', '--out-dir', 'single', '--summary', 'single.jsonl', '--threads', '1']);
  assert.equal(single.code, EXIT.partial, single.stderr);
  const runs = await inBatches([0, 1, 2, 3].map((i) => () => {
    const common = ['compress', 'lib', '--out-dir', 'sharded', '--summary', `shards/s${i}.jsonl`, '--threads', '1'];
    if (i === 0) return nola([...common, '--shard', 'auto', '--shards', '4'], { JOB_COMPLETION_INDEX: '0', SLURM_ARRAY_TASK_ID: undefined });
    if (i === 1) return nola([...common, '--shard', 'auto', '--shards', '4'], { JOB_COMPLETION_INDEX: undefined, SLURM_ARRAY_TASK_ID: '1' });
    return nola([...common, '--shard', `${i}/4`]);
  }), 2);
  const perShard = [0, 1, 2, 3].map((i) => existsSync(path.join(dir, `shards/s${i}.jsonl`)) ? readSummary(`shards/s${i}.jsonl`) : []);
  runs.forEach((r, i) => assert.equal(r.code, perShard[i].some((x) => x.status === 'failed') ? EXIT.partial : 0, r.stderr));
  const seen = perShard.flat().map((x) => rel(x.input)).sort();
  assert.deepEqual(seen, inputs, 'union = every input, and no input twice');
  assert.ok(perShard.filter((s) => s.length > 0).length >= 3, 'the inputs are spread over the shards');

  const merged = await nola(['summary', 'shards', '-o', 'merged.jsonl']);
  assert.equal(merged.code, EXIT.partial, merged.stderr);
  const a = readSummary('merged.jsonl').map((x) => withoutTiming(x, 'sharded'));
  const b = readSummary('single.jsonl').map((x) => withoutTiming(x, 'single')).sort((x, y) => (x.input < y.input ? -1 : 1));
  assert.deepEqual(a, b);
  for (const g of good) {
    const [x, y] = [expectedOutput(g, 'sharded'), expectedOutput(g, 'single')];
    assert.ok(readFileSync(path.join(dir, x)).equals(readFileSync(path.join(dir, y))), `${x}: the same bytes as one run writes`);
  }
  assert.match(merged.stdout, /^nola compress: 39 files: 36 done, 0 skipped, 3 failed/m);
});

/**
 * Starts `compress lib --out-dir OUT --summary OUT.jsonl` and sends `signal` once `finished` files are
 * in the summary and a temp file is being written: each atomic write holds its temp file 150 ms
 * before moving it into place, so the signal lands mid-write.
 */
async function stopMidRun(out: string, finished: number, signal: NodeJS.Signals): Promise<Awaited<ReturnType<typeof startNola>['done']>> {
  const { child, done } = startNola(['compress', 'lib', '--out-dir', out, '--summary', `${out}.jsonl`, '--threads', '1'], {
    cwd: dir, env: { NOLA_TEST_WRITE_DELAY_MS: '150' },
  });
  await waitFor(() => {
    const summary = path.join(dir, `${out}.jsonl`);
    const lines = existsSync(summary) ? readFileSync(summary, 'utf8').split('\n').length - 1 : 0;
    return lines >= finished && allFiles(out).some((f) => f.endsWith('.tmp'));
  }, 60_000, `${finished} finished files and a temp file being written`);
  child.kill(signal);
  return done;
}

test('a run killed with SIGKILL mid-write, then rerun, completes with no partial or temp files', async () => {
  const killed = await stopMidRun('killed', 6, 'SIGKILL');
  assert.equal(killed.signal, 'SIGKILL');
  assert.ok(allFiles('killed').some((f) => f.endsWith('.tmp')), 'the kill left a temp file behind (the case the rerun must clean)');
  const finishedBefore = readSummary('killed.jsonl').filter((x) => x.status === 'done').map((x) => rel(x.input));

  const rerun = await nola(['compress', 'lib', '--out-dir', 'killed', '--summary', 'killed.jsonl', '--threads', '1']);
  assert.equal(rerun.code, EXIT.partial, rerun.stderr);
  assert.deepEqual(allFiles('killed'), good.map((g) => expectedOutput(g, 'killed')).sort(), 'every output, and no temp file');
  const records = readSummary('killed.jsonl');
  const second = records.slice(-inputs.length);
  for (const f of finishedBefore) assert.equal(second.find((x) => rel(x.input) === f)?.status, 'skipped', `${f} was finished before the kill`);
  for (const g of good) {
    const n = await openNola(path.join(dir, expectedOutput(g, 'killed')));
    await n.reader.close();
  }
  // The killed run's lines and the rerun's, merged: every input once, the work of both runs kept.
  const merged = await nola(['summary', 'killed.jsonl', '--json']);
  const m = JSON.parse(merged.stdout) as { totals: { done: number; skipped: number; failed: number } };
  assert.deepEqual([m.totals.done, m.totals.skipped, m.totals.failed], [good.length, 0, BAD.length]);
});

test('a run stopped with SIGINT keeps its finished outputs, removes the one in progress, and says so', async () => {
  const r = await stopMidRun('stopped', 3, 'SIGINT');
  assert.equal(r.code, EXIT.interrupted, r.stderr);
  const left = allFiles('stopped');
  assert.ok(!left.some((f) => f.endsWith('.tmp')), 'the output in progress was removed');
  // What the message counts is what is on disk: every file the run put in place (the summary is appended, not placed).
  assert.ok(readSummary('stopped.jsonl').filter((x) => x.status === 'done').length >= 3);
  const last = r.stderr.trimEnd().split('\n').pop();
  assert.match(last ?? '', /^nola: interrupted; the output in progress was removed; (\d+) finished outputs? (was|were) kept$/);
  assert.equal(Number(/(\d+) finished/.exec(last ?? '')?.[1]), left.length, `${last}: one count per file put in place`);
});

test('inputs from --from-list with --root; refusals before any work', async () => {
  writeFileSync(path.join(dir, 'list.txt'), `# two adapters\n${path.join(dir, 'lib/a/tiny-peft')}\n\nlib/b/nested/diffusers-02x.safetensors\n`);
  const r = await nola(['compress', '--from-list', 'list.txt', '--root', 'lib', '--out-dir', 'listed', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { totals: { done: number }; files: BatchRecord[] };
  assert.equal(out.totals.done, 2);
  assert.deepEqual(allFiles('listed'), ['lib/a/tiny-peft', 'lib/b/nested/diffusers-02x.safetensors'].map((g) => expectedOutput(g, 'listed')).sort());

  for (const [args, what] of [
    [['compress', 'lib/a/tiny-peft', 'lib/c/tiny-peft'], /--out-dir/],
    [['compress', 'lib/a/tiny-peft', 'lib/c/tiny-peft', '--out-dir', 'x', '-o', 'y.nola.safetensors'], /-o names one output/],
    [['compress', 'lib', '--out-dir', 'x', '--shard', '4/4'], /shard index 4/],
    [['compress', 'lib', '--out-dir', 'x', '--shard', 'auto'], /--shards/],
    [['compress', 'lib/a/tiny-peft', 'lib/c/tiny-peft', '--out-dir', 'x', '--root', 'lib/a'], /outside --root/],
    [['compress', 'lib/a/kohya-sd15.safetensors', 'lib/c/kohya-sd15.safetensors', '--out-dir', 'x'], /--root/],
  ] as const) {
    const e = await nola([...args]);
    assert.equal(e.code, EXIT.usage, `${args.join(' ')}: ${e.stderr}`);
    assert.match(e.stderr, /^nola: error: /);
    assert.match(e.stderr, what);
    assert.equal(e.stderr.trim().split('\n').length, 1, e.stderr);
    assert.ok(!existsSync(path.join(dir, 'x')), 'nothing written');
  }
});

test('expand over a folder of NOLA files mirrors it and skips what is up to date', async () => {
  const r = await nola(['expand', 'listed', '--out-dir', 'expanded', '--summary', 'exp.jsonl']);
  assert.equal(r.code, 0, r.stderr);
  const recs = readSummary('exp.jsonl');
  assert.deepEqual(recs.map((x) => x.status), ['done', 'done']);
  for (const x of recs) assert.ok(rel(x.output!).startsWith('expanded/'), x.output!);
  const peft = recs.find((x) => x.family === 'peft')!;
  assert.ok(existsSync(path.join(dir, path.dirname(peft.output!), 'adapter_config.json')), 'the PEFT expansion is a folder with its config');
  const again = await nola(['expand', 'listed', '--out-dir', 'expanded', '--summary', 'exp.jsonl']);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(readSummary('exp.jsonl').slice(2).map((x) => x.status), ['skipped', 'skipped']);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
