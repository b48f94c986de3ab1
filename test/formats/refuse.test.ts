/**
 * Refusals, each from names/shapes only: the readScalar in these inputs fails the test if called.
 * Marker names follow ComfyUI comfy/weight_adapter (loha/lokr/glora/oft) and LyCORIS module names.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeLora } from '../../src/formats/detect.js';
import { exampleList } from '../../src/formats/refuse.js';
import { FormatError, PairingError } from '../../src/errors.js';
import { caught, input, pair, t } from './helpers.js';

const s = 'lora_unet_mid_block_attentions_0_proj_in';

async function refusal(tensors: ReturnType<typeof t>[], extra = {}): Promise<Error> {
  return caught(() => describeLora(input(tensors, extra)));
}

test('refuse: LoKr names LoKr and LyCORIS and shows example keys', async () => {
  const e = await refusal([t(`${s}.lokr_w1`, [4, 4]), t(`${s}.lokr_w2_a`, [80, 4]), t(`${s}.lokr_w2_b`, [4, 80]), t(`${s}.alpha`, [])],
    { metadata: { ss_network_module: 'lycoris.kohya', ss_network_args: '{"algo": "lokr"}' } });
  assert.ok(e instanceof FormatError, String(e));
  assert.match(e.message, /LoKr/);
  assert.match(e.message, /LyCORIS/);
  assert.match(e.message, /algo=lokr/);
  assert.match(e.message, new RegExp(`${s}\\.lokr_w1`));
  assert.ok(!e.message.includes('\n'));
});

const cases: Array<[string, RegExp, ReturnType<typeof t>[]]> = [
  ['LoHa', /LoHa/, [t(`${s}.hada_w1_a`, [8, 4]), t(`${s}.hada_w1_b`, [4, 8]), t(`${s}.hada_w2_a`, [8, 4]), t(`${s}.hada_w2_b`, [4, 8])]],
  ['Tucker', /Tucker/, [t(`${s}.lora_mid.weight`, [4, 4, 3, 3]), ...pair(`${s}.lora_down.weight`, `${s}.lora_up.weight`, 4, [8, 1, 1], 8)]],
  ['GLoRA', /GLoRA/, [t(`${s}.a1.weight`, [4, 8]), t(`${s}.a2.weight`, [8, 4]), t(`${s}.b1.weight`, [4, 8]), t(`${s}.b2.weight`, [8, 4])]],
  ['OFT blocks', /OFT/, [t(`${s}.oft_blocks`, [4, 2, 2])]],
  ['OFT diag', /OFT/, [t(`${s}.oft_diag`, [4, 2, 2])]],
  ['full diff', /diff/, [t(`${s}.diff`, [8, 8]), t(`${s}.diff_b`, [8])]],
];
for (const [what, re, tensors] of cases) {
  test(`refuse: LyCORIS ${what}`, async () => {
    const e = await refusal(tensors);
    assert.ok(e instanceof FormatError, String(e));
    assert.match(e.message, re);
    assert.match(e.message, new RegExp(tensors[0].name.replace(/\./g, '\\.')));
  });
}

test('refuse: a lone module named a1 is not GLoRA', async () => {
  const plan = await describeLora(input([...pair('base_model.model.m.lora_A.weight', 'base_model.model.m.lora_B.weight', 2, 4, 4), t('base_model.model.a1.weight', [4, 4])],
    { config: { r: 2 } }));
  assert.equal(plan.layers.length, 1);
  assert.deepEqual(plan.passthrough, ['base_model.model.a1.weight']);
});

test('refuse: legacy cloneofsimo layout says the key layout is not supported', async () => {
  const e = await refusal([t('unet:0:down', [4, 320]), t('unet:0:up', [320, 4]), t('text_encoder:0:down', [4, 768])]);
  assert.ok(e instanceof FormatError, String(e));
  assert.match(e.message, /key layout is not supported/);
  assert.match(e.message, /'unet:0:down'/);
});

test('refuse: PEFT adapter types other than LORA', async () => {
  const e = await refusal(pair('base_model.model.m.lora_A.weight', 'base_model.model.m.lora_B.weight', 2, 4, 4), { config: { peft_type: 'ADALORA' } });
  assert.ok(e instanceof FormatError, String(e));
  assert.match(e.message, /ADALORA/);
});

test('refuse: A without B and B without A are PairingErrors naming the key', async () => {
  let e = await refusal([t('lora_unet_x.lora_down.weight', [4, 8]), ...pair('lora_unet_y.lora_down.weight', 'lora_unet_y.lora_up.weight', 4, 8, 8)]);
  assert.ok(e instanceof PairingError, String(e));
  assert.match(e.message, /lora_unet_x\.lora_down\.weight/);
  e = await refusal([t('base_model.model.m.lora_B.weight', [8, 4])], { config: { r: 4 } });
  assert.ok(e instanceof PairingError, String(e));
  assert.match(e.message, /no A/);
});

test('refuse: rank mismatch between A and B', async () => {
  const e = await refusal([t('lora_unet_x.lora_down.weight', [4, 8]), t('lora_unet_x.lora_up.weight', [8, 2])]);
  assert.ok(e instanceof PairingError, String(e));
  assert.match(e.message, /rank mismatch/);
});

test('refuse: factor shapes that do not fit', async () => {
  const bad: Array<ReturnType<typeof t>[]> = [
    [t('lora_unet_x.lora_down.weight', [4, 8, 3, 3]), t('lora_unet_x.lora_up.weight', [8, 4, 3, 3])], // up is not 1x1
    [t('lora_unet_x.lora_down.weight', [4, 8, 3, 3]), t('lora_unet_x.lora_up.weight', [8, 4])], // conv down, linear up
    [t('lora_unet_x.lora_down.weight', [4]), t('lora_unet_x.lora_up.weight', [8, 4])], // 1-D A
    [t('lora_unet_x.lora_down.weight', [4, 0]), t('lora_unet_x.lora_up.weight', [8, 4])], // empty axis
  ];
  for (const tensors of bad) {
    const e = await refusal(tensors);
    assert.ok(e instanceof PairingError, `${tensors.map((x) => x.shape.join('x')).join(' ')}: ${String(e)}`);
    assert.match(e.message, /do not fit/);
  }
});

test('refuse: no recognizable layer shows up to three example keys', async () => {
  const names = ['lora_unet_a_lora_down.weight', 'lora_unet_a_lora_up.weight', 'lora_unet_b_lora_down.weight', 'lora_unet_b_lora_up.weight'];
  const e = await refusal(names.map((n) => t(n, [4, 4])));
  assert.ok(e instanceof FormatError, String(e));
  for (const n of names.slice(0, 3)) assert.ok(e.message.includes(`'${n}'`), e.message);
  assert.ok(!e.message.includes(`'${names[3]}'`));
  assert.match(e.message, /\+1 more/);
  assert.match(e.message, /_lora_down\.weight/);
});

test('refuse: an empty file and a --format that finds nothing', async () => {
  assert.ok((await refusal([])) instanceof FormatError);
  const e = await refusal(pair('lora_unet_x.lora_down.weight', 'lora_unet_x.lora_up.weight', 2, 4, 4), { family: 'peft' });
  assert.ok(e instanceof FormatError);
  assert.match(e.message, /no peft LoRA layer recognized \(--format peft\)/);
});

test('exampleList: up to three quoted keys and a count of the rest', () => {
  assert.equal(exampleList(['a', 'b']), "'a', 'b'");
  assert.equal(exampleList(['a', 'b', 'c', 'd', 'e']), "'a', 'b', 'c' (+2 more)");
});
