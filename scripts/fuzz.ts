/**
 * Longer fuzzing of the safetensors reader than CI runs:
 *   node dist/scripts/fuzz.js --cases 100000 --seed 7 [--case N ...] [--save DIR]
 * Prints a one-line summary on stdout; each failure (case number, mutations, error) on stderr, and with
 * --save the failing inputs as files. Exit status 1 when anything failed.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { formatSummary, runFuzz } from '../test/io/fuzz-core.js';
import { makeSafetensorsCheck, safetensorsSeeds } from '../test/io/safetensors-fuzz-target.js';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      cases: { type: 'string', default: '10000' },
      seed: { type: 'string', default: '1' },
      case: { type: 'string', multiple: true },
      save: { type: 'string' },
    },
  });
  const cases = Number(values.cases);
  const seed = Number(values.seed);
  if (!Number.isSafeInteger(cases) || cases < 0 || !Number.isSafeInteger(seed)) {
    process.stderr.write('usage: fuzz.js --cases N --seed S [--case I ...] [--save DIR]\n');
    return 2;
  }
  const only = values.case?.map(Number);
  const dir = mkdtempSync(path.join(tmpdir(), 'nola-fuzz-'));
  try {
    const summary = await runFuzz({
      seeds: safetensorsSeeds(), cases, seed, only, maxFailures: 100,
      check: makeSafetensorsCheck(path.join(dir, 'case.safetensors')),
    });
    for (const f of summary.failures) {
      process.stderr.write(`case ${f.caseIndex} [${f.mutations.join(',')}]: ${f.error}\n`);
      if (values.save) {
        mkdirSync(values.save, { recursive: true });
        writeFileSync(path.join(values.save, `seed${seed}-case${f.caseIndex}.safetensors`), f.bytes);
      }
    }
    process.stdout.write(`${formatSummary('safetensors-reader', seed, summary)}\n`);
    return summary.failures.length ? 1 : 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
