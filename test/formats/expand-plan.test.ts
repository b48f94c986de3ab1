/**
 * The expand plan. Expected values: sd-scripts networks/resize_lora.py (new_alpha = scale * new_rank;
 * ss_network_dim = str(new_rank), ss_network_alpha = str(new_alpha), "Dynamic" when they differ),
 * PEFT's scaling (lora_alpha / r, / sqrt(r) with use_rslora) and get_pattern_key (re-stated below from
 * its documented regex), IEEE half/bfloat16 spacing for rounded alphas, and kohya's own output for the
 * hashes (the LoKr file's stored sshs_* values).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describeLora } from '../../src/formats/detect.js';
import {
  kohyaHashFinalizer, LEGACY_HASH_OF_SMALL_FILE, moduleOf, patternKeys, planOutput, pythonFloatString, representable,
} from '../../src/formats/expand-plan.js';
import type { LayerPlan, LayerSpec } from '../../src/formats/layer.js';
import { UsageError } from '../../src/errors.js';
import { caught, input, noReads, pair, readHeader, realLorasDir, scalars, t } from './helpers.js';

/** PEFT get_pattern_key + LoraConfig lookups, as documented: re.match(rf"(.*\.)?({key})$", path), first key wins. */
function peftLookup(cfg: Record<string, unknown>, modulePath: string): { r: number; alpha: number } {
  const pick = (pat: unknown): number | undefined => {
    for (const [k, v] of Object.entries((pat ?? {}) as Record<string, number>)) {
      if (new RegExp(`^(.*\\.)?(${k})$`).test(modulePath)) return v;
    }
    return undefined;
  };
  return { r: pick(cfg.rank_pattern) ?? (cfg.r as number), alpha: pick(cfg.alpha_pattern) ?? (cfg.lora_alpha as number) };
}

const plainLayers = (plan: LayerPlan, rank?: (l: LayerSpec) => number) =>
  plan.layers.map((spec) => ({ spec, rank: rank ? rank(spec) : spec.rank }));

const passthroughOf = (plan: LayerPlan, tensors: { name: string; dtype: string; shape: number[] }[]) =>
  plan.passthrough.map((n) => tensors.find((x) => x.name === n)!) as Parameters<typeof planOutput>[0]['passthrough'];

test('expand: rank kept on the real PEFT adapter gives the same names, dtypes, shapes and the same config object', async () => {
  const dir = path.join(realLorasDir(), 'peft-distilbert-imdb');
  const h = readHeader(path.join(dir, 'adapter_model.safetensors'));
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')) as unknown;
  const plan = await describeLora({ tensors: h.tensors, metadata: h.metadata, config, readScalar: noReads });
  const out = planOutput({ family: 'peft', layers: plainLayers(plan), passthrough: passthroughOf(plan, h.tensors), metadata: h.metadata, config });
  const src = h.tensors.map((x) => [x.name, x.dtype, x.shape.join('x')].join(' ')).sort();
  const dst = out.tensors.map((x) => [x.name, x.dtype, x.shape.join('x')].join(' ')).sort();
  assert.deepEqual(dst, src);
  assert.equal(out.config, config);
  assert.deepEqual(out.metadata, h.metadata);
  assert.ok(out.layers.every((l, i) => l.scaleOut === plan.layers[i].scale));
  assert.equal(out.kohyaHashes, null);
});

