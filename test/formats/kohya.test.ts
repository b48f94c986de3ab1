/**
 * kohya/A1111/ComfyUI keys and scale rules. Expected values follow sd-scripts networks/lora.py
 * LoRAModule.__init__: "if alpha == 0 or None, alpha is rank"; scale = alpha / lora_dim.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeLora } from '../../src/formats/detect.js';
import { FormatError, NumericError } from '../../src/errors.js';
import type { DType } from '../../src/io/safetensors/dtypes.js';
import { caught, input, pair, scalars, t } from './helpers.js';

const stem = 'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q';

test('kohya: scale = alpha / rank, alpha read through readScalar only', async () => {
  const s = scalars({ [`${stem}.alpha`]: 8 });
  const tensors = [...pair(`${stem}.lora_down.weight`, `${stem}.lora_up.weight`, 16, 320, 320, 'F16'), t(`${stem}.alpha`, [], 'F16')];
  const plan = await describeLora(input(tensors, { readScalar: s.readScalar }));
  assert.equal(plan.family, 'kohya');
  const l = plan.layers[0];
  assert.equal(l.name, stem);
  assert.equal(l.keyAlpha, `${stem}.alpha`);
  assert.equal(l.dtypeAlpha, 'F16');
  assert.deepEqual([l.rank, l.dIn, l.dOut, l.alpha, l.scale], [16, 320, 320, 8, 0.5]);
  assert.deepEqual(s.reads, [`${stem}.alpha`]);
});

test('kohya: alpha of any float or int dtype (F16, F32, BF16, I64) is read as a number', async () => {
  const dtypes: DType[] = ['F16', 'F32', 'BF16', 'I64'];
  const tensors = dtypes.flatMap((d, i) => [
    ...pair(`lora_te_l${i}.lora_down.weight`, `lora_te_l${i}.lora_up.weight`, 4, 8, 8), t(`lora_te_l${i}.alpha`, [], d)]);
  const s = scalars(Object.fromEntries(dtypes.map((_, i) => [`lora_te_l${i}.alpha`, i + 1])));
  const plan = await describeLora(input(tensors, { readScalar: s.readScalar }));
  assert.deepEqual(plan.layers.map((l) => [l.dtypeAlpha, l.scale]), dtypes.map((d, i) => [d, (i + 1) / 4]));
});

test('kohya: a missing alpha means alpha = rank (scale 1)', async () => {
  const plan = await describeLora(input(pair(`${stem}.lora_down.weight`, `${stem}.lora_up.weight`, 4, 320, 320)));
  assert.equal(plan.layers[0].alpha, 4);
  assert.equal(plan.layers[0].scale, 1);
  assert.equal(plan.layers[0].keyAlpha, undefined);
});

test('kohya: alpha 0 means alpha = rank, and the stored 0 is remembered', async () => {
  const s = scalars({ [`${stem}.alpha`]: 0 });
  const plan = await describeLora(input([...pair(`${stem}.lora_down.weight`, `${stem}.lora_up.weight`, 4, 320, 320), t(`${stem}.alpha`, [])],
    { readScalar: s.readScalar }));
  assert.equal(plan.layers[0].alpha, 4);
  assert.equal(plan.layers[0].scale, 1);
  assert.equal(plan.layers[0].alphaStored, 0);
});

test('kohya: 3x3 and 1x1 convolutions (down [r, in, kh, kw], up [out, r, 1, 1])', async () => {
  const tensors = [
    ...pair('lora_unet_conv_in.lora_down.weight', 'lora_unet_conv_in.lora_up.weight', 4, [320, 3, 3], 640),
    ...pair('lora_unet_proj_in.lora_down.weight', 'lora_unet_proj_in.lora_up.weight', 4, [320, 1, 1], 320),
  ];
  const plan = await describeLora(input(tensors));
  const by = Object.fromEntries(plan.layers.map((l) => [l.name, l]));
  assert.equal(by.lora_unet_conv_in.kind, 'conv');
  assert.equal(by.lora_unet_conv_in.dIn, 320 * 9);
  assert.equal(by.lora_unet_conv_in.dOut, 640);
  assert.equal(by.lora_unet_proj_in.kind, 'conv');
  assert.equal(by.lora_unet_proj_in.dIn, 320);
});

test('kohya: every documented prefix is recognized; an unknown prefix is accepted with a warning', async () => {
  const prefixes = ['lora_unet_', 'lora_te_', 'lora_te1_', 'lora_te2_', 'lora_te3_', 'lora_transformer_'];
  const tensors = prefixes.flatMap((p) => pair(`${p}x.lora_down.weight`, `${p}x.lora_up.weight`, 2, 4, 4));
  const plan = await describeLora(input(tensors));
  assert.equal(plan.layers.length, prefixes.length);
  assert.ok(!plan.warnings.some((w) => /prefix other than/.test(w)));
  const odd = await describeLora(input([...tensors, ...pair('lora_prior_unet_x.lora_down.weight', 'lora_prior_unet_x.lora_up.weight', 2, 4, 4)]));
  assert.ok(odd.warnings.some((w) => /prefix other than/.test(w) && /lora_prior_unet_x/.test(w)));
});

test('kohya: ss_* metadata is a note (info), not a warning', async () => {
  const plan = await describeLora(input(pair(`${stem}.lora_down.weight`, `${stem}.lora_up.weight`, 4, 320, 320),
    { metadata: { ss_network_module: 'networks.lora', ss_network_dim: '4', ss_network_alpha: '4.0', sshs_model_hash: 'x' } }));
  assert.ok((plan.notes ?? []).some((w) => /ss_network_module=networks\.lora/.test(w) && /sshs_model_hash/.test(w)));
  assert.ok(!plan.warnings.some((w) => /ss_network_module/.test(w)));
});

test('kohya: dora_scale is passthrough with a DoRA warning; an alpha without factors is passthrough too', async () => {
  const tensors = [
    ...pair(`${stem}.lora_down.weight`, `${stem}.lora_up.weight`, 4, 320, 320),
    t(`${stem}.dora_scale`, [320, 1]),
    t('lora_unet_orphan.alpha', []),
  ];
  const plan = await describeLora(input(tensors));
  assert.deepEqual([...plan.passthrough].sort(), [`${stem}.dora_scale`, 'lora_unet_orphan.alpha']);
  assert.ok(plan.warnings.some((w) => /DoRA/.test(w)));
  assert.ok(plan.warnings.some((w) => /lora_unet_orphan\.alpha/.test(w)));
});

test('kohya: an alpha that is not one number is a FormatError, before any read', async () => {
  const e = await caught(() => describeLora(input([...pair(`${stem}.lora_down.weight`, `${stem}.lora_up.weight`, 4, 8, 8), t(`${stem}.alpha`, [2])])));
  assert.ok(e instanceof FormatError, String(e));
  assert.match(e.message, /alpha/);
});

test('kohya: a non-finite alpha is a NumericError', async () => {
  const s = scalars({ [`${stem}.alpha`]: Number.NaN });
  const e = await caught(() => describeLora(input([...pair(`${stem}.lora_down.weight`, `${stem}.lora_up.weight`, 4, 8, 8), t(`${stem}.alpha`, [])],
    { readScalar: s.readScalar })));
  assert.ok(e instanceof NumericError, String(e));
});
