/**
 * Longer fuzzing than CI runs, of the safetensors reader (default), the NOLA reader or the sources:
 *   node dist/scripts/fuzz.js [--target safetensors|nola|sources] --cases 100000 --seed 7 [--case N ...] [--save DIR]
 * (npm run fuzz -- --target nola --cases 20000). The nola target compresses generated fixtures into seed
 * files first, then runs inspect, verify and expand on each mutated file (test/pipeline/nola-fuzz-target.ts).
 * The sources target generates adapters with hostile names, configs and metadata, compresses and loads
 * them with every `to` (test/pipeline/source-fuzz-target.ts) and, where python3 has numpy, compares
 * python/nola_reader's loads of every file with nola's; --save keeps a failing case's folder.
 * Prints a one-line summary on stdout; each failure (case number, mutations, error) on stderr, and with
 * --save the failing inputs as files. Exit status 1 when anything failed.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { caseRandom, formatSummary, runFuzz } from '../test/io/fuzz-core.js';
import { makeSafetensorsCheck, safetensorsSeeds } from '../test/io/safetensors-fuzz-target.js';
import { NOLA_MUTATORS, makeNolaCheck, nolaSeeds } from '../test/pipeline/nola-fuzz-target.js';
import { digestDifferences, makeSourceCase, pythonLoads, runSourceCase, type SourceOutcome } from '../test/pipeline/source-fuzz-target.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The sources target: its own loop (cases are generated, not mutated bytes); Python compared in batches. */
async function fuzzSources(dir: string, cases: number, seed: number, only: number[] | undefined, save: string | undefined): Promise<number> {
  const started = Date.now();
  const numpy = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;
  let ok = 0, refused = 0, compared = 0;
  const failures: string[] = [];
  const fail = (i: number, caseDir: string, what: string): void => {
    failures.push(`case ${i}: ${what}`);
    if (save) cpSync(caseDir, path.join(save, `seed${seed}-case${i}`), { recursive: true });
  };
  let batch: { i: number; caseDir: string; o: SourceOutcome }[] = [];
  const comparePython = (): void => {
    if (numpy && batch.length) {
      const py = pythonLoads(batch.map((b) => b.o.nola!), REPO);
      for (const b of batch) {
        const diff = digestDifferences(b.o.loads!, py[b.o.nola!]);
        if (diff.length) fail(b.i, b.caseDir, `python reader differs: ${diff.join('; ')}`);
        compared++;
      }
    }
    if (!save) for (const b of batch) rmSync(b.caseDir, { recursive: true, force: true });
    batch = [];
  };
  for (const i of only ?? Array.from({ length: cases }, (_, k) => k)) {
    const caseDir = path.join(dir, `case-${i}`);
    try {
      const c = await makeSourceCase(caseRandom(seed, i), caseDir);
      if (c === null) continue;
      const o = await runSourceCase(c, path.join(caseDir, 'out.nola'));
      if (o.result === 'refused') { refused++; rmSync(caseDir, { recursive: true, force: true }); continue; }
      ok++;
      batch.push({ i, caseDir, o });
    } catch (e) {
      fail(i, caseDir, e instanceof Error ? (e.stack ?? e.message) : String(e));
    }
    if (batch.length >= 200) comparePython();
  }
  comparePython();
  for (const f of failures) process.stderr.write(`${f}\n`);
  process.stdout.write(`fuzz sources: ${ok + refused} cases, seed ${seed}, ${ok} compressed, ${refused} refused cleanly, ` +
    `${numpy ? `${compared} compared with the Python reader` : 'Python reader not compared (no numpy)'}, ${failures.length} failures, ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  return failures.length ? 1 : 0;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string', default: 'safetensors' },
      cases: { type: 'string', default: '10000' },
      seed: { type: 'string', default: '1' },
      case: { type: 'string', multiple: true },
      save: { type: 'string' },
    },
  });
  const cases = Number(values.cases);
  const seed = Number(values.seed);
  const target = values.target;
  if (!Number.isSafeInteger(cases) || cases < 0 || !Number.isSafeInteger(seed) || (target !== 'safetensors' && target !== 'nola' && target !== 'sources')) {
    process.stderr.write('usage: fuzz.js [--target safetensors|nola|sources] --cases N --seed S [--case I ...] [--save DIR]\n');
    return 2;
  }
  const only = values.case?.map(Number);
  const dir = mkdtempSync(path.join(tmpdir(), 'nola-fuzz-'));
  try {
    if (target === 'sources') return await fuzzSources(dir, cases, seed, only, values.save);
    const summary = target === 'nola'
      ? await runFuzz({
        seeds: (await nolaSeeds(dir)).map((s) => s.bytes), cases, seed, only, maxFailures: 100,
        mutators: NOLA_MUTATORS, check: makeNolaCheck(dir),
      })
      : await runFuzz({
        seeds: safetensorsSeeds(), cases, seed, only, maxFailures: 100,
        check: makeSafetensorsCheck(path.join(dir, 'case.safetensors')),
      });
    for (const f of summary.failures) {
      process.stderr.write(`case ${f.caseIndex} [${f.mutations.join(',')}]: ${f.error}\n`);
      if (values.save) {
        mkdirSync(values.save, { recursive: true });
        writeFileSync(path.join(values.save, `seed${seed}-case${f.caseIndex}.${target === 'nola' ? 'nola.' : ''}safetensors`), f.bytes);
      }
    }
    process.stdout.write(`${formatSummary(`${target}-reader`, seed, summary)}\n`);
    return summary.failures.length ? 1 : 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
