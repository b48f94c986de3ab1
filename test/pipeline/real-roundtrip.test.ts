/**
 * Issues #2 and #3 on the real LoRA files in ../shared/real-loras (MANIFEST.md says what each is):
 * compress then expand as a user would (the built CLI), and check the result with an independent
 * reader: scripts/reference/nola_ref.py, written from docs/FORMAT.md in numpy, recomputes every
 * layer from the NOLA file and compares it with the source and with the expanded LoRA. Without
 * python3+numpy those comparisons are skipped (and say so); the structural checks still run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPO, runNola } from '../cli/cli-helpers.js';
import { generateFixtures } from '../../fixtures/generate.js';
import { documentJson, layerObjects } from './nola-file.js';

const REAL = path.resolve(REPO, '../shared/real-loras');
const REF = path.join(REPO, 'scripts/reference/nola_ref.py');
const numpy = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

/** Minimal header parser (8-byte little-endian length, then JSON): independent of src/io. */
function header(file: string): { meta: Record<string, string> | null; tensors: Map<string, { dtype: string; shape: number[] }> } {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const json = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const meta = (json.__metadata__ as Record<string, string> | undefined) ?? null;
  delete json.__metadata__;
  return { meta, tensors: new Map(Object.entries(json as Record<string, { dtype: string; shape: number[] }>)) };
}

interface RefRow { name: string; claimed: number; recomputed: number; expanded_vs_nola: number; expanded_vs_source: number }

