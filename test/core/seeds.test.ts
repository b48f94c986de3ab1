import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deriveLayerSeeds, fnv1a32 } from '../../src/core/seeds.js';

test('FNV-1a-32 matches the published test vectors (Fowler/Noll/Vo reference: "", "a", "foobar")', () => {
  assert.equal(fnv1a32(''), 0x811c9dc5);
  assert.equal(fnv1a32('a'), 0xe40c292c);
  assert.equal(fnv1a32('foobar'), 0xbf9cf968);
});

test('layer seeds depend on the name and the user seed, not on anything else', () => {
  const a = deriveLayerSeeds(0, 'layer.0.q');
  assert.deepEqual(deriveLayerSeeds(0, 'layer.0.q'), a);
  assert.notEqual(deriveLayerSeeds(1, 'layer.0.q').seedA, a.seedA);
  assert.notEqual(deriveLayerSeeds(0, 'layer.0.v').seedA, a.seedA);
  assert.notEqual(a.seedA, a.seedB);
});
