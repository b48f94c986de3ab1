/**
 * Detection and the real checkpoints in ../shared/real-loras (see its MANIFEST.md for what each one is
 * and what nola must do with it). Headers are read with the tiny parser in helpers.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describeLora, detectFamily } from '../../src/formats/detect.js';
import { FormatError } from '../../src/errors.js';
import type { Family } from '../../src/formats/layer.js';
import { caught, input, noReads, pair, readHeader, realLorasDir, t } from './helpers.js';

const real = (...p: string[]): string => path.join(realLorasDir(), ...p);
/** Like the other suites, the tests of the shared real LoRAs skip with a note when the folder is not beside the checkout. */
const skip = fs.existsSync(realLorasDir()) ? false : `no ${realLorasDir()} (the shared real LoRAs); skipped`;

function accounted(tensors: { name: string }[], plan: Awaited<ReturnType<typeof describeLora>>): void {
  const seen = [...plan.passthrough, ...plan.layers.flatMap((l) => [l.keyA, l.keyB, ...(l.keyAlpha ? [l.keyAlpha] : [])])];
  assert.deepEqual([...seen].sort(), tensors.map((x) => x.name).sort());
}

test('real: peft-distilbert-imdb: 12 q_lin/v_lin layers, r=8, scale 2, classifier/pre_classifier passthrough', { skip }, async () => {
  const h = readHeader(real('peft-distilbert-imdb', 'adapter_model.safetensors'));
  const config = JSON.parse(fs.readFileSync(real('peft-distilbert-imdb', 'adapter_config.json'), 'utf8')) as { r: number; lora_alpha: number };
  const plan = await describeLora({ tensors: h.tensors, metadata: h.metadata, config, readScalar: noReads });
  assert.equal(plan.family, 'peft');
  assert.equal(plan.layers.length, 12);
  for (const l of plan.layers) {
    assert.match(l.name, /^distilbert\.transformer\.layer\.[0-5]\.attention\.(q_lin|v_lin)$/);
    assert.equal(l.rank, 8);
    assert.equal(l.scale, config.lora_alpha / config.r); // MANIFEST: r=8, lora_alpha=16
    assert.equal(l.scale, 2);
    assert.deepEqual([l.dIn, l.dOut, l.dtypeA, l.dtypeB], [768, 768, 'F32', 'F32']);
  }
  assert.deepEqual([...plan.passthrough].sort(), [
    'base_model.model.classifier.bias', 'base_model.model.classifier.weight',
    'base_model.model.pre_classifier.bias', 'base_model.model.pre_classifier.weight',
  ]);
  accounted(h.tensors, plan);
});

for (const [dir, dtype] of [['diffusers-sd15', 'F32'], ['diffusers-sd2-bf16', 'BF16']] as const) {
  test(`real: ${dir}: 0.2x keys, 128 layers, scale 1, ${dtype}`, { skip }, async () => {
    const h = readHeader(real(dir, 'pytorch_lora_weights.safetensors'));
    const plan = await describeLora({ tensors: h.tensors, metadata: h.metadata, config: null, readScalar: noReads });
    assert.equal(plan.family, 'diffusers');
    assert.equal(plan.layers.length, 128);
    for (const l of plan.layers) {
      assert.ok(l.keyA.endsWith('.lora.down.weight') && l.keyB.endsWith('.lora.up.weight'), l.keyA);
      assert.equal(l.keyA.slice(0, -'.lora.down.weight'.length), l.name);
      assert.equal(l.scale, 1); // MANIFEST: no alpha (alpha = rank)
      assert.equal(l.rank, 4);
      assert.equal(l.dtypeA, dtype);
      assert.equal(l.component, 'unet');
    }
    assert.deepEqual(plan.passthrough, []);
    accounted(h.tensors, plan);
  });
}