test('expand: kohya rank change rewrites alpha = scale * new_rank and ss_network_dim/alpha (resize_lora)', async () => {
  const s = 'lora_unet_a';
  const tensors = [...pair(`${s}.lora_down.weight`, `${s}.lora_up.weight`, 16, 320, 320, 'F16'), t(`${s}.alpha`, [], 'F16')];
  const plan = await describeLora(input(tensors, { readScalar: scalars({ [`${s}.alpha`]: 8 }).readScalar }));
  const metadata = { ss_network_dim: '16', ss_network_alpha: '8.0', ss_network_module: 'networks.lora' };
  const out = planOutput({ family: 'kohya', layers: plainLayers(plan, () => 4), passthrough: [], metadata, config: null });
  const alpha = out.tensors.find((x) => x.name === `${s}.alpha`)!;
  assert.deepEqual(alpha.source, { kind: 'alpha', value: 2, bytes: Uint8Array.from([0x00, 0x40]) }); // 0.5 * 4; half 2.0 = 0x4000
  assert.equal(alpha.dtype, 'F16');
  assert.deepEqual(alpha.shape, []);
  assert.deepEqual(out.tensors.find((x) => x.name === `${s}.lora_down.weight`)!.shape, [4, 320]);
  assert.deepEqual(out.tensors.find((x) => x.name === `${s}.lora_up.weight`)!.shape, [320, 4]);
  assert.equal(out.layers[0].scaleOut, 0.5);
  assert.deepEqual(out.metadata, { ss_network_dim: '4', ss_network_alpha: '2.0', ss_network_module: 'networks.lora' });
  assert.equal(metadata.ss_network_dim, '16', 'source metadata not mutated');
});

test('expand: kohya ranks that differ per layer give "Dynamic", and conv_dim follows 3x3 convs', async () => {
  const tensors = [
    ...pair('lora_unet_a.lora_down.weight', 'lora_unet_a.lora_up.weight', 8, 16, 16),
    ...pair('lora_unet_b.lora_down.weight', 'lora_unet_b.lora_up.weight', 8, 16, 16),
    ...pair('lora_unet_c.lora_down.weight', 'lora_unet_c.lora_up.weight', 8, [16, 3, 3], 16),
  ];
  const plan = await describeLora(input(tensors));
  const ranks: Record<string, number> = { lora_unet_a: 2, lora_unet_b: 3, lora_unet_c: 5 };
  const out = planOutput({ family: 'kohya', layers: plainLayers(plan, (l) => ranks[l.name]), passthrough: [],
    metadata: { ss_network_dim: '8', ss_network_alpha: '8.0', ss_network_args: '{"conv_dim": "8", "conv_alpha": "8"}' }, config: null });
  assert.equal(out.metadata!.ss_network_dim, 'Dynamic');
  assert.equal(out.metadata!.ss_network_alpha, 'Dynamic');
  assert.deepEqual(JSON.parse(out.metadata!.ss_network_args), { conv_dim: '5', conv_alpha: '5' }); // no alpha tensors: alpha = rank
  assert.ok(out.layers.every((l) => l.scaleOut === 1));
  assert.ok(!out.tensors.some((x) => x.name.endsWith('.alpha')), 'no alpha tensor invented');
});

test('expand: a new alpha is rounded to a value its dtype holds, and scaleOut reports what the tool will apply', async () => {
  const mk = async (dtype: 'F16' | 'BF16' | 'I64', alpha: number, rank: number) => {
    const s = 'lora_te_x';
    const tensors = [...pair(`${s}.lora_down.weight`, `${s}.lora_up.weight`, rank, 8, 8), t(`${s}.alpha`, [], dtype)];
    return describeLora(input(tensors, { readScalar: scalars({ [`${s}.alpha`]: alpha }).readScalar }));
  };
  // F16: 1/3 * 5 = 5/3; half spacing in [1, 2) is 2^-10; 5/3 * 1024 = 1706.67 -> 1707/1024.
  let plan = await mk('F16', 1, 3);
  let out = planOutput({ family: 'kohya', layers: plainLayers(plan, () => 5), passthrough: [], metadata: null, config: null });
  // 1707/1024 = 1 + 683/2^10: half bits 0x3c00 | 683 = 0x3eab
  assert.deepEqual(out.tensors[2].source, { kind: 'alpha', value: 1707 / 1024, bytes: Uint8Array.from([0xab, 0x3e]) });
  assert.equal(out.layers[0].scaleOut, 1707 / 1024 / 5);
  // I64: 4/8 * 3 = 1.5 -> 2 (an integer); scale then 2/3.
  plan = await mk('I64', 4, 8);
  out = planOutput({ family: 'kohya', layers: plainLayers(plan, () => 3), passthrough: [], metadata: null, config: null });
  assert.deepEqual(out.tensors[2].source, { kind: 'alpha', value: 2, bytes: Uint8Array.from([2, 0, 0, 0, 0, 0, 0, 0]) });
  assert.equal(out.layers[0].scaleOut, 2 / 3);
  // rank kept: the stored value comes back unchanged, even kohya's 0 (= rank).
  plan = await mk('BF16', 0, 4);
  out = planOutput({ family: 'kohya', layers: plainLayers(plan), passthrough: [], metadata: null, config: null });
  assert.deepEqual(out.tensors[2].source, { kind: 'alpha', value: 0, bytes: Uint8Array.from([0, 0]) });
  assert.equal(out.layers[0].scaleOut, 1);
});

