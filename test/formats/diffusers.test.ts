/**
 * diffusers key styles and alpha sources. Module names for the old styles follow diffusers
 * utils/state_dict_utils.py (UNET_TO_DIFFUSERS: ".processor." -> ".", to_out_lora -> to_out.0;
 * DIFFUSERS_OLD_TO_PEFT: text encoder to_q_lora -> q_proj). Scales follow PEFT's lora_alpha / r applied
 * to lora_adapter_metadata (diffusers loaders/lora_base.py _pack_dict_with_prefix writes "<component>.r").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeLora } from '../../src/formats/detect.js';
import { FormatError, PairingError } from '../../src/errors.js';
import { caught, input, pair, scalars, t } from './helpers.js';

const block = 'down_blocks.0.attentions.0.transformer_blocks.0.attn1';

test('diffusers: attention-processor keys name the module they patch', async () => {
  const tensors = [
    ...pair(`unet.${block}.processor.to_k_lora.down.weight`, `unet.${block}.processor.to_k_lora.up.weight`, 4, 320, 320),
    ...pair(`unet.${block}.processor.to_out_lora.down.weight`, `unet.${block}.processor.to_out_lora.up.weight`, 4, 320, 320),
    ...pair('text_encoder.text_model.encoder.layers.0.self_attn.to_q_lora.down.weight',
      'text_encoder.text_model.encoder.layers.0.self_attn.to_q_lora.up.weight', 4, 768, 768),
  ];
  const plan = await describeLora(input(tensors));
  assert.equal(plan.family, 'diffusers');
  assert.deepEqual(plan.layers.map((l) => l.name).sort(), [
    'text_encoder.text_model.encoder.layers.0.self_attn.q_proj',
    `unet.${block}.to_k`,
    `unet.${block}.to_out.0`,
  ]);
  assert.ok(plan.layers.every((l) => l.scale === 1));
});

test('diffusers: 0.2x keys (.lora.down.weight / .lora.up.weight)', async () => {
  const plan = await describeLora(input(pair(`unet.${block}.to_k.lora.down.weight`, `unet.${block}.to_k.lora.up.weight`, 4, 320, 320)));
  const l = plan.layers[0];
  assert.equal(l.name, `unet.${block}.to_k`);
  assert.equal(l.component, 'unet');
  assert.equal(l.modulePath, `${block}.to_k`);
  assert.equal(l.scale, 1);
});

test('diffusers: lora_linear_layer keys', async () => {
  const s = 'text_encoder.text_model.encoder.layers.0.self_attn.q_proj';
  const plan = await describeLora(input(pair(`${s}.lora_linear_layer.down.weight`, `${s}.lora_linear_layer.up.weight`, 4, 768, 768)));
  assert.equal(plan.layers[0].name, s);
  assert.equal(plan.family, 'diffusers');
});

test('diffusers: PEFT-style keys under unet. / transformer. / text_encoder. / text_encoder_2. / diffusion_model.', async () => {
  const comps = ['unet', 'transformer', 'text_encoder', 'text_encoder_2', 'diffusion_model'];
  const tensors = comps.flatMap((c) => pair(`${c}.blocks.0.to_q.lora_A.weight`, `${c}.blocks.0.to_q.lora_B.weight`, 2, 8, 8));
  const plan = await describeLora(input(tensors));
  assert.equal(plan.family, 'diffusers');
  assert.deepEqual(plan.layers.map((l) => l.component).sort(), [...comps].sort());
  assert.ok(plan.layers.every((l) => l.modulePath === 'blocks.0.to_q'));
});

test('diffusers: ai-toolkit Flux keys with component-prefixed lora_adapter_metadata', async () => {
  const s = 'transformer.single_transformer_blocks.0.proj_out';
  const meta = { 'transformer.r': 16, 'transformer.lora_alpha': 8, 'transformer.rank_pattern': { proj_out: 4 }, 'transformer.alpha_pattern': {} };
  const tensors = [
    ...pair(`${s}.lora_A.weight`, `${s}.lora_B.weight`, 4, 3072, 3072, 'BF16'),
    ...pair('transformer.transformer_blocks.0.attn.to_q.lora_A.weight', 'transformer.transformer_blocks.0.attn.to_q.lora_B.weight', 16, 3072, 3072, 'BF16'),
  ];
  const plan = await describeLora(input(tensors, { metadata: { format: 'pt', lora_adapter_metadata: JSON.stringify(meta, null, 2) } }));
  const by = Object.fromEntries(plan.layers.map((l) => [l.name, l]));
  assert.equal(by[s].scale, 8 / 4);
  assert.equal(by['transformer.transformer_blocks.0.attn.to_q'].scale, 8 / 16);
});

test('diffusers: flat lora_adapter_metadata (save_lora_adapter) applies to unprefixed keys', async () => {
  const tensors = pair('blocks.0.attn.to_q.lora_A.weight', 'blocks.0.attn.to_q.lora_B.weight', 4, 8, 8);
  const plan = await describeLora(input(tensors, { metadata: { lora_adapter_metadata: JSON.stringify({ r: 4, lora_alpha: 8, use_rslora: false }) } }));
  assert.equal(plan.family, 'diffusers');
  assert.equal(plan.layers[0].scale, 2);
});

test('diffusers: .alpha tensors give scale = alpha / rank', async () => {
  const s = 'transformer.single_transformer_blocks.0.attn.to_k';
  const st = scalars({ [`${s}.alpha`]: 2 });
  const plan = await describeLora(input([...pair(`${s}.lora_A.weight`, `${s}.lora_B.weight`, 8, 16, 16), t(`${s}.alpha`, [])], { readScalar: st.readScalar }));
  assert.equal(plan.layers[0].keyAlpha, `${s}.alpha`);
  assert.equal(plan.layers[0].scale, 0.25);
});

test('diffusers: metadata whose rank disagrees with the tensors is a PairingError', async () => {
  const tensors = pair('unet.a.to_q.lora_A.weight', 'unet.a.to_q.lora_B.weight', 4, 8, 8);
  const e = await caught(() => describeLora(input(tensors, { metadata: { lora_adapter_metadata: JSON.stringify({ 'unet.r': 8, 'unet.lora_alpha': 8 }) } })));
  assert.ok(e instanceof PairingError, String(e));
});

test('diffusers: lora_adapter_metadata that is not JSON is a FormatError', async () => {
  const tensors = pair('unet.a.to_q.lora_A.weight', 'unet.a.to_q.lora_B.weight', 4, 8, 8);
  const e = await caught(() => describeLora(input(tensors, { metadata: { lora_adapter_metadata: '{not json' } })));
  assert.ok(e instanceof FormatError, String(e));
  assert.match(e.message, /lora_adapter_metadata/);
});
