/**
 * Issue 13 item 2 through the CLI: a PEFT expansion is a folder PEFT loads by default
 * (`<name>.expanded/adapter_model.safetensors` + `adapter_config.json`), `--to peft` names the weights
 * adapter_model.safetensors, the source's folder is never written over (with --force either), and the
 * written rank_pattern gives every layer its rank under both of PEFT's key-matching rules, implemented
 * here from PEFT's source: recent releases re.match(rf"(.*\.)?({key})$", name), older ones
 * re.match(rf".*\.{key}$", name); the first key in order that matches wins, else `r`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { EXIT } from '../../src/errors.js';
import { runNola } from './cli-helpers.js';
import { lines, makeWorkspace, readHeader, type Workspace } from './ux-helpers.js';

let ws: Workspace;
before(async () => { ws = await makeWorkspace('nola-ux-peft-'); });
after(() => ws.cleanup());

type Rule = (key: string, name: string) => boolean;
const RULES: Record<string, Rule> = {
  'new (.*\\.)?(KEY)$': (key, name) => new RegExp(`^(?:.*\\.)?(?:${key})$`).test(name),
  'old .*\\.KEY$': (key, name) => new RegExp(`^.*\\.${key}$`).test(name),
};

function peftValue(pattern: Record<string, number>, fallback: number, name: string, rule: Rule): number {
  const key = Object.keys(pattern).find((k) => rule(k, name));
  return key === undefined ? fallback : pattern[key];
}

/** Every layer's module name and rank, from the expanded weights' header. */
function layerRanks(weights: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, t] of Object.entries(readHeader(weights).tensors)) {
    const m = /^base_model\.model\.(.+)\.(?:lora_A\.weight|lora_embedding_A)$/.exec(name);
    if (m) out.set(m[1], t.shape[0]);
  }
  return out;
}

function checkBothRules(folder: string): void {
  const config = JSON.parse(readFileSync(path.join(folder, 'adapter_config.json'), 'utf8')) as { r: number; rank_pattern?: Record<string, number> };
  const ranks = layerRanks(path.join(folder, 'adapter_model.safetensors'));
  assert.ok(ranks.size > 0);
  for (const key of Object.keys(config.rank_pattern ?? {})) assert.ok(!key.startsWith('^'), `anchored key ${key}`);
  for (const [ruleName, rule] of Object.entries(RULES)) {
    for (const [name, rank] of ranks) {
      assert.equal(peftValue(config.rank_pattern ?? {}, config.r, name, rule), rank, `${ruleName}: ${name}`);
    }
  }
}

function folderDigest(dir: string): string {
  const h = createHash('sha256');
  for (const f of readdirSync(dir).sort()) h.update(f).update(readFileSync(path.join(dir, f)));
  return h.digest('hex');
}

test('PEFT expand by default writes a loadable folder beside the input whose ranks both PEFT rules find', async () => {
  const src = path.join(ws.dir, 'adapter');
  cpSync(path.join(ws.fixtures, 'peft-patterns'), src, { recursive: true });
  const before = folderDigest(src);
  const c = await runNola(['compress', src]);
  assert.equal(c.code, 0, c.stderr);
  assert.ok(existsSync(path.join(ws.dir, 'adapter.nola')));
  const e = await runNola(['expand', path.join(ws.dir, 'adapter.nola')]);
  assert.equal(e.code, 0, e.stderr);
  const out = path.join(ws.dir, 'adapter.expanded');
  assert.deepEqual(readdirSync(out).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  // Ranks changed per layer (the default picks them from each spectrum), so the pattern is exercised.
  const ranks = new Set(layerRanks(path.join(out, 'adapter_model.safetensors')).values());
  assert.ok(ranks.size > 1, `ranks ${[...ranks]}`);
  checkBothRules(out);
  assert.equal(folderDigest(src), before, 'the source folder is unchanged');
});

test('--to peft names the weights adapter_model.safetensors, and both rules find every rank', async () => {
  const nola = path.join(ws.dir, 'flux.nola');
  const c = await runNola(['compress', path.join(ws.fixtures, 'diffusers-flux-alpha.safetensors'), '-o', nola, '--max-error', '0.05']);
  assert.equal(c.code, 0, c.stderr);
  const e = await runNola(['expand', nola, '--to', 'peft']);
  assert.equal(e.code, 0, e.stderr);
  assert.deepEqual(readdirSync(path.join(ws.dir, 'flux.expanded')).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  checkBothRules(path.join(ws.dir, 'flux.expanded'));
});

test('expand never replaces the source adapter or its config, --force or not', async () => {
  const src = path.join(ws.dir, 'guarded');
  cpSync(path.join(ws.fixtures, 'tiny-peft'), src, { recursive: true });
  const nola = path.join(ws.dir, 'guarded.nola');
  assert.equal((await runNola(['compress', src, '-o', nola])).code, 0);
  const before = folderDigest(src);
  for (const args of [['-o', `${src}/`, '--force'], ['-o', path.join(src, 'adapter_model.safetensors'), '--force'], ['-o', path.join(src, 'other.safetensors'), '--force']]) {
    const r = await runNola(['expand', nola, ...args]);
    assert.equal(r.code, EXIT.usage, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(lines(r.stderr).length, 1, r.stderr);
    assert.match(r.stderr, /nola will not replace it/);
    assert.equal(folderDigest(src), before, `${args.join(' ')} changed the source folder`);
  }
});