test('representable: half and bfloat16 nearest values (closed forms), integers round', () => {
  assert.equal(representable(1 / 3, 'F16'), 1365 / 4096); // spacing 2^-12 in [1/4, 1/2)
  assert.equal(representable(1 / 3, 'BF16'), 171 / 512); // spacing 2^-9 in [1/4, 1/2)
  assert.equal(representable(1 / 3, 'F32'), Math.fround(1 / 3));
  assert.equal(representable(2.4, 'I32'), 2);
  assert.equal(pythonFloatString(4), '4.0');
  assert.equal(pythonFloatString(0.5), '0.5');
});

test('expand: PEFT uniform rank change sets r and lora_alpha so the scale holds (plain and rslora)', async () => {
  const tensors = [...pair('base_model.model.a.lora_A.weight', 'base_model.model.a.lora_B.weight', 8, 16, 16),
    ...pair('base_model.model.b.lora_A.weight', 'base_model.model.b.lora_B.weight', 8, 16, 16)];
  for (const [cfg, alphaOut] of [[{ r: 8, lora_alpha: 16, target_modules: ['a', 'b'] }, 8], [{ r: 8, lora_alpha: 8, use_rslora: true }, 8 * Math.sqrt(4 / 8)]] as const) {
    const plan = await describeLora(input(tensors, { config: cfg }));
    const out = planOutput({ family: 'peft', layers: plainLayers(plan, () => 4), passthrough: [], metadata: null, config: cfg });
    const c = out.config as Record<string, unknown>;
    assert.equal(c.r, 4);
    assert.equal(c.lora_alpha, alphaOut);
    assert.deepEqual(c.target_modules, (cfg as Record<string, unknown>).target_modules);
    assert.equal((cfg as Record<string, unknown>).r, 8, 'source config not mutated');
    for (const l of out.layers) assert.ok(Math.abs(l.scaleOut - plan.layers[0].scale) < 1e-15, `${l.scaleOut}`);
  }
});

test('expand: PEFT per-layer rank changes add unique-suffix pattern entries first; every scale holds under PEFT lookup', async () => {
  const mod = (m: string) => pair(`base_model.model.${m}.lora_A.weight`, `base_model.model.${m}.lora_B.weight`, m.endsWith('q_proj') ? 4 : 8, 16, 16);
  const modules = ['model.layers.0.q_proj', 'model.layers.0.v_proj', 'model.layers.1.q_proj', 'model.layers.1.v_proj', 'x.model.layers.1.v_proj'];
  const config = { r: 8, lora_alpha: 16, rank_pattern: { q_proj: 4 }, alpha_pattern: { 'layers\\.1\\.v_proj': 4 } };
  const plan = await describeLora(input(modules.flatMap(mod), { config }));
  const newRank: Record<string, number> = { 'model.layers.0.q_proj': 2, 'model.layers.1.v_proj': 3 };
  const out = planOutput({ family: 'peft', layers: plainLayers(plan, (l) => newRank[l.name] ?? l.rank), passthrough: [], metadata: null, config });
  const c = out.config as Record<string, unknown>;
  // The shortest dotted suffix no other module ends with; model.layers.1.v_proj is the tail of x.model.layers.1.v_proj, so it is anchored.
  assert.deepEqual(Object.keys(c.rank_pattern as object).slice(0, 2), ['0\\.q_proj', '^model\\.layers\\.1\\.v_proj']);
  for (const [i, spec] of plan.layers.entries()) {
    const { r, alpha } = peftLookup(c, spec.name);
    const rank = newRank[spec.name] ?? spec.rank;
    assert.equal(r, rank, spec.name);
    assert.ok(Math.abs(alpha / r - spec.scale) < 1e-12, `${spec.name}: ${alpha}/${r} vs ${spec.scale}`);
    assert.ok(Math.abs(out.layers[i].scaleOut - spec.scale) < 1e-12);
  }
  // 'x.model.layers.1.v_proj' kept its rank and its entries: the anchored key names model.layers.1.v_proj alone.
  assert.equal(peftLookup(c, 'x.model.layers.1.v_proj').r, 8);
});

