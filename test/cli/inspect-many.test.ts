/**
 * `nola inspect` over several inputs: a folder of the fixture generator's adapters (kohya, diffusers,
 * PEFT folders) with one bad file, and a folder of their NOLA files. Expected kinds, families and
 * layer counts come from the generator's manifest, NOLA bytes from fs.stat, and each file's entry
 * must equal what `nola inspect FILE --json` says of it alone.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateFixtures } from '../../fixtures/generate.js';
import { EXIT } from '../../src/errors.js';
import type { InspectEntry, InspectTotals } from '../../src/cli/inspect.js';
import { inBatches, runNola } from './cli-helpers.js';

const dir = mkdtempSync(path.join(tmpdir(), 'nola-inspect-many-'));
const lib = path.join(dir, 'lib');
const out = path.join(dir, 'nola');
const bad = path.join(lib, 'not-safetensors.safetensors');
let manifest: Array<{ input: string; family: string; layers: number }> = [];

before(async () => {
  const files = await generateFixtures(lib);
  manifest = files.map((f) => ({ input: f.configPath !== undefined ? path.dirname(f.path) : f.path, family: f.family, layers: f.layers }));
  const r = await runNola(['compress', lib, '--out-dir', out, '--threads', '1']);
  assert.equal(r.code, 0, r.stderr);
  writeFileSync(bad, 'this is not a safetensors file\n');
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('inspect of two folders: every LoRA and NOLA file once, a bad one listed with its exit code, totals from the files, exit 8', async () => {
  const r = await runNola(['inspect', lib, out, '--json']);
  assert.equal(r.code, EXIT.partial, r.stderr);
  const { files, totals } = JSON.parse(r.stdout) as { files: InspectEntry[]; totals: InspectTotals };
  const nolaFiles = readdirSync(out).filter((n) => n.endsWith('.nola')).map((n) => path.join(out, n));
  assert.equal(nolaFiles.length, manifest.length);
  assert.deepEqual(files.map((e) => e.input).sort(), [...manifest.map((m) => m.input), bad, ...nolaFiles].sort());

  for (const m of manifest) {
    const e = files.find((f) => f.input === m.input)!;
    assert.ok('inspection' in e && e.inspection.kind === 'lora', m.input);
    assert.equal(e.inspection.kind === 'lora' && e.inspection.family, m.family, m.input);
    assert.equal(e.inspection.totals.layers, m.layers, m.input);
  }
  for (const f of nolaFiles) {
    const e = files.find((x) => x.input === f)!;
    assert.ok('inspection' in e && e.inspection.kind === 'nola', f);
    assert.equal(e.inspection.bytes.file, statSync(f).size, f);
  }
  const failed = files.find((e) => e.input === bad)!;
  assert.ok(!('inspection' in failed) && failed.exit_code === EXIT.format, JSON.stringify(failed));

  assert.equal(totals.files, manifest.length * 2 + 1);
  assert.equal(totals.failed, 1);
  assert.equal(totals.lora.files, manifest.length);
  assert.equal(totals.lora.layers, manifest.reduce((a, m) => a + m.layers, 0));
  assert.equal(totals.nola.bytes, nolaFiles.reduce((a, f) => a + statSync(f).size, 0));

  // Each entry is what inspecting the file alone says (the file names are the same strings).
  const alone = await inBatches(files.filter((e) => 'inspection' in e).map((e) => () => runNola(['inspect', e.input, '--json'])), 2);
  files.filter((e) => 'inspection' in e).forEach((e, i) => {
    assert.equal(alone[i].code, 0, alone[i].stderr);
    assert.deepEqual((e as { inspection: unknown }).inspection, JSON.parse(alone[i].stdout), e.input);
  });
});

test('inspect of a folder as text: one line per file ending with its name, the failure with its reason, a totals line', async () => {
  const r = await runNola(['inspect', lib]);
  assert.equal(r.code, EXIT.partial);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, manifest.length + 2);
  for (const m of manifest) assert.ok(lines.some((l) => l.startsWith('lora ') && l.endsWith(`  ${m.input}`) && l.includes(` ${m.family} `)), m.input);
  assert.ok(lines.some((l) => l.startsWith(`failed ${bad} (exit ${EXIT.format}): `)), r.stdout);
  assert.match(lines[lines.length - 1], new RegExp(`^nola inspect: ${manifest.length + 1} files: ${manifest.length} LoRA \\(.*\\), 1 failed$`));
  assert.match(r.stderr, /error: 1 of \d+ files could not be inspected/);
});

test('inspect --layers with several inputs is refused (it lists one file\'s layers), nothing printed', async () => {
  const r = await runNola(['inspect', lib, out, '--layers']);
  assert.equal(r.code, EXIT.usage);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /--layers lists the layers of one file/);
});