test('real: reject-lycoris-lokr is refused naming LoKr and LyCORIS, before any read', { skip }, async () => {
  const h = readHeader(real('reject-lycoris-lokr', 'smart_falcon_4_lokr.safetensors'));
  const e = await caught(() => describeLora({ tensors: h.tensors, metadata: h.metadata, config: null, readScalar: noReads }));
  assert.ok(e instanceof FormatError, String(e));
  assert.match(e.message, /LoKr/);
  assert.match(e.message, /LyCORIS/);
  assert.match(e.message, /lokr_w1_a/);
});

test('real: reject-cloneofsimo is refused: the key layout is not supported', { skip }, async () => {
  const h = readHeader(real('reject-cloneofsimo', 'analog_svd_rank4.safetensors'));
  const e = await caught(() => describeLora({ tensors: h.tensors, metadata: h.metadata, config: null, readScalar: noReads }));
  assert.ok(e instanceof FormatError, String(e));
  assert.match(e.message, /key layout is not supported/);
});

test('real: malformed-kohya-like is refused with example keys', { skip }, async () => {
  const h = readHeader(real('malformed-kohya-like', 'new.safetensors'));
  const e = await caught(() => describeLora({ tensors: h.tensors, metadata: h.metadata, config: null, readScalar: noReads }));
  assert.ok(e instanceof FormatError, String(e));
  const first = [...h.tensors.map((x) => x.name)].slice(0, 3);
  for (const k of first) assert.ok(e.message.includes(`'${k}'`), `${k} not in: ${e.message}`);
  assert.ok(!e.message.includes('\n'));
});

test('detect: the --format override wins over detection, and an unknown family is refused', { skip }, async () => {
  const h = readHeader(real('peft-distilbert-imdb', 'adapter_model.safetensors'));
  const e = await caught(() => describeLora({ tensors: h.tensors, metadata: h.metadata, config: null, readScalar: noReads, family: 'kohya' }));
  assert.ok(e instanceof FormatError);
  assert.match(e.message, /no kohya LoRA layer recognized/);
  const e2 = await caught(() => describeLora(input(h.tensors, { family: 'lycoris' as Family })));
  assert.ok(e2 instanceof FormatError);
  // diffusers-named PEFT keys parse as PEFT when asked to.
  const tensors = pair('unet.a.to_q.lora_A.weight', 'unet.a.to_q.lora_B.weight', 2, 4, 4);
  assert.equal(detectFamily(tensors, null, null), 'diffusers');
  const asPeft = await describeLora(input(tensors, { family: 'peft' }));
  assert.equal(asPeft.family, 'peft');
  assert.equal(asPeft.layers[0].name, 'unet.a.to_q');
});

test('detect: family from key names', () => {
  assert.equal(detectFamily(pair('lora_te1_x.lora_down.weight', 'lora_te1_x.lora_up.weight', 2, 4, 4), null, null), 'kohya');
  assert.equal(detectFamily(pair('base_model.model.x.lora_A.weight', 'base_model.model.x.lora_B.weight', 2, 4, 4), null, null), 'peft');
  assert.equal(detectFamily(pair('unet.x.lora.down.weight', 'unet.x.lora.up.weight', 2, 4, 4), null, null), 'diffusers');
  // unprefixed lora_A keys: PEFT, unless the file carries diffusers' lora_adapter_metadata
  const bare = pair('x.lora_A.weight', 'x.lora_B.weight', 2, 4, 4);
  assert.equal(detectFamily(bare, null, null), 'peft');
  assert.equal(detectFamily(bare, { lora_adapter_metadata: '{}' }, null), 'diffusers');
  assert.equal(detectFamily([t('foo', [1])], null, null), null);
});

test('detect: layers come out sorted by name, whatever the header order', async () => {
  const a = pair('lora_unet_b.lora_down.weight', 'lora_unet_b.lora_up.weight', 2, 4, 4);
  const b = pair('lora_unet_a.lora_down.weight', 'lora_unet_a.lora_up.weight', 2, 4, 4);
  const p1 = await describeLora(input([...a, ...b]));
  const p2 = await describeLora(input([...b, ...a]));
  assert.deepEqual(p1.layers.map((l) => l.name), ['lora_unet_a', 'lora_unet_b']);
  assert.deepEqual(p1, p2);
});