test('expand: a rank change on modules named like Object.prototype members ("__proto__", "constructor") keys them like any other', async () => {
  const mod = (m: string) => pair(`base_model.model.${m}.lora_A.weight`, `base_model.model.${m}.lora_B.weight`, 8, 16, 16);
  const modules = ['x.__proto__', 'x.constructor', 'x.q_proj'];
  const config = { r: 8, lora_alpha: 16 };
  const plan = await describeLora(input(modules.flatMap(mod), { config }));
  const newRank = new Map([['x.__proto__', 2], ['x.constructor', 4]]);
  const out = planOutput({ family: 'peft', layers: plainLayers(plan, (l) => newRank.get(l.name) ?? l.rank), passthrough: [], metadata: null, config });
  const c = JSON.parse(JSON.stringify(out.config)) as Record<string, unknown>; // as written to adapter_config.json
  assert.deepEqual(Object.keys(c.rank_pattern as object), ['__proto__', 'constructor']);
  for (const spec of plan.layers) {
    const { r, alpha } = peftLookup(c, spec.name);
    assert.equal(r, newRank.get(spec.name) ?? 8, spec.name);
    assert.ok(Math.abs(alpha / r - spec.scale) < 1e-12, `${spec.name}: ${alpha}/${r} vs ${spec.scale}`);
  }
});

test('patternKeys: a unique suffix that is an array index ("0") is written "(0)", the same pattern, so JSON order cannot move it', () => {
  // JSON.stringify lists "0" before other keys; "(0)" matches the same paths under (.*\.)?(KEY)$.
  assert.deepEqual(patternKeys(['a.0', 'b.q_proj', 'c.1.k']), ['(0)', 'q_proj', 'k']);
  const c = { r: 8, lora_alpha: 8, rank_pattern: JSON.parse(JSON.stringify({ q_proj: 2, '(0)': 4 })) as Record<string, number> };
  assert.deepEqual(Object.keys(c.rank_pattern), ['q_proj', '(0)']);
  assert.equal(peftLookup(c, 'a.0').r, 4);
  assert.equal(peftLookup(c, 'a.10').r, 8);
});

test('expand: a source pattern whose one key is an array index ("0") keeps its meaning after a rank change adds entries before it', async () => {
  const mod = (m: string) => pair(`base_model.model.${m}.lora_A.weight`, `base_model.model.${m}.lora_B.weight`, 8, 16, 16);
  const modules = ['a.0', 'b.0', 'c.q_proj'];
  const config = JSON.parse('{"r": 8, "lora_alpha": 16, "alpha_pattern": {"0": 4}}') as Record<string, unknown>;
  const plan = await describeLora(input(modules.flatMap(mod), { config }));
  const newRank = new Map([['c.q_proj', 2]]);
  const out = planOutput({ family: 'peft', layers: plainLayers(plan, (l) => newRank.get(l.name) ?? l.rank), passthrough: [], metadata: null, config });
  const c = JSON.parse(JSON.stringify(out.config)) as Record<string, unknown>; // as written to adapter_config.json
  // The new entry first; the source's "0", beside it, written "(0)" (the same pattern) so JSON order cannot put it first.
  assert.deepEqual(Object.keys(c.alpha_pattern as object), ['q_proj', '(0)']);
  for (const [i, spec] of plan.layers.entries()) {
    const { r, alpha } = peftLookup(c, spec.name);
    assert.equal(r, newRank.get(spec.name) ?? 8, spec.name);
    assert.ok(Math.abs(alpha / r - spec.scale) < 1e-12, `${spec.name}: ${alpha}/${r} vs ${spec.scale}`);
    assert.ok(Math.abs(out.layers[i].scaleOut - spec.scale) < 1e-12);
  }
});

