/**
 * Longer fuzzing than CI runs, of the safetensors reader (default) or the NOLA reader:
 *   node dist/scripts/fuzz.js [--target safetensors|nola] --cases 100000 --seed 7 [--case N ...] [--save DIR]
 * (npm run fuzz -- --target nola --cases 20000). The nola target compresses generated fixtures into seed
 * files first, then runs inspect, verify and expand on each mutated file (test/pipeline/nola-fuzz-target.ts).
 * Prints a one-line summary on stdout; each failure (case number, mutations, error) on stderr, and with
 * --save the failing inputs as files. Exit status 1 when anything failed.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { formatSummary, runFuzz } from '../test/io/fuzz-core.js';
import { makeSafetensorsCheck, safetensorsSeeds } from '../test/io/safetensors-fuzz-target.js';
import { NOLA_MUTATORS, makeNolaCheck, nolaSeeds } from '../test/pipeline/nola-fuzz-target.js';

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
  if (!Number.isSafeInteger(cases) || cases < 0 || !Number.isSafeInteger(seed) || (target !== 'safetensors' && target !== 'nola')) {
    process.stderr.write('usage: fuzz.js [--target safetensors|nola] --cases N --seed S [--case I ...] [--save DIR]\n');
    return 2;
  }
  const only = values.case?.map(Number);
  const dir = mkdtempSync(path.join(tmpdir(), 'nola-fuzz-'));
  try {
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
