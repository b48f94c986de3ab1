/**
 * Issue 13 item 5 through the CLI: compress, inspect and --json give the same two error figures
 * (energy-weighted, worst); the size headline is the file against the source file (checked against
 * fs.stat here); the layers table is ranked by the energy each layer loses (recomputed here from the
 * JSON report: energy·error²), and its SVD column says what it is; --ratio's help says what it is relative to.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { runNola } from './cli-helpers.js';
import { lines, makeWorkspace, writeTinyF16Lora, type Workspace } from './ux-helpers.js';

let ws: Workspace;
before(async () => { ws = await makeWorkspace('nola-ux-numbers-'); });
after(() => ws.cleanup());

interface Report { totals: { energyWeightedError: number; maxError: number }; layers: Array<{ name: string; energy: number; error: number; bytesAfter: number }> }

for (const fixture of ['kohya-sd15.safetensors', 'peft-patterns']) {
  test(`${fixture}: compress and inspect report the same energy-weighted and worst errors, text and JSON`, async () => {
    const input = path.join(ws.fixtures, fixture);
    const nola = path.join(ws.dir, `${fixture}.nola`);
    const text = await runNola(['compress', input, '-o', nola, '--threads', '1']);
    assert.equal(text.code, 0, text.stderr);
    const json = await runNola(['compress', input, '-o', path.join(ws.dir, `${fixture}.2.nola`), '--threads', '1', '--json']);
    const report = JSON.parse(json.stdout) as Report;
    const ins = await runNola(['inspect', nola]);
    const insJson = JSON.parse((await runNola(['inspect', nola, '--json'])).stdout) as { totals: { energyWeightedError: number; maxError: number } };
    assert.equal(ins.code, 0, ins.stderr);
    // The same line in both; inspect estimates the source energies from the file (README), so the
    // weighted figure may differ in its last digit.
    const errorLine = (s: string): string => s.split('\n').find((l) => l.startsWith('  error  '))!.split(';')[0];
    const pattern = /^ {2}error {2}energy-weighted (\d\.\d{4}), worst layer (\d\.\d{4}) \(relative Frobenius error of ΔW\)$/;
    const [, wc, mc] = pattern.exec(errorLine(text.stdout)) ?? [];
    const [, wi, mi] = pattern.exec(errorLine(ins.stdout)) ?? [];
    assert.ok(wc !== undefined && wi !== undefined, `${errorLine(text.stdout)} / ${errorLine(ins.stdout)}`);
    assert.equal(mi, mc);
    assert.ok(Math.abs(Number(wi) - Number(wc)) <= 2e-4, `${wi} vs ${wc}`);
    assert.equal(insJson.totals.maxError, report.totals.maxError);
    assert.ok(Math.abs(insJson.totals.energyWeightedError - report.totals.energyWeightedError) < 5e-4,
      `${insJson.totals.energyWeightedError} vs ${report.totals.energyWeightedError}`);

    // The headline: source file bytes over NOLA file bytes, from the filesystem.
    const ratio = statSync(path.resolve(fixture.endsWith('.safetensors') ? input : path.join(input, 'adapter_model.safetensors'))).size / statSync(nola).size;
    assert.match(text.stdout, new RegExp(`^  size   .* -> .*: ${ratio.toFixed(2).replace('.', '\\.')}x smaller file`, 'm'));
    assert.doesNotMatch(text.stdout, /coefficients .* vs fp16/, 'the other ratios are in the report, not the headline');

    // The table: ranked by energy lost, shares as recomputed from the report.
    const header = text.stdout.split('\n').findIndex((l) => l.startsWith('  layers that lose the most energy'));
    assert.ok(header > 0);
    assert.match(text.stdout.split('\n')[header], /error of plain SVD in fp16 at the same bytes/);
    const rows = text.stdout.split('\n').slice(header + 1).filter((l) => /^ {3}[ *] *\d+\.\d%/.test(l));
    const lost = report.layers.map((l) => ({ name: l.name, lost: l.energy * l.error ** 2 }));
    const total = lost.reduce((a, l) => a + l.lost, 0);
    const expected = [...lost].sort((a, b) => b.lost - a.lost).slice(0, rows.length);
    assert.equal(rows.length, Math.min(5, report.layers.length));
    rows.forEach((row, i) => {
      assert.ok(row.endsWith(`  ${expected[i].name}`), `${row} vs ${expected[i].name}`);
      const share = Number(/(\d+\.\d)%/.exec(row)![1]);
      assert.ok(Math.abs(share - (100 * expected[i].lost) / total) <= 0.051, `${row}: ${(100 * expected[i].lost) / total}`);
    });
  });
}

test('--ratio help says what the ratio is relative to', async () => {
  const r = await runNola(['compress', '--help']);
  assert.match(r.stdout.replace(/\s+/g, ' '), /--ratio <X> make the NOLA file \(less the tensors kept verbatim\) about X times smaller than the LoRA factors stored as fp16/);
});

test('library runs say sizes as people do: "Nx smaller" for compress, "Nx larger" for expand, N from the files on disk', async () => {
  const lib = path.join(ws.dir, 'lib-ratio');
  const src = path.join(ws.fixtures, 'kohya-sd15.safetensors');
  const compressed = await runNola(['compress', src, path.join(ws.fixtures, 'peft-patterns'), '--out-dir', path.join(lib, 'nola'), '--threads', '1']);
  assert.equal(compressed.code, 0, compressed.stderr);
  const nola = path.join(lib, 'nola', 'kohya-sd15.nola');
  const shrink = (statSync(src).size / statSync(nola).size).toFixed(2).replace('.', '\\.');
  assert.match(compressed.stderr, new RegExp(`done .*kohya-sd15\\.safetensors -> .* \\(.* -> .*, ${shrink}x smaller, worst error`));
  assert.match(compressed.stdout, /^ {2}bytes: {3}.* saved, \d+\.\d\dx smaller\)$/m);
  const expanded = await runNola(['expand', path.join(lib, 'nola'), '--out-dir', path.join(lib, 'lora')]);
  assert.equal(expanded.code, 0, expanded.stderr);
  const grow = (statSync(path.join(lib, 'lora', 'kohya-sd15.expanded.safetensors')).size / statSync(nola).size).toFixed(2).replace('.', '\\.');
  assert.match(expanded.stderr, new RegExp(`done .*kohya-sd15\\.nola -> .* \\(.* -> .*, ${grow}x larger, worst error`));
  assert.match(expanded.stdout, /^ {2}bytes: {3}.* more, \d+\.\d\dx larger\)$/m);
  assert.doesNotMatch(expanded.stdout + expanded.stderr, /0\.\d\dx/, 'no ratio below one');
});

test('a NOLA file larger than its source says "Nx larger file" and warns, text and JSON, N from the files on disk', async () => {
  const src = writeTinyF16Lora(path.join(ws.dir, 'tiny-f16.safetensors'));
  const out = path.join(ws.dir, 'tiny-f16.nola');
  const text = await runNola(['compress', src, '-o', out, '--threads', '1']);
  assert.equal(text.code, 0, text.stderr);
  const grow = statSync(out).size / statSync(src).size;
  assert.ok(grow > 1, `this source should not shrink: ${statSync(out).size} B from ${statSync(src).size} B`);
  assert.match(text.stdout, new RegExp(`^  size   .* -> .*: ${grow.toFixed(2).replace('.', '\\.')}x larger file$`, 'm'));
  assert.doesNotMatch(text.stdout, /smaller file/);
  assert.match(text.stderr, /warning: the NOLA file is \d+\.\d\dx larger than its source .*keep the source file/);
  const ins = await runNola(['inspect', out]);
  assert.equal(ins.code, 0, ins.stderr);
  assert.match(ins.stdout, new RegExp(`^  ratio  ${grow.toFixed(2).replace('.', '\\.')}x larger than the source file;`, 'm'));
  const json = await runNola(['compress', src, '-o', path.join(ws.dir, 'tiny-f16.2.nola'), '--threads', '1', '--json']);
  assert.equal(json.code, 0, json.stderr);
  const report = JSON.parse(json.stdout) as { warnings: string[] };
  assert.ok(report.warnings.some((w) => w.startsWith('the NOLA file is ')), report.warnings.join('\n'));
});

test('a library run logs each file\'s report warnings with its name, records them in the summary and counts them in the totals', async () => {
  const lib = path.join(ws.dir, 'lib-warn');
  mkdirSync(lib, { recursive: true });
  writeTinyF16Lora(path.join(lib, 'tiny.safetensors'));
  const summary = path.join(ws.dir, 'lib-warn.jsonl');
  // --rank 1 cannot hold the kohya fixture's layers within --max-error 0.01: the single-file report's bound warning.
  const r = await runNola(['compress', lib, path.join(ws.fixtures, 'kohya-sd15.safetensors'), '--out-dir', path.join(ws.dir, 'lib-warn-out'),
    '--rank', '1', '--max-error', '0.01', '--threads', '1', '--summary', summary]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /warning: the NOLA file is \d+\.\d\dx larger than its source .*\(input=.*tiny\.safetensors\)/);
  assert.match(r.stderr, /warning: \d+ of \d+ layers end above --max-error 0\.01 .*\(input=.*kohya-sd15\.safetensors\)/);
  const records = readFileSync(summary, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { input: string; warnings?: string[] });
  assert.equal(records.length, 2);
  // The same warnings as each file compressed alone (its --json report), in the same order.
  for (const rec of records) {
    const alone = await runNola(['compress', rec.input, '-o', path.join(ws.dir, `${path.basename(rec.input)}.alone.nola`), '--rank', '1', '--max-error', '0.01', '--threads', '1', '--json']);
    const expected = (JSON.parse(alone.stdout) as { warnings: string[] }).warnings;
    assert.ok(expected.length > 0);
    assert.deepEqual(rec.warnings, expected, rec.input);
  }
  assert.match(r.stdout, /^ {2}warnings: 2 files /m);
});

test('a library expand logs each file\'s warnings with its name and records them, the same as expanding it alone says', async () => {
  const dir = path.join(ws.dir, 'lib-warn-expand');
  const nola = path.join(dir, 'nola', 'te.nola');
  mkdirSync(path.dirname(nola), { recursive: true });
  // A diffusers file with text-encoder layers, written as kohya keys: the single-file expand warns about the naming.
  assert.equal((await runNola(['compress', path.join(ws.fixtures, 'diffusers-lora-linear-layer.safetensors'), '-o', nola, '--threads', '1'])).code, 0);
  const alone = await runNola(['expand', nola, '-o', path.join(dir, 'alone.safetensors'), '--to', 'kohya']);
  assert.equal(alone.code, 0, alone.stderr);
  const expected = lines(alone.stderr).filter((l) => l.startsWith('nola: warning: ')).map((l) => l.slice('nola: warning: '.length));
  assert.ok(expected.length > 0, alone.stderr);
  const summary = path.join(dir, 'summary.jsonl');
  const r = await runNola(['expand', path.dirname(nola), '--out-dir', path.join(dir, 'out'), '--to', 'kohya', '--summary', summary]);
  assert.equal(r.code, 0, r.stderr);
  for (const w of expected) assert.ok(r.stderr.includes(`nola: warning: ${w} (input=${nola})`), r.stderr);
  const [record] = readFileSync(summary, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { warnings?: string[] });
  assert.deepEqual(record.warnings, expected);
  assert.match(r.stdout, /^ {2}warnings: 1 file /m);
});