test('expand: diffusers lora_adapter_metadata is adjusted per component on a rank change', async () => {
  const s = 'transformer.blocks.0.to_q';
  const meta = { format: 'pt', lora_adapter_metadata: JSON.stringify({ 'transformer.r': 8, 'transformer.lora_alpha': 4 }, null, 2) };
  const plan = await describeLora(input(pair(`${s}.lora_A.weight`, `${s}.lora_B.weight`, 8, 16, 16), { metadata: meta }));
  const same = planOutput({ family: 'diffusers', layers: plainLayers(plan), passthrough: [], metadata: meta, config: null });
  assert.equal(same.metadata, meta);
  const out = planOutput({ family: 'diffusers', layers: plainLayers(plan, () => 2), passthrough: [], metadata: meta, config: null });
  const m = JSON.parse(out.metadata!.lora_adapter_metadata) as Record<string, number>;
  assert.equal(m['transformer.r'], 2);
  assert.equal(m['transformer.lora_alpha'], 1); // 4/8 * 2
  assert.equal(out.layers[0].scaleOut, 0.5);
  assert.equal(out.metadata!.format, 'pt');
});

test('expand: diffusers without alpha or metadata keeps scale 1 at any rank', async () => {
  const dir = path.join(realLorasDir(), 'diffusers-sd2-bf16');
  const h = readHeader(path.join(dir, 'pytorch_lora_weights.safetensors'));
  const plan = await describeLora({ tensors: h.tensors, metadata: h.metadata, config: null, readScalar: noReads });
  const out = planOutput({ family: 'diffusers', layers: plainLayers(plan, () => 2), passthrough: [], metadata: h.metadata, config: null });
  assert.ok(out.layers.every((l) => l.scaleOut === 1));
  assert.ok(out.tensors.every((x) => x.dtype === 'BF16'));
  assert.equal(out.tensors.length, h.tensors.length);
  assert.deepEqual(out.metadata, h.metadata);
});

test('kohya hashes: the rule reproduces the real LoKr file\'s stored sshs_model_hash and sshs_legacy_hash', () => {
  const h = readHeader(path.join(realLorasDir(), 'reject-lycoris-lokr', 'smart_falcon_4_lokr.safetensors'));
  const data = h.bytes.subarray(8 + h.headerLength);
  const dataSha = crypto.createHash('sha256').update(data).digest('hex');
  const fin = kohyaHashFinalizer(h.tensors as Parameters<typeof kohyaHashFinalizer>[0], h.metadata);
  assert.equal(fin.legacyHash, 'exact'); // 647722 bytes: under 1 MiB
  assert.deepEqual(fin.finalizeMetadata(dataSha), { sshs_model_hash: h.metadata!.sshs_model_hash, sshs_legacy_hash: h.metadata!.sshs_legacy_hash });
  assert.equal(LEGACY_HASH_OF_SMALL_FILE, crypto.createHash('sha256').update(Buffer.alloc(0)).digest('hex').slice(0, 8));
});

test('kohya hashes: stale hashes are dropped from the plan; over 1 MiB the legacy hash is left out', async () => {
  const s = 'lora_unet_a';
  const metadata = { ss_network_dim: '4', sshs_model_hash: 'old', sshs_legacy_hash: 'old' };
  const small = await describeLora(input(pair(`${s}.lora_down.weight`, `${s}.lora_up.weight`, 4, 64, 64)));
  const out = planOutput({ family: 'kohya', layers: plainLayers(small), passthrough: [], metadata, config: null });
  assert.deepEqual(out.metadata, { ss_network_dim: '4' });
  assert.equal(out.kohyaHashes!.legacyHash, 'exact');
  const hex = 'ab'.repeat(32);
  assert.deepEqual(out.kohyaHashes!.finalizeMetadata(hex), { sshs_model_hash: hex, sshs_legacy_hash: 'e3b0c442' });
  assert.throws(() => out.kohyaHashes!.finalizeMetadata('nothex'));
  const big = await describeLora(input(pair(`${s}.lora_down.weight`, `${s}.lora_up.weight`, 64, 4096, 4096))); // 2 MiB of F32
  const out2 = planOutput({ family: 'kohya', layers: plainLayers(big), passthrough: [], metadata, config: null });
  assert.equal(out2.kohyaHashes!.legacyHash, 'omitted');
  assert.deepEqual(out2.kohyaHashes!.finalizeMetadata(hex), { sshs_model_hash: hex });
  assert.ok(out2.warnings.some((w) => /sshs_legacy_hash/.test(w)));
});

