/**
 * The main thread's collection between a library run's files (src/cli/collect-garbage.ts): the
 * first call collects, a call after the heap has grown less than the step does not, one after it
 * has grown more (by live objects, so V8's own collections cannot have taken it back) does, and the
 * live size it leaves is the new reference. The performance hooks' gc entries witness that a call
 * that says it collected did.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { collectGarbageIfGrown } from '../../src/cli/collect-garbage.js';

test('collectGarbageIfGrown collects on its first call and then only after the heap has grown 8 MiB', async () => {
  let major = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (((e as unknown as { detail: { kind: number } }).detail).kind === constants.NODE_PERFORMANCE_GC_MAJOR) major++;
  });
  obs.observe({ entryTypes: ['gc'] });
  const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 50));
  try {
    assert.equal(collectGarbageIfGrown(), true, 'the first call collects');
    await settle();
    assert.ok(major >= 1, 'a major collection was seen');
    const afterFirst = major;
    assert.equal(collectGarbageIfGrown(), false, 'no growth, no collection');
    // About 24 MiB of live small objects (held, so no collection of V8's own frees them first).
    const held: number[][] = [];
    for (let i = 0; i < 3000; i++) held.push(Array.from({ length: 1000 }, (_, j) => i + j + 0.5));
    assert.equal(collectGarbageIfGrown(), true, `grown by about ${held.length * 8} KB: collected`);
    await settle();
    assert.ok(major > afterFirst, 'a major collection was seen');
    assert.equal(collectGarbageIfGrown(), false, 'what is held is the new live size: no collection');
  } finally {
    obs.disconnect();
  }
});
