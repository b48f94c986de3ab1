/**
 * The one worker pool behind fit and expand (src/pipeline/worker-pool.ts): results come back to the
 * job that asked, a typed refusal keeps its type (and so its exit code), and a worker that dies
 * fails both the job it ran and every caller still waiting for a worker, instead of leaving them
 * waiting for ever.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerPool } from '../../src/pipeline/worker-pool.js';
import { UsageError } from '../../src/errors.js';

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