test('--to kohya from diffusers: kohya training metadata in the source follows a rank change (resize_lora), and only then', async () => {
  const s = 'unet.down_blocks.0.attentions.0.proj_in';
  // diffusers default alpha = rank, so the scale is 1 and the new alpha 1 * new rank (resize_lora: str(rank), str(float(alpha))).
  const plan = await describeLora(input(pair(`${s}.lora.down.weight`, `${s}.lora.up.weight`, 4, 320, 320)));
  const metadata = { ss_network_dim: '4', ss_network_alpha: '4.0', ss_output_name: 'x' };
  const out = planOutput({ family: 'diffusers', to: 'kohya', layers: plainLayers(plan, () => 2), passthrough: [], metadata, config: null });
  assert.deepEqual(out.metadata, { ss_network_dim: '2', ss_network_alpha: '2.0', ss_output_name: 'x' });
  assert.equal(metadata.ss_network_dim, '4', 'source metadata not mutated');
  const kept = planOutput({ family: 'diffusers', to: 'kohya', layers: plainLayers(plan), passthrough: [], metadata, config: null });
  assert.deepEqual(kept.metadata, metadata);
});

test('--to kohya from diffusers: dots become underscores behind the component prefix; alpha keeps the scale', async () => {
  const tensors = [
    ...pair('unet.down_blocks.0.attentions.0.proj_in.lora.down.weight', 'unet.down_blocks.0.attentions.0.proj_in.lora.up.weight', 4, 320, 320),
    ...pair('text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.down.weight',
      'text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.up.weight', 4, 768, 768),
    ...pair('text_encoder_2.text_model.encoder.layers.0.mlp.fc1.lora_A.weight', 'text_encoder_2.text_model.encoder.layers.0.mlp.fc1.lora_B.weight', 4, 1280, 5120),
  ];
  const plan = await describeLora(input(tensors));
  const out = planOutput({ family: 'diffusers', to: 'kohya', layers: plainLayers(plan, () => 2), passthrough: [], metadata: { format: 'pt' }, config: null });
  assert.equal(out.family, 'kohya');
  const names = out.tensors.map((x) => x.name).sort();
  assert.deepEqual(names, [
    'lora_te1_text_model_encoder_layers_0_self_attn_q_proj.alpha',
    'lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight',
    'lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight',
    'lora_te2_text_model_encoder_layers_0_mlp_fc1.alpha',
    'lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight',
    'lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_up.weight',
    'lora_unet_down_blocks_0_attentions_0_proj_in.alpha',
    'lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight',
    'lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight',
  ]);
  for (const x of out.tensors.filter((y) => y.source.kind === 'alpha')) {
    assert.deepEqual(x.source, { kind: 'alpha', value: 2, bytes: Uint8Array.from([0, 0, 0, 0x40]) }); // scale 1 * rank 2, F32 0x40000000
  }
  assert.ok(out.layers.every((l) => l.scaleOut === 1));
});

test('--to peft from one diffusers component writes base_model.model. keys and a config that keeps each scale', async () => {
  const tensors = [
    ...pair('transformer.a.to_q.lora_A.weight', 'transformer.a.to_q.lora_B.weight', 8, 16, 16), t('transformer.a.to_q.alpha', []),
    ...pair('transformer.b.to_k.lora_A.weight', 'transformer.b.to_k.lora_B.weight', 8, 16, 16), t('transformer.b.to_k.alpha', []),
  ];
  const plan = await describeLora(input(tensors, { readScalar: scalars({ 'transformer.a.to_q.alpha': 4, 'transformer.b.to_k.alpha': 8 }).readScalar }));
  const out = planOutput({ family: 'diffusers', to: 'peft', layers: plainLayers(plan, (l) => (l.name.endsWith('to_q') ? 2 : 8)), passthrough: [], metadata: null, config: null });
  assert.deepEqual(out.tensors.map((x) => x.name).sort(), [
    'base_model.model.a.to_q.lora_A.weight', 'base_model.model.a.to_q.lora_B.weight',
    'base_model.model.b.to_k.lora_A.weight', 'base_model.model.b.to_k.lora_B.weight']);
  const c = out.config as Record<string, unknown>;
  assert.equal(c.peft_type, 'LORA');
  for (const [i, spec] of plan.layers.entries()) {
    const { r, alpha } = peftLookup(c, spec.modulePath!);
    assert.equal(r, out.layers[i].rank);
    assert.equal(alpha / r, spec.scale);
    assert.equal(out.layers[i].scaleOut, spec.scale);
  }
});

