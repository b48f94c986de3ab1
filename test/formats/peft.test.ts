/**
 * PEFT key parsing and scale rules. Expected scales come from PEFT's LoraLayer.update_layer
 * (scaling = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora) and get_pattern_key
 * (first pattern key, in order, with re.match(rf"(.*\.)?({key})$", module_path)), evaluated by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeLora } from '../../src/formats/detect.js';
import { FormatError, PairingError } from '../../src/errors.js';
import { caught, input, pair, t } from './helpers.js';

const P = 'base_model.model.';

test('peft: linear layer, scale = lora_alpha / r', async () => {
  const plan = await describeLora(input(pair(`${P}enc.q.lora_A.weight`, `${P}enc.q.lora_B.weight`, 8, 64, 32),
    { config: { peft_type: 'LORA', r: 8, lora_alpha: 16 } }));
  assert.equal(plan.family, 'peft');
  assert.equal(plan.layers.length, 1);
  const l = plan.layers[0];
  assert.equal(l.name, 'enc.q');
  assert.equal(l.kind, 'linear');
  assert.deepEqual([l.rank, l.dIn, l.dOut], [8, 64, 32]);
  assert.equal(l.alpha, 16);
  assert.equal(l.scale, 2); // 16 / 8
  assert.deepEqual(plan.passthrough, []);
});

test('peft: use_rslora divides by sqrt(r)', async () => {
  const plan = await describeLora(input(pair(`${P}m.lora_A.weight`, `${P}m.lora_B.weight`, 16, 10, 10),
    { config: { r: 16, lora_alpha: 8, use_rslora: true } }));
  assert.equal(plan.layers[0].scale, 2); // 8 / sqrt(16)
});

test('peft: config defaults are r=8, lora_alpha=8 (LoraConfig)', async () => {
  const plan = await describeLora(input(pair(`${P}m.lora_A.weight`, `${P}m.lora_B.weight`, 8, 10, 10), { config: { peft_type: 'LORA' } }));
  assert.equal(plan.layers[0].scale, 1);
});

test('peft: rank_pattern and alpha_pattern keys are regexes matched as (.*\\.)?(KEY)$, first key wins', async () => {
  const tensors = [
    ...pair(`${P}model.layers.0.self_attn.q_proj.lora_A.weight`, `${P}model.layers.0.self_attn.q_proj.lora_B.weight`, 4, 16, 16),
    ...pair(`${P}model.layers.0.self_attn.xq_proj.lora_A.weight`, `${P}model.layers.0.self_attn.xq_proj.lora_B.weight`, 8, 16, 16),
    ...pair(`${P}model.layers.1.mlp.up.lora_A.weight`, `${P}model.layers.1.mlp.up.lora_B.weight`, 2, 16, 16),
    ...pair(`${P}model.layers.2.mlp.up.lora_A.weight`, `${P}model.layers.2.mlp.up.lora_B.weight`, 6, 16, 16),
  ];
  const config = {
    r: 8, lora_alpha: 8,
    // q_proj: matches ".self_attn.q_proj" but not "xq_proj" (the group before KEY must end with a dot).
    // layers\.1\..*: a regex; it comes before "up", so it decides layer 1's rank.
    rank_pattern: { q_proj: 4, 'layers\\.1\\..*': 2, up: 6 },
    alpha_pattern: { '^model\\.layers\\.2\\.mlp\\.up': 3, up: 12 },
  };
  const plan = await describeLora(input(tensors, { config }));
  const by = Object.fromEntries(plan.layers.map((l) => [l.name, l]));
  assert.equal(by['model.layers.0.self_attn.q_proj'].scale, 8 / 4);
  assert.equal(by['model.layers.0.self_attn.xq_proj'].scale, 8 / 8);
  assert.equal(by['model.layers.1.mlp.up'].scale, 12 / 2); // rank from 'layers\.1\..*', alpha from 'up'
  assert.equal(by['model.layers.2.mlp.up'].scale, 3 / 6); // the anchored alpha key comes first
});

test('peft: a rank in the config that differs from the tensors is a PairingError', async () => {
  const e = await caught(() => describeLora(input(pair(`${P}m.lora_A.weight`, `${P}m.lora_B.weight`, 4, 10, 10), { config: { r: 8, lora_alpha: 8 } })));
  assert.ok(e instanceof PairingError, String(e));
  assert.match(e.message, /rank 8.*rank 4/);
});

test('peft: without adapter_config.json, alpha = r (scale 1) with a warning; the alpha is not stated (null in the document)', async () => {
  const plan = await describeLora(input(pair(`${P}m.lora_A.weight`, `${P}m.lora_B.weight`, 4, 10, 10)));
  assert.equal(plan.layers[0].scale, 1);
  assert.equal(plan.layers[0].alpha, undefined);
  assert.ok(plan.warnings.some((w) => /adapter_config\.json/.test(w)));
});

test('peft: embedding LoRA (lora_embedding_A [r, num_embeddings], lora_embedding_B [dim, r], no .weight)', async () => {
  const plan = await describeLora(input([t(`${P}embed_tokens.lora_embedding_A`, [4, 1000]), t(`${P}embed_tokens.lora_embedding_B`, [64, 4])],
    { config: { r: 4, lora_alpha: 8 } }));
  const l = plan.layers[0];
  assert.equal(l.kind, 'embedding');
  assert.equal(l.name, 'embed_tokens');
  assert.deepEqual([l.rank, l.dIn, l.dOut, l.scale], [4, 1000, 64, 2]);
});

test('peft: conv LoRA flattens the kernel into dIn', async () => {
  const plan = await describeLora(input(pair(`${P}conv.lora_A.weight`, `${P}conv.lora_B.weight`, 4, [16, 3, 3], 32), { config: { r: 4, lora_alpha: 4 } }));
  const l = plan.layers[0];
  assert.equal(l.kind, 'conv');
  assert.deepEqual([l.rank, l.dIn, l.dOut], [4, 16 * 3 * 3, 32]);
  assert.deepEqual(l.shapeB, [32, 4, 1, 1]);
});

test('peft: adapter name segment (.lora_A.default.weight) is read and dropped from the name', async () => {
  const plan = await describeLora(input(pair(`${P}m.lora_A.default.weight`, `${P}m.lora_B.default.weight`, 2, 5, 5), { config: { r: 2, lora_alpha: 2 } }));
  assert.equal(plan.layers[0].name, 'm');
});

test('peft: two adapters for one module are refused', async () => {
  const tensors = [...pair(`${P}m.lora_A.default.weight`, `${P}m.lora_B.default.weight`, 2, 5, 5), t(`${P}m.lora_A.other.weight`, [2, 5])];
  const e = await caught(() => describeLora(input(tensors, { config: { r: 2 } })));
  assert.ok(e instanceof FormatError);
});

test('peft: DoRA magnitude, lora_B.bias and modules_to_save are passthrough; DoRA a warning, the others notes', async () => {
  const tensors = [
    ...pair(`${P}a.q.lora_A.weight`, `${P}a.q.lora_B.weight`, 2, 8, 8),
    t(`${P}a.q.lora_magnitude_vector`, [8]),
    t(`${P}a.q.lora_B.bias`, [8]),
    t(`${P}classifier.weight`, [2, 8]),
    t(`${P}pre_classifier.weight`, [8, 8]), // PEFT matches modules_to_save by suffix: "pre_classifier" ends with "classifier"
  ];
  const plan = await describeLora(input(tensors, { config: { r: 2, lora_alpha: 2, use_dora: true, lora_bias: true, modules_to_save: ['classifier'] } }));
  assert.equal(plan.layers.length, 1);
  assert.deepEqual([...plan.passthrough].sort(), [`${P}a.q.lora_B.bias`, `${P}a.q.lora_magnitude_vector`, `${P}classifier.weight`, `${P}pre_classifier.weight`]);
  assert.ok(plan.warnings.some((w) => /DoRA/.test(w) && /base model/.test(w)));
  assert.ok((plan.notes ?? []).some((w) => /modules_to_save/.test(w)));
  assert.ok(!plan.warnings.some((w) => /modules_to_save|lora_bias/.test(w)));
  assert.ok(!plan.warnings.some((w) => /not recognized/.test(w)));
});

test('peft: unrecognized tensors are kept and named in a warning', async () => {
  const tensors = [...pair(`${P}m.lora_A.weight`, `${P}m.lora_B.weight`, 2, 4, 4), t(`${P}m.mystery`, [3]), t('other.thing', [1])];
  const plan = await describeLora(input(tensors, { config: { r: 2 } }));
  assert.deepEqual([...plan.passthrough].sort(), [`${P}m.mystery`, 'other.thing']);
  const w = plan.warnings.find((x) => /not recognized/.test(x));
  assert.ok(w);
  assert.match(w, /m\.mystery/);
  assert.match(w, /other\.thing/);
});

test('peft: pattern keys and module names that are Object.prototype names ("__proto__", "constructor", "toString") are read like any other', async () => {
  // The config as a file gives it (JSON.parse makes "__proto__" an ordinary key); PEFT's dicts have no prototype.
  const config = JSON.parse('{"r": 8, "lora_alpha": 8, "rank_pattern": {"__proto__": 4, "constructor": 2}, "alpha_pattern": {"toString": 6}}') as Record<string, unknown>;
  const tensors = [
    ...pair(`${P}a.__proto__.lora_A.weight`, `${P}a.__proto__.lora_B.weight`, 4, 16, 16),
    ...pair(`${P}b.constructor.lora_A.weight`, `${P}b.constructor.lora_B.weight`, 2, 16, 16),
    ...pair(`${P}c.toString.lora_A.weight`, `${P}c.toString.lora_B.weight`, 8, 16, 16),
  ];
  const plan = await describeLora(input(tensors, { config }));
  const by = new Map(plan.layers.map((l) => [l.name, l.scale]));
  assert.equal(by.get('a.__proto__'), 8 / 4);
  assert.equal(by.get('b.constructor'), 8 / 2);
  assert.equal(by.get('c.toString'), 6 / 8);
});

test('peft: an array-index pattern key ("0") beside other keys is refused: a JavaScript reader cannot keep its place in the JSON order', async () => {
  // PEFT takes the first key in the file's order; JSON.parse lists "0" first whatever its place.
  const tensors = pair(`${P}a.0.lora_A.weight`, `${P}a.0.lora_B.weight`, 2, 16, 16);
  const config = JSON.parse('{"r": 8, "lora_alpha": 8, "alpha_pattern": {"a\\\\.0": 2, "0": 4}}') as Record<string, unknown>;
  const e = await caught(() => describeLora(input(tensors, { config })));
  assert.ok(e instanceof FormatError);
  assert.match(e.message, /alpha_pattern key '0' is an array index.*write it as '\(0\)'/);
  // Alone it has no place to lose; written as "(0)" it is an ordinary key.
  for (const text of ['{"r": 2, "lora_alpha": 8, "alpha_pattern": {"0": 4}}', '{"r": 2, "lora_alpha": 8, "alpha_pattern": {"a\\\\.0": 2, "(0)": 4}}']) {
    const plan = await describeLora(input(tensors, { config: JSON.parse(text) as Record<string, unknown> }));
    assert.equal(plan.layers[0].scale, text.includes('(0)') ? 2 / 2 : 4 / 2, text);
  }
});
