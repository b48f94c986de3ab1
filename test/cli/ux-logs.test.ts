/**
 * Issue 13 item 4 through the CLI: log messages are human lines printed once (no raw pino JSON unless
 * --log-format json), -v / -vv add detection, ratios, timings and per-layer settings, -q keeps only errors,
 * harmless facts (kohya ss_* metadata) are info, -V prints the version; progress off a terminal is a plain
 * line with percent, elapsed time and ETA.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { inBatches, REPO, runNola } from './cli-helpers.js';
import { lines, makeWorkspace, type Workspace } from './ux-helpers.js';
import { formatDuration, shortenMiddle } from '../../src/cli/progress.js';

let ws: Workspace;
let dora = '';
let kohya = '';
before(async () => {
  ws = await makeWorkspace('nola-ux-logs-');
  dora = path.join(ws.fixtures, 'peft-dora-conv-bf16');
  kohya = path.join(ws.fixtures, 'kohya-sd15.safetensors');
});
after(() => ws.cleanup());

const out = (name: string): string[] => ['-o', path.join(ws.dir, name), '--force'];

test('a warning is one human line on stderr, printed once; never on stdout; --log-format json gives pino JSON lines', async () => {
  const [human, json] = await inBatches([
    () => runNola(['compress', dora, ...out('h.nola')]),
    () => runNola(['--log-format', 'json', 'compress', dora, ...out('j.nola')]),
  ]);
  assert.equal(human.code, 0, human.stderr);
  const errLines = lines(human.stderr);
  assert.ok(errLines.length > 0);
  for (const l of errLines) assert.match(l, /^nola: /, `not a human line: ${l}`);
  assert.doesNotMatch(human.stderr, /\{"level"/);
  const doraLines = errLines.filter((l) => /DoRA/.test(l));
  assert.equal(doraLines.length, 1, human.stderr);
  assert.match(doraLines[0], /^nola: warning: DoRA: /);
  assert.doesNotMatch(human.stdout, /warning/);
  // modules_to_save kept verbatim is a harmless fact: not a warning (an info line with -v).
  assert.doesNotMatch(human.stderr, /modules_to_save/);
  assert.equal(json.code, 0, json.stderr);
  const records = lines(json.stderr).map((l) => JSON.parse(l) as { level: number; msg: string });
  assert.equal(records.filter((r) => r.level === 40 && /DoRA/.test(r.msg)).length, 1);
});

test('-v adds detection, ratios and timings; -vv every layer; -q only errors; kohya ss_* metadata is info', async () => {
  const [plain, v, vv, q] = await inBatches([
    () => runNola(['compress', kohya, ...out('p.nola')]),
    () => runNola(['-v', 'compress', kohya, ...out('v.nola')]),
    () => runNola(['compress', kohya, '-vv', ...out('vv.nola'), '--json']),
    () => runNola(['compress', kohya, '-q', '--rank', '1', ...out('q.nola')]),
  ]);
  for (const r of [plain, v, vv, q]) assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(plain.stderr, /kohya metadata|detected|compressed in/);
  assert.match(v.stderr, /^nola: detected kohya: 6 layers/m);
  assert.match(v.stderr, /^nola: compressed in \d+\.\d s with \d+ threads?/m);
  assert.match(v.stderr, /^nola: coefficients .* vs the LoRA factors as fp16/m);
  assert.match(v.stderr, /^nola: kohya metadata: /m, 'ss_* metadata is an info line');
  assert.doesNotMatch(v.stderr, /warning: kohya metadata/);
  const layers = (JSON.parse(vv.stdout) as { layers: Array<{ name: string }> }).layers;
  const debug = lines(vv.stderr).filter((l) => l.startsWith('nola: debug: '));
  assert.equal(debug.length, layers.length, vv.stderr);
  for (const l of layers) assert.ok(debug.some((d) => d.startsWith(`nola: debug: ${l.name}: `)), l.name);
  // --rank 1 breaks the bound (a warning), but -q prints errors only.
  assert.equal(q.stderr, '');
});

test('-V and --version print the package version', async () => {
  const version = (JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
  for (const flag of ['-V', '--version']) {
    const r = await runNola([flag]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), version);
  }
});

test('off a terminal, progress is a plain line with percent, elapsed and ETA (NOLA_PROGRESS_SECONDS=0: every update)', async () => {
  const r = await runNola(['compress', kohya, ...out('prog.nola'), '--threads', '1'], { env: { NOLA_PROGRESS_SECONDS: '0' } });
  assert.equal(r.code, 0, r.stderr);
  const progress = lines(r.stderr).filter((l) => l.startsWith('compress '));
  assert.equal(progress.length, 6, r.stderr);
  for (const [i, l] of progress.entries()) {
    assert.match(l, new RegExp(`^compress +${Math.floor((100 * (i + 1)) / 6)}% ${i + 1}/6  \\d+:\\d\\d elapsed`));
  }
  assert.ok(progress.slice(0, -1).every((l) => /, ETA \d+:\d\d/.test(l)), 'an ETA while the run lasts');
  assert.doesNotMatch(r.stderr, /\r|\x1b\[/, 'no terminal control off a terminal');
  const quiet = await runNola(['compress', kohya, ...out('prog-q.nola'), '-q'], { env: { NOLA_PROGRESS_SECONDS: '0' } });
  assert.equal(quiet.stderr, '');
});

test('progress helpers: the middle of a long layer name goes, both ends stay; durations as m:ss / h:mm:ss', () => {
  const name = 'unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_out.0';
  const s = shortenMiddle(name, 40);
  assert.equal(s.length, 40);
  assert.ok(s.startsWith('unet.down_blocks.1'), s);
  assert.ok(s.endsWith('attn2.to_out.0'), s);
  assert.ok(s.includes('…'));
  assert.equal(shortenMiddle('short', 40), 'short');
  assert.equal(formatDuration(75), '1:15');
  assert.equal(formatDuration(3725), '1:02:05');
  assert.equal(formatDuration(0), '0:00');
});