test('--to: ambiguous conversions are UsageErrors that say why', async () => {
  const kohya = await describeLora(input(pair('lora_unet_a_b.lora_down.weight', 'lora_unet_a_b.lora_up.weight', 2, 4, 4)));
  let e = await caught(() => planOutput({ family: 'kohya', to: 'diffusers', layers: plainLayers(kohya), passthrough: [], metadata: null, config: null }));
  assert.ok(e instanceof UsageError);
  assert.match(e.message, /underscores/);
  const peft = await describeLora(input(pair('base_model.model.m.lora_A.weight', 'base_model.model.m.lora_B.weight', 2, 4, 4), { config: { r: 2 } }));
  e = await caught(() => planOutput({ family: 'peft', to: 'kohya', layers: plainLayers(peft), passthrough: [], metadata: null, config: null }));
  assert.ok(e instanceof UsageError);
  e = await caught(() => planOutput({ family: 'peft', to: 'diffusers', layers: plainLayers(peft), passthrough: [], metadata: null, config: null }));
  assert.ok(e instanceof UsageError);
  assert.match(e.message, /component/);
  const two = await describeLora(input([...pair('unet.a.lora_A.weight', 'unet.a.lora_B.weight', 2, 4, 4), ...pair('text_encoder.a.lora_A.weight', 'text_encoder.a.lora_B.weight', 2, 4, 4)]));
  e = await caught(() => planOutput({ family: 'diffusers', to: 'peft', layers: plainLayers(two), passthrough: [], metadata: null, config: null }));
  assert.ok(e instanceof UsageError);
  assert.match(e.message, /2 pipeline components/);
  e = await caught(() => planOutput({ family: 'diffusers', to: 'kohya', layers: plainLayers(two), passthrough: [t('unet.a.lora_magnitude_vector', [4])], metadata: null, config: null }));
  assert.ok(e instanceof UsageError);
  e = await caught(() => planOutput({ family: 'kohya', layers: plainLayers(kohya, () => 0), passthrough: [], metadata: null, config: null }));
  assert.ok(e instanceof UsageError);
});

test('expand: specs restored without component/modulePath fall back on the layer name', async () => {
  const s = 'transformer.blocks.0.to_q';
  const meta = { lora_adapter_metadata: JSON.stringify({ 'transformer.r': 8, 'transformer.lora_alpha': 4, 'transformer.rank_pattern': {} }) };
  const plan = await describeLora(input(pair(`${s}.lora_A.weight`, `${s}.lora_B.weight`, 8, 16, 16), { metadata: meta }));
  const bare = plan.layers.map(({ component: _c, modulePath: _m, ...rest }) => rest as LayerSpec);
  assert.deepEqual(moduleOf(bare[0], 'diffusers'), { component: 'transformer', modulePath: 'blocks.0.to_q' });
  assert.deepEqual(moduleOf(bare[0], 'peft'), { component: '', modulePath: s });
  const out = planOutput({ family: 'diffusers', layers: bare.map((spec) => ({ spec, rank: 4 })), passthrough: [], metadata: meta, config: null });
  assert.equal(out.layers[0].scaleOut, 0.5);
  const k = planOutput({ family: 'diffusers', to: 'kohya', layers: bare.map((spec) => ({ spec, rank: 4 })), passthrough: [], metadata: meta, config: null });
  assert.ok(k.tensors.some((x) => x.name === 'lora_transformer_blocks_0_to_q.lora_down.weight'));
  assert.equal(k.metadata!.lora_adapter_metadata, undefined);
});
