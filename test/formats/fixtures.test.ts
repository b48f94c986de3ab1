/**
 * The fixture generator: every generated file parses to what its family's documented rule says
 * (expectations written in fixtures/generate.ts as closed forms, e.g. 16 / 8), runs are byte-identical,
 * kohya hashes match the written bytes, and an expand plan with ranks kept reproduces each header.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateFixtures, type GeneratedFixture } from '../../fixtures/generate.js';
import { describeLora } from '../../src/formats/detect.js';
import { planOutput } from '../../src/formats/expand-plan.js';
import { decodeToFloat64 } from '../../src/io/safetensors/dtypes.js';
import { readHeader } from './helpers.js';

function dataOffsets(bytes: Buffer, headerLength: number): Map<string, [number, number]> {
  const json = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
  const out = new Map<string, [number, number]>();
  for (const [k, v] of Object.entries(json)) if (k !== '__metadata__') out.set(k, v.data_offsets);
  return out;
}

async function load(f: GeneratedFixture) {
  const h = readHeader(f.path);
  const offsets = dataOffsets(h.bytes, h.headerLength);
  const readScalar = async (name: string): Promise<number> => {
    const [b, e] = offsets.get(name)!;
    const dtype = h.tensors.find((x) => x.name === name)!.dtype;
    return decodeToFloat64(h.bytes.subarray(8 + h.headerLength + b, 8 + h.headerLength + e), dtype)[0];
  };
  const config = f.configPath ? JSON.parse(fs.readFileSync(f.configPath, 'utf8')) as unknown : null;
  const plan = await describeLora({ tensors: h.tensors, metadata: h.metadata, config, readScalar });
  return { h, plan, config, readScalar };
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nola-fixtures-'));
const fixtures = await generateFixtures(path.join(tmp, 'a'));

test('fixtures: every key style and family is generated', () => {
  const files = fixtures.map((f) => path.relative(path.join(tmp, 'a'), f.path)).sort();
  assert.ok(files.includes('tiny-peft/adapter_model.safetensors'));
  assert.ok(fs.existsSync(path.join(tmp, 'a', 'tiny-peft', 'adapter_config.json')));
  assert.deepEqual(new Set(fixtures.map((f) => f.family)), new Set(['kohya', 'diffusers', 'peft']));
  assert.ok(fixtures.length >= 12);
});

for (const f of fixtures) {
  test(`fixtures: ${path.basename(path.dirname(f.path))}/${path.basename(f.path)} parses as ${f.family}`, async () => {
    const { h, plan, config } = await load(f);
    assert.equal(plan.family, f.family);
    assert.equal(plan.layers.length, f.layers);
    for (const [name, scale] of Object.entries(f.scales)) {
      const l = plan.layers.find((x) => x.name === name);
      assert.ok(l, `layer ${name} not found among ${plan.layers.map((x) => x.name).join(', ')}`);
      assert.ok(Math.abs(l.scale - scale) < 1e-12, `${name}: ${l.scale} vs ${scale}`);
    }
    assert.deepEqual([...plan.passthrough].sort(), [...f.passthrough].sort());
    // Expand with every rank kept: the same header, alpha values included.
    const out = planOutput({
      family: plan.family,
      layers: plan.layers.map((spec) => ({ spec, rank: spec.rank })),
      passthrough: plan.passthrough.map((n) => h.tensors.find((x) => x.name === n)!) as never,
      metadata: h.metadata, config,
    });
    assert.deepEqual(out.tensors.map((x) => `${x.name} ${x.dtype} ${x.shape.join('x')}`).sort(),
      h.tensors.map((x) => `${x.name} ${x.dtype} ${x.shape.join('x')}`).sort());
    if (config) assert.equal(out.config, config);
    for (const l of plan.layers) {
      const idx = plan.layers.indexOf(l);
      assert.equal(out.layers[idx].scaleOut, l.scale, l.name);
      if (l.keyAlpha) {
        // The alpha written back is the stored one, byte for byte (I64 included).
        const a = out.tensors.find((x) => x.name === l.keyAlpha)!;
        const [b, e] = dataOffsets(h.bytes, h.headerLength).get(l.keyAlpha)!;
        const raw = new Uint8Array(h.bytes.subarray(8 + h.headerLength + b, 8 + h.headerLength + e));
        assert.deepEqual(a.source, { kind: 'alpha', value: l.alphaStored, bytes: raw });
      }
    }
  });
}

test('fixtures: the kohya file carries hashes that match its bytes (addnet_hash_safetensors)', () => {
  const f = fixtures.find((x) => x.path.endsWith('kohya-sd15.safetensors'))!;
  const h = readHeader(f.path);
  const sha = crypto.createHash('sha256').update(h.bytes.subarray(8 + h.headerLength)).digest('hex');
  assert.equal(h.metadata!.sshs_model_hash, sha);
  assert.ok(h.bytes.length < 0x100000);
  assert.equal(h.metadata!.sshs_legacy_hash, crypto.createHash('sha256').update(Buffer.alloc(0)).digest('hex').slice(0, 8));
});

test('fixtures: two runs write identical bytes', async () => {
  const again = await generateFixtures(path.join(tmp, 'b'));
  assert.equal(again.length, fixtures.length);
  for (let i = 0; i < fixtures.length; i++) {
    assert.ok(fs.readFileSync(fixtures[i].path).equals(fs.readFileSync(again[i].path)), fixtures[i].path);
  }
});

test('fixtures: A factors have a decaying spectrum (row norms fall by about 0.6 per rank index)', async () => {
  const f = fixtures.find((x) => x.path.endsWith(path.join('tiny-peft', 'adapter_model.safetensors')))!;
  const h = readHeader(f.path);
  const offsets = dataOffsets(h.bytes, h.headerLength);
  const key = h.tensors.find((x) => x.name.endsWith('lora_A.weight'))!;
  const [b, e] = offsets.get(key.name)!;
  const v = decodeToFloat64(h.bytes.subarray(8 + h.headerLength + b, 8 + h.headerLength + e), key.dtype);
  const [r, cols] = key.shape;
  const norms = Array.from({ length: r }, (_, k) => Math.hypot(...v.subarray(k * cols, (k + 1) * cols)));
  for (let k = 1; k < r; k++) assert.ok(norms[k] < norms[k - 1], `row ${k}: ${norms[k]} !< ${norms[k - 1]}`);
});

process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
