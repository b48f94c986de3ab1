/**
 * The CLI's memory policy (bin/nola.js, docs/PERFORMANCE.md "Libraries"): V8's young generation is
 * held at its starting size on the main thread and in every worker, for the whole of a run, even
 * after workers start (a worker's start-up resets V8's process-wide flags; each worker sets the flag
 * again first thing, src/pipeline/worker-memory.ts). Measured with a preload that samples each thread's new space. The
 * control is the same run through the CLI's module without bin/nola.js: there the new space grows,
 * which shows the run is large enough for the test to fail if the policy went missing.
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

const dir = mkdtempSync(path.join(tmpdir(), 'nola-memory-'));
const inputs = [1, 2, 3].map((i) => path.join(dir, `sd15-${i}.safetensors`));
/** new space of a V8 isolate before it ever grows: 2 semi-spaces of 1 MiB (Node 20, x64). */
const STARTING_NEW_SPACE = 2 * 2 ** 20;

before(async () => {
  for (const [i, f] of inputs.entries()) await writeDiffusersAdapter(f, sd15Layers(), i + 1);
  // In every thread (a preload runs in workers too): the largest new space seen, one file per thread.
  writeFileSync(path.join(dir, 'sample.cjs'), `
    const { threadId } = require('node:worker_threads');
    const { getHeapSpaceStatistics } = require('node:v8');
    const { writeFileSync } = require('node:fs');
    let max = 0;
    const sample = () => {
      const s = getHeapSpaceStatistics().find((x) => x.space_name === 'new_space').space_size;
      if (s > max) { max = s; writeFileSync(process.env.SAMPLE_DIR + '/thread-' + threadId, String(max)); }
    };
    sample();
    setInterval(sample, 20).unref();
    process.on('exit', sample);
  `);
  writeFileSync(path.join(dir, 'no-policy.mjs'), `const m = await import(${JSON.stringify(pathToFileURL(path.join(path.dirname(NOLA_BIN), '..', 'dist', 'src', 'cli', 'main.js')).href)});\nawait m.main(process.argv);\n`);
});
after(() => rmSync(dir, { recursive: true, force: true }));

function run(entry: string, out: string): Promise<Map<number, number>> {
  const samples = path.join(dir, `samples-${path.basename(out)}`);
  rmSync(samples, { recursive: true, force: true });
  mkdirSync(samples, { recursive: true });
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--require', path.join(dir, 'sample.cjs'), entry, 'compress', ...inputs, '--out-dir', out, '--threads', '2', '-q'], {
      env: { ...process.env, SAMPLE_DIR: samples }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`exit ${code}: ${stderr}`));
      resolve(new Map(readdirSync(samples).map((f) => [Number(f.slice('thread-'.length)), Number(readFileSync(path.join(samples, f), 'utf8'))])));
    });
  });
}

test('bin/nola.js holds the young generation at its starting size on the main thread and in every worker', { timeout: 120_000 }, async () => {
  const held = await run(NOLA_BIN, path.join(dir, 'held'));
  assert.ok(held.size >= 2, `workers ran (threads seen: ${[...held.keys()].join(', ')})`);
  for (const [thread, max] of held) assert.ok(max <= STARTING_NEW_SPACE, `thread ${thread}: new space grew to ${max} bytes`);

  const free = await run(path.join(dir, 'no-policy.mjs'), path.join(dir, 'free'));
  assert.ok(free.get(0)! > 2 * STARTING_NEW_SPACE, `control: without the policy the main thread's new space grows (${free.get(0)} bytes)`);
});
