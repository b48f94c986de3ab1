/**
 * The CLI's memory policy for library runs (bin/nola.js, src/cli/collect-garbage.ts,
 * LIBRARY_OLD_GENERATION_MB in src/pipeline/worker-pool.ts; docs/PERFORMANCE.md "Libraries"):
 * - V8's young generation is held at its starting size on the main thread and in every worker, for
 *   the whole of a run, even after workers start (a worker's start-up resets V8's process-wide flags;
 *   bin/nola.js sets the flag again as each worker comes online, and each worker has its own limit).
 *   The control is the same run through the CLI's module without bin/nola.js: there the new space
 *   grows, which shows the run is large enough for the test to fail if the policy went missing.
 * - The old generation does not hoard finished files' garbage: the main thread runs a major
 *   collection after a file once its heap has grown a step, and the fit workers of a library run have an old-generation limit
 *   that puts V8 in its conservative growing mode, while a single-file run keeps V8's default.
 * Measured with a preload that samples, in each thread, its new space, its heap limit and the major
 * collections performance hooks report.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { spawn } from 'node:child_process';
import { sd15Layers, writeDiffusersAdapter } from '../../bench/synthetic-adapter.js';
import { NOLA_BIN } from './cli-helpers.js';
import { LIBRARY_OLD_GENERATION_MB } from '../../src/pipeline/worker-pool.js';

const dir = mkdtempSync(path.join(tmpdir(), 'nola-memory-'));
const inputs = [1, 2, 3].map((i) => path.join(dir, `sd15-${i}.safetensors`));
/** new space of a V8 isolate before it ever grows: 2 semi-spaces of 1 MiB (Node 20, x64). */
const STARTING_NEW_SPACE = 2 * 2 ** 20;

before(async () => {
  for (const [i, f] of inputs.entries()) await writeDiffusersAdapter(f, sd15Layers(), i + 1);
  // In every thread (a preload runs in workers too), one file per thread: the largest new space
  // seen, the heap's limit and the number of major collections so far.
  writeFileSync(path.join(dir, 'sample.cjs'), `
    const { threadId } = require('node:worker_threads');
    const { getHeapSpaceStatistics, getHeapStatistics } = require('node:v8');
    const { PerformanceObserver, constants } = require('node:perf_hooks');
    const { writeFileSync } = require('node:fs');
    let newSpace = 0, majorGcs = 0;
    const save = () => writeFileSync(process.env.SAMPLE_DIR + '/thread-' + threadId,
      JSON.stringify({ newSpace, majorGcs, heapLimit: getHeapStatistics().heap_size_limit }));
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majorGcs++;
      save();
    }).observe({ entryTypes: ['gc'] });
    const sample = () => {
      const s = getHeapSpaceStatistics().find((x) => x.space_name === 'new_space').space_size;
      if (s > newSpace) { newSpace = s; save(); }
    };
    sample();
    setInterval(sample, 20).unref();
    process.on('exit', sample);
  `);
  writeFileSync(path.join(dir, 'no-policy.mjs'), `const m = await import(${JSON.stringify(pathToFileURL(path.join(path.dirname(NOLA_BIN), '..', 'dist', 'src', 'cli', 'main.js')).href)});\nawait m.main(process.argv);\n`);
});
after(() => rmSync(dir, { recursive: true, force: true }));

interface ThreadSample { newSpace: number; majorGcs: number; heapLimit: number }

function run(entry: string, out: string, files: readonly string[] = inputs): Promise<Map<number, ThreadSample>> {
  const samples = path.join(dir, `samples-${path.basename(out)}`);
  rmSync(samples, { recursive: true, force: true });
  mkdirSync(samples, { recursive: true });
  return new Promise((resolve, reject) => {
    const target = files.length === 1 ? ['-o', `${out}.nola.safetensors`] : ['--out-dir', out];
    const child = spawn(process.execPath, ['--require', path.join(dir, 'sample.cjs'), entry, 'compress', ...files, ...target, '--threads', '2', '-q'], {
      env: { ...process.env, SAMPLE_DIR: samples }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`exit ${code}: ${stderr}`));
      resolve(new Map(readdirSync(samples).map((f) => [Number(f.slice('thread-'.length)), JSON.parse(readFileSync(path.join(samples, f), 'utf8')) as ThreadSample])));
    });
  });
}

test('a library run holds the young generation at its starting size in every thread and keeps the old generation close to what is live', { timeout: 120_000 }, async () => {
  const held = await run(NOLA_BIN, path.join(dir, 'held'));
  assert.ok(held.size >= 2, `workers ran (threads seen: ${[...held.keys()].join(', ')})`);
  for (const [thread, s] of held) assert.ok(s.newSpace <= STARTING_NEW_SPACE, `thread ${thread}: new space grew to ${s.newSpace} bytes`);

  // The old generation of the same run: the main thread collects after a file once its heap has
  // grown a step (after the first file always; the rule itself: test/cli/collect-garbage.test.ts),
  // and workers are limited to LIBRARY_OLD_GENERATION_MB (V8 adds the young generation to the limit it reports).
  assert.ok(held.get(0)!.majorGcs >= 1, `main thread: ${held.get(0)!.majorGcs} major collections over ${inputs.length} files`);
  for (const [thread, s] of held) {
    if (thread !== 0) assert.ok(s.heapLimit <= (LIBRARY_OLD_GENERATION_MB + 8) * 2 ** 20, `worker ${thread}: heap limit ${s.heapLimit} bytes`);
  }

  const free = await run(path.join(dir, 'no-policy.mjs'), path.join(dir, 'free'));
  assert.ok(free.get(0)!.newSpace > 2 * STARTING_NEW_SPACE, `control: without the policy the main thread's new space grows (${free.get(0)!.newSpace} bytes)`);
});

test('a single-file run leaves the workers\' old generation to V8 (the library limit is for runs of many files)', { timeout: 60_000 }, async () => {
  const one = await run(NOLA_BIN, path.join(dir, 'one'), inputs.slice(0, 1));
  const workers = [...one].filter(([thread]) => thread !== 0);
  assert.ok(workers.length >= 1, 'workers ran');
  for (const [thread, s] of workers) assert.ok(s.heapLimit > 4 * LIBRARY_OLD_GENERATION_MB * 2 ** 20, `worker ${thread}: heap limit ${s.heapLimit} bytes`);
});
