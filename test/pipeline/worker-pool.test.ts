/**
 * The pools behind fit and expand (src/pipeline/worker-pool.ts): results come back to the job that
 * asked, a typed refusal keeps its type (and so its exit code), and a worker that dies fails both
 * the job it ran and every caller still waiting for a worker, instead of leaving them waiting for
 * ever. LanePool: with the CLI's policy the calling thread is one of the lanes, the workers the
 * others; without it (the API's) every lane is a worker; with one thread no worker is started at all.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LanePool, WorkerPool, setCallingThreadLane } from '../../src/pipeline/worker-pool.js';
import { UsageError } from '../../src/errors.js';
import { jobsHoldThread } from '../../src/pipeline/parallel.js';
import { PAPER_PRESET } from '../../src/pipeline/settings.js';

type Job = number | 'usage' | 'exit';
const script = new URL('./pool-test-worker.js', import.meta.url);

test('jobs spread over the workers come back to their callers, in any order of completion', async () => {
  const pool = new WorkerPool<Job, Float64Array>(2, script, { name: 'test' });
  try {
    const out = await Promise.all([1, 2, 3, 4, 5].map((n) => pool.run(n)));
    assert.deepEqual(out.map((r) => r[0]), [2, 4, 6, 8, 10]);
  } finally {
    await pool.close();
  }
});

test('a refusal raised on a worker arrives as the same error type, and the worker serves on', async () => {
  const pool = new WorkerPool<Job, Float64Array>(1, script, { name: 'test' });
  try {
    await assert.rejects(pool.run('usage'), (e: unknown) => e instanceof UsageError && e.message === 'refused on the worker');
    assert.equal((await pool.run(21))[0], 42);
  } finally {
    await pool.close();
  }
});

test('a worker that dies fails its job and wakes the callers waiting for a worker with the same failure', async () => {
  const pool = new WorkerPool<Job, Float64Array>(1, script, { name: 'test' });
  try {
    // One worker: the second and third jobs wait for it; when it dies they must not wait for ever.
    const results = await Promise.allSettled([pool.run('exit'), pool.run(1), pool.run(2)]);
    for (const r of results) {
      assert.equal(r.status, 'rejected');
      assert.match(String((r as PromiseRejectedResult).reason), /test worker exited with code 3/);
    }
    await assert.rejects(pool.run(3), /test worker exited with code 3/, 'a failed pool refuses later jobs');
  } finally {
    await pool.close();
  }
});

/** The inline lane's job: the worker's function, run on the calling thread, counting its calls. */
function inlineLane(): { run: (job: Job) => Float64Array; calls: number[] } {
  const calls: number[] = [];
  return {
    calls,
    run: (job) => {
      if (job === 'usage') throw new UsageError('refused on the calling thread');
      if (job === 'exit') throw new Error('exit is a worker job');
      calls.push(job);
      return Float64Array.of(job * 2);
    },
  };
}

test('LanePool: jobs run on the calling thread and on the workers, each result to its caller; the window counts both', async () => {
  setCallingThreadLane(true);
  const lane = inlineLane();
  const pool = new LanePool<Job, Float64Array>(2, script, { name: 'test' }, lane.run);
  try {
    assert.equal(pool.window, 3, 'the calling thread, and one worker with a job running and one queued');
    const jobs = Array.from({ length: 12 }, (_, i) => i + 1);
    const out = await Promise.all(jobs.map((n) => pool.run(n)));
    assert.deepEqual(out.map((r) => r[0]), jobs.map((n) => 2 * n));
    assert.ok(lane.calls.length >= 1, 'the calling thread took jobs');
    assert.ok(lane.calls.length <= jobs.length - 2, `the worker took jobs too (${lane.calls.length} of ${jobs.length} inline)`);
  } finally {
    await pool.close();
  }
});

test('LanePool with one thread runs every job on the calling thread and starts no worker', async () => {
  const lane = inlineLane();
  // A script that does not exist: starting a worker would fail the pool.
  const pool = new LanePool<Job, Float64Array>(1, new URL('./no-such-worker.js', import.meta.url), { name: 'test' }, lane.run);
  try {
    assert.equal(pool.window, 1);
    const out = await Promise.all([1, 2, 3].map((n) => pool.run(n)));
    assert.deepEqual(out.map((r) => r[0]), [2, 4, 6]);
    assert.deepEqual(lane.calls, [1, 2, 3]);
  } finally {
    await pool.close();
  }
});

test('LanePool: a refusal on either lane keeps its type, and a worker that dies fails its job', async () => {
  setCallingThreadLane(true);
  const lane = inlineLane();
  const solo = new LanePool<Job, Float64Array>(1, script, { name: 'test' }, lane.run);
  await assert.rejects(solo.run('usage'), (e: unknown) => e instanceof UsageError && e.message === 'refused on the calling thread');
  assert.equal((await solo.run(4))[0], 8, 'the calling thread serves on');
  const pool = new LanePool<Job, Float64Array>(2, script, { name: 'test' }, lane.run);
  try {
    // Jobs go to a worker with room first: the first is the worker's.
    await assert.rejects(pool.run('usage'), (e: unknown) => e instanceof UsageError && e.message === 'refused on the worker');
    await assert.rejects(pool.run('exit'), /test worker exited with code 3/);
  } finally {
    await pool.close();
  }
});

/** Two threads, every lane a worker: the window, the results, and nothing run on the calling thread. */
async function assertAllOnWorkers(options: { callingThread?: boolean }): Promise<void> {
  const lane = inlineLane();
  const pool = new LanePool<Job, Float64Array>(2, script, { name: 'test', ...options }, lane.run);
  try {
    assert.equal(pool.window, 3, 'two workers, one more job waiting');
    const out = await Promise.all([1, 2, 3, 4, 5, 6].map((n) => pool.run(n)));
    assert.deepEqual(out.map((r) => r[0]), [2, 4, 6, 8, 10, 12]);
    assert.deepEqual(lane.calls, [], 'nothing ran on the calling thread');
  } finally {
    await pool.close();
  }
}

test('LanePool without the CLI\'s policy (the API\'s default) leaves the calling thread free: every job on a worker', async () => {
  setCallingThreadLane(false);
  await assertAllOnWorkers({});
  const lane = inlineLane();
  const solo = new LanePool<Job, Float64Array>(1, new URL('./no-such-worker.js', import.meta.url), { name: 'test' }, lane.run);
  assert.equal((await solo.run(5))[0], 10, 'one thread: the calling thread, as always');
  await solo.close();
});

test('LanePool with callingThread: false keeps the calling thread free even under the CLI\'s policy (jobs that can hold it for seconds)', async () => {
  setCallingThreadLane(true);
  try {
    await assertAllOnWorkers({ callingThread: false });
  } finally {
    setCallingThreadLane(false);
  }
});

test('the fits kept off the calling thread are the uniform basis\'s (the paper preset), not the default budget strategy\'s', () => {
  assert.equal(jobsHoldThread(PAPER_PRESET), true);
  assert.equal(jobsHoldThread({ ...PAPER_PRESET, basis: 'orthogonal' }), false);
  assert.equal(jobsHoldThread({ kind: 'budget', target: { maxError: 0.1 }, rank: 'auto', quants: ['rice'] }), false);
});