function referenceCheck(nola: string, source: string, expanded: string): RefRow[] {
  const r = spawnSync('python3', [REF, 'check', nola, source, expanded], { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as RefRow[];
}

const CASES = [
  { dir: 'peft-distilbert-imdb', file: 'adapter_model.safetensors', dtype: 'F32', flags: ['--rank', 'keep'] },
  { dir: 'diffusers-sd15', file: 'pytorch_lora_weights.safetensors', dtype: 'F32', flags: [] },
  { dir: 'diffusers-sd2-bf16', file: 'pytorch_lora_weights.safetensors', dtype: 'BF16', flags: [] },
];

for (const c of CASES) {
  test(`${c.dir}: compress, expand and inspect round trip (names, dtypes, shapes, metadata, errors)`, { timeout: 300_000 }, async (t) => {
    const source = path.join(REAL, c.dir, c.file);
    if (!existsSync(source)) return t.skip(`${source} not found (../shared/real-loras is beside the checkout in CI)`);
    const work = mkdtempSync(path.join(tmpdir(), 'nola-real-'));
    try {
      const nolaFile = path.join(work, 'x.nola.safetensors');
      const comp = await runNola(['compress', path.join(REAL, c.dir), '-o', nolaFile, '--json', ...c.flags]);
      assert.equal(comp.code, 0, comp.stderr);
      const report = JSON.parse(comp.stdout) as { totals: { maxError: number; maxDeliveredError: number; outputBytes: number; inputBytes: number } };
      // The default bound (--max-error 0.1) holds on what is stored and on what expand writes.
      assert.ok(report.totals.maxError <= 0.1 && report.totals.maxDeliveredError <= 0.1, JSON.stringify(report.totals));
      assert.ok(report.totals.outputBytes < report.totals.inputBytes, 'the NOLA file is smaller than the LoRA');

      const outDir = path.join(work, 'out') + path.sep;
      const exp = await runNola(['expand', nolaFile, '-o', outDir]);
      assert.equal(exp.code, 0, exp.stderr);
      const expanded = path.join(outDir, c.file);
      const src = header(source), out = header(expanded);
      const doc = { layers: layerObjects(documentJson(readFileSync(nolaFile))) as Array<{ key_A: string; key_B: string; rank: number }> };
      assert.deepEqual([...out.tensors.keys()].sort(), [...src.tensors.keys()].sort(), 'same tensor names');
      assert.deepEqual(out.meta, src.meta, 'same metadata');
      const rankOf = new Map<string, { axis: number; rank: number }>();
      for (const l of doc.layers) {
        rankOf.set(l.key_A, { axis: 0, rank: l.rank });
        rankOf.set(l.key_B, { axis: 1, rank: l.rank });
      }
      for (const [name, s] of src.tensors) {
        const o = out.tensors.get(name)!;
        assert.equal(o.dtype, s.dtype, `${name} dtype`);
        const expected = [...s.shape];
        const r = rankOf.get(name);
        if (r) expected[r.axis] = r.rank;
        assert.deepEqual(o.shape, expected, `${name} shape`);
      }
      if (c.dir.startsWith('peft')) {
        // Ranks kept: the config is the source's, byte for byte.
        assert.equal(readFileSync(path.join(outDir, 'adapter_config.json'), 'utf8'), readFileSync(path.join(REAL, c.dir, 'adapter_config.json'), 'utf8'));
      }
      const ins = await runNola(['inspect', nolaFile, '--json']);
      assert.equal(ins.code, 0, ins.stderr);
      assert.equal((JSON.parse(ins.stdout) as { totals: { layers: number } }).totals.layers, doc.layers.length);

      if (!numpy) return t.diagnostic('python3 with numpy not found: independent reference comparison skipped');
      const rows = referenceCheck(nolaFile, source, expanded);
      assert.equal(rows.length, doc.layers.length);
      // Issue #3: expanded within 2e-3 of the NOLA reconstruction (F32), BF16 within its rounding (~4e-3).
      const tol = c.dtype === 'BF16' ? 4e-3 : 2e-3;
      for (const row of rows) {
        assert.ok(Math.abs(row.claimed - row.recomputed) < 1e-6, `${row.name}: claimed ${row.claimed}, reference ${row.recomputed}`);
        assert.ok(row.expanded_vs_nola < tol, `${row.name}: expanded vs NOLA ${row.expanded_vs_nola}`);
        assert.ok(row.expanded_vs_source <= 0.1 + 1e-6, `${row.name}: expanded vs source ${row.expanded_vs_source}`);
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
}

for (const dir of ['reject-lycoris-lokr', 'reject-cloneofsimo', 'malformed-kohya-like']) {
  test(`${dir}: refused with one clear line, nothing written`, async (t) => {
    const folder = path.join(REAL, dir);
    if (!existsSync(folder)) return t.skip(`${folder} not found`);
    const work = mkdtempSync(path.join(tmpdir(), 'nola-refuse-'));
    try {
      const r = await runNola(['compress', folder, '-o', path.join(work, 'x.nola.safetensors')]);
      assert.equal(r.code, 3, r.stderr);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], /^nola: error: /);
      if (dir === 'reject-lycoris-lokr') assert.match(lines[0], /LoKr/);
      if (dir === 'reject-lycoris-lokr') assert.match(lines[0], /LyCORIS/);
      if (dir === 'reject-cloneofsimo') assert.match(lines[0], /not supported/);
      if (dir === 'malformed-kohya-like') assert.match(lines[0], /_lora_down\.weight/);
      assert.deepEqual(readdirSync(work), []);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
}

// Issue #3 on every generated layout (kohya 1×1/3×3 convs, te/te1/te2 prefixes, alpha dtypes, every
// diffusers key style, PEFT embeddings/conv/DoRA/patterns/rslora, F16/BF16): the same checks.
test('generated fixtures of every family: round trip keeps names, dtypes, shapes; reference agrees', { timeout: 300_000 }, async (t) => {
  const work = mkdtempSync(path.join(tmpdir(), 'nola-fixtures-'));
  try {
    const fixtures = await generateFixtures(work);
    assert.ok(fixtures.length >= 10, `expected the full fixture set, got ${fixtures.length}`);
    for (const fx of fixtures) {
      const nolaFile = path.join(work, `${path.basename(path.dirname(fx.path))}-${path.basename(fx.path)}.nola.safetensors`);
      const comp = await runNola(['compress', fx.path, '-o', nolaFile, '--rank', 'keep', '--threads', '1']);
      assert.equal(comp.code, 0, `${fx.path}: ${comp.stderr}`);
      const outDir = `${nolaFile}.out${path.sep}`;
      const exp = await runNola(['expand', nolaFile, '-o', outDir]);
      assert.equal(exp.code, 0, `${fx.path}: ${exp.stderr}`);
      const expanded = path.join(outDir, path.basename(fx.path));
      const src = header(fx.path), out = header(expanded);
      assert.deepEqual([...out.tensors.keys()].sort(), [...src.tensors.keys()].sort(), `${fx.path}: names`);
      for (const [name, s] of src.tensors) {
        assert.equal(out.tensors.get(name)!.dtype, s.dtype, `${fx.path}: ${name} dtype`);
        assert.deepEqual(out.tensors.get(name)!.shape, s.shape, `${fx.path}: ${name} shape (ranks kept)`);
      }
      if (fx.configPath) {
        assert.equal(readFileSync(path.join(outDir, 'adapter_config.json'), 'utf8').length > 0, true);
        assert.deepEqual(JSON.parse(readFileSync(path.join(outDir, 'adapter_config.json'), 'utf8')), JSON.parse(readFileSync(fx.configPath, 'utf8')), `${fx.path}: config`);
      }
      if (!numpy) continue;
      const bf16 = [...src.tensors.values()].some((v) => v.dtype === 'BF16');
      for (const row of referenceCheck(nolaFile, fx.path, expanded)) {
        assert.ok(Math.abs(row.claimed - row.recomputed) < 1e-6, `${fx.path} ${row.name}: claimed ${row.claimed}, reference ${row.recomputed}`);
        assert.ok(row.expanded_vs_nola < (bf16 ? 4e-3 : 2e-3), `${fx.path} ${row.name}: expanded vs NOLA ${row.expanded_vs_nola}`);
      }
    }
    if (!numpy) t.diagnostic('python3 with numpy not found: independent reference comparison skipped');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

/**
 * How far inspect's rate–distortion ratios, from reconstructed spectra, may sit from compress's: the
 * file cannot show the components a fit dropped, so inspect's estimate may only be lower in bytes
 * (its ratio higher). Measured: SD 1.5 +0.0%/+0.1%, SD 2 −0.1%/−0.0%, DistilBERT +3.3%/+4.6% (Gaussian/bound).
 */
const INSPECT_RD_RANGE = [-0.005, 0.06] as const;

test('issue 4 (b) on every shared adapter: the default file is smaller than the reference frontier, every expanded layer within 0.1', { timeout: 300_000 }, async (t) => {
  if (!numpy) return t.skip('python3 with numpy is needed for the references');
  const FRONTIER = path.join(REPO, 'scripts', 'reference', 'frontier.py');
  const work = mkdtempSync(path.join(tmpdir(), 'nola-frontier-'));
  try {
    for (const c of CASES) {
      const source = path.join(REAL, c.dir, c.file);
      if (!existsSync(source)) return t.skip(`${source} not found`);
      const nolaFile = path.join(work, `${c.dir}.nola.safetensors`);
      const expanded = path.join(work, `${c.dir}.expanded.safetensors`);
      const comp = await runNola(['compress', path.join(REAL, c.dir), '-o', nolaFile, '--json']);
      assert.equal(comp.code, 0, comp.stderr);
      const totals = (JSON.parse(comp.stdout) as { totals: { fileFp16Ratio: number; rdGaussianRatio: number; rdBoundRatio: number } }).totals;
      const exp = await runNola(['expand', nolaFile, '-o', expanded]);
      assert.equal(exp.code, 0, exp.stderr);
      // The bound on what users load, measured by the independent reader.
      const rows = referenceCheck(nolaFile, source, expanded);
      assert.ok(rows.every((r) => r.expanded_vs_source <= 0.1), `${c.dir}: ${Math.max(...rows.map((r) => r.expanded_vs_source))}`);
      // Per-layer SVD rank + random rotation + best 3-8-bit group-64 absmax (numpy, written from the issue).
      const f = spawnSync('python3', [FRONTIER, source, '0.1'], { encoding: 'utf8' });
      assert.equal(f.status, 0, f.stderr);
      const frontier = (JSON.parse(f.stdout) as { ratio_vs_fp16: number }).ratio_vs_fp16;
      // The issue asks for 0.9x the frontier's ratio; nola is held to beating it (whole file, header and document included).
      assert.ok(totals.fileFp16Ratio > frontier, `${c.dir}: nola ${totals.fileFp16Ratio.toFixed(3)}x vs frontier ${frontier.toFixed(3)}x`);
      // The report's rate-distortion estimates against an independent numpy implementation (scripts/reference/rd_estimate.py,
      // at E = 0.1 where nola's layers sit at 0.09999: the 1e-4 difference moves the ratios by well under 0.2%).
      const rd = spawnSync('python3', [path.join(REPO, 'scripts', 'reference', 'rd_estimate.py'), source, '0.1'], { encoding: 'utf8' });
      assert.equal(rd.status, 0, rd.stderr);
      const ref = JSON.parse(rd.stdout) as { gaussian_ratio: number; bound_ratio: number };
      assert.ok(Math.abs(totals.rdGaussianRatio / ref.gaussian_ratio - 1) < 2e-3, `${c.dir}: Gaussian estimate ${totals.rdGaussianRatio} vs numpy ${ref.gaussian_ratio}`);
      assert.ok(Math.abs(totals.rdBoundRatio / ref.bound_ratio - 1) < 2e-3, `${c.dir}: rank-1 bound ${totals.rdBoundRatio} vs numpy ${ref.bound_ratio}`);
      assert.ok(totals.fileFp16Ratio < totals.rdBoundRatio, `${c.dir}: a file below the bound would mean the bound is wrong`);
      // inspect has only the file: it estimates each source spectrum from the reconstruction (sourceSpectrumEstimate).
      // Compress's figures, from the source itself, are the second method it is held to.
      const ins = await runNola(['inspect', nolaFile, '--json']);
      assert.equal(ins.code, 0, ins.stderr);
      const it = (JSON.parse(ins.stdout) as { totals: typeof totals }).totals;
      assert.ok(Math.abs(it.fileFp16Ratio / totals.fileFp16Ratio - 1) < 1e-12, `${c.dir}: inspect's file ratio ${it.fileFp16Ratio} vs compress's ${totals.fileFp16Ratio}`);
      for (const k of ['rdGaussianRatio', 'rdBoundRatio'] as const) {
        const rel = it[k] / totals[k] - 1;
        assert.ok(rel > INSPECT_RD_RANGE[0] && rel < INSPECT_RD_RANGE[1], `${c.dir}: inspect's ${k} ${it[k]} vs compress's ${totals[k]}`);
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
