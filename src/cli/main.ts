/**
 * The command line: the only writer to stdout and the one place that turns errors into exit
 * codes (see EXIT in src/errors.ts and the README's table). Each command's modules are loaded
 * only when that command runs, so start-up stays small (expand loads no fitter, sweep or backend).
 */
import { Command, CommanderError, Option } from 'commander';
import type { Logger } from 'pino';
import { readFileSync } from 'node:fs';
import { createLogger, type LogFormat } from './logger.js';
import { breakBar } from './stderr.js';
import { setCallingThreadLane } from '../pipeline/worker-pool.js';
import { progressMode, type ProgressMode } from './progress.js';
import { EXIT, InterruptedError, NolaError, UsageError } from '../errors.js';
import { placedOutputCount, removeLiveTempFiles } from '../io/atomic.js';
import { constants as osConstants } from 'node:os';
import { escapeControl } from './escape.js';
import { DEFAULT_LIMITS, setLimits } from '../pipeline/limits.js';

/** A --max-* value (an integer, 8e9 allowed): undefined keeps the default. */
function limitOption(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

export interface Ctx {
  log: Logger;
  out: (text: string) => void;
  /** How progress is shown: a bar on a terminal, periodic lines elsewhere, nothing with --quiet. */
  progress: ProgressMode;
}

/** The version in package.json (dist/src/cli/main.js sits three levels below it). */
function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

export async function main(argv: string[]): Promise<void> {
  // The CLI owns its process: its main thread is one of the fit and expand lanes (worker-pool.ts).
  setCallingThreadLane(true);
  let debug = argv.includes('--debug');
  // SIGTERM (kill, timeouts, systemd) and SIGHUP (a closed terminal) end a run as Ctrl-C does: temp
  // files and folders this run created are removed, and the exit status is 128 + the signal number.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      removeLiveTempFiles();
      breakBar();
      // A library run keeps the files it finished (a rerun skips them); only the one in progress is lost.
      const placed = placedOutputCount();
      const kept = placed === 0 ? 'no output was written' : `the output in progress was removed; ${placed} finished output${placed === 1 ? ' was' : 's were'} kept`;
      process.stderr.write(`nola: ${signal === 'SIGINT' ? 'interrupted' : `stopped by ${signal}`}; ${kept}\n`);
      process.exit(signal === 'SIGINT' ? EXIT.interrupted : 128 + osConstants.signals[signal]);
    });
  }
  const program = buildProgram((ctxDebug) => { debug = ctxDebug; });
  try {
    await program.parseAsync(argv);
  } catch (e) {
    process.exitCode = reportError(e, debug);
  }
}

function reportError(e: unknown, debug: boolean): number {
  if (e instanceof CommanderError) {
    // commander already printed its message; help/version exit 0.
    return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
  if (e instanceof InterruptedError) return EXIT.interrupted;
  if (e instanceof NolaError) {
    process.stderr.write(`nola: error: ${oneLine(e.message)}\n`);
    if (debug && e.stack) process.stderr.write(`${e.stack}\n`);
    return e.exitCode;
  }
  const err = e as Error;
  process.stderr.write(`nola: internal error: ${oneLine(err?.message ?? String(e))} (run with --debug for details; please report it)\n`);
  if (debug && err?.stack) process.stderr.write(`${err.stack}\n`);
  return EXIT.internal;
}

function oneLine(s: string): string {
  return escapeControl(s.replace(/\s*\n\s*/g, ' ').replace(/\t/g, ' '));
}

export function buildProgram(setDebug: (d: boolean) => void): Command {
  const program = new Command();
  program
    .name('nola')
    .description('Compress LoRA checkpoints into NOLA form (seeds + coefficients of random bases) and back.')
    .version(packageVersion(), '-V, --version', 'print the version')
    .addOption(new Option('--log-level <level>', 'log level on stderr (info: what was detected and chosen, timings; debug: every layer)').choices(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('warn'))
    .addOption(new Option('--log-format <format>', 'human: one line per message; json: pino JSON lines').choices(['human', 'json']).default('human'))
    .option('-q, --quiet', 'errors only: no warnings, no progress')
    .option('-v, --verbose', 'more on stderr: -v = --log-level info, -vv = debug', (_v: string, n: number) => n + 1, 0)
    .option('--debug', 'print stack traces on errors')
    .option('--max-output-bytes <N>', `most bytes expand/verify may produce from one file (default ${DEFAULT_LIMITS.maxOutputBytes})`)
    .option('--max-factor-values <N>', `most values in one LoRA factor (default ${DEFAULT_LIMITS.maxFactorValues}; never more than memory allows)`)
    .option('--max-basis-work <N>', `most multiply-adds (sum of k*n) the uniform basis of one file may take (default ${DEFAULT_LIMITS.maxBasisWork})`)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `nola: ${s}` : s) })
    .showHelpAfterError('(run nola --help for usage)');

  const ctx = (): Ctx => {
    const opts = program.opts<{ logLevel: string; logFormat: LogFormat; debug?: boolean; quiet?: boolean; verbose: number; maxOutputBytes?: string; maxFactorValues?: string; maxBasisWork?: string }>();
    setDebug(opts.debug === true);
    setLimits({
      maxOutputBytes: limitOption('--max-output-bytes', opts.maxOutputBytes),
      maxFactorValues: limitOption('--max-factor-values', opts.maxFactorValues),
      maxBasisWork: limitOption('--max-basis-work', opts.maxBasisWork),
    });
    const verbose = opts.verbose >= 2 ? 'debug' : opts.verbose === 1 ? 'info' : undefined;
    // --log-level given explicitly wins over -q/-v; -q wins over -v.
    const explicit = program.getOptionValueSource('logLevel') === 'cli';
    const level = explicit ? opts.logLevel : opts.quiet ? 'error' : verbose ?? opts.logLevel;
    return {
      log: createLogger(level, opts.logFormat),
      out: (t) => process.stdout.write(escapeControl(t.endsWith('\n') ? t : `${t}\n`)),
      progress: progressMode(opts.quiet === true),
    };
  };

  program
    .command('compress')
    .description('fit NOLA coefficients to every layer of a LoRA and write a .nola file (for storage and transfer: expand it before use)')
    .argument('[lora...]', 'LoRA .safetensors file, or a folder holding one (PEFT adapter folder); several, a library folder or a pattern: see --out-dir')
    .option('-o, --output <file>', 'output NOLA file, or a folder (DIR/) to write <name>.nola in (default: <input without .safetensors>.nola beside the input)')
    .option('--force', 'overwrite an existing output')
    .option('--format <family>', 'override format detection: peft, kohya or diffusers')
    .option('--preset <name>', 'faithful (default: per-layer budget) or paper (uniform basis, 1024 coefficients, source rank, f32)')
    .option('--max-error <E>', 'every layer within relative error E, 0 < E < 1, with the fewest bytes (default 0.1)')
    .option('--ratio <X>', 'make the NOLA file (less the tensors kept verbatim) about X times smaller than the LoRA factors stored as fp16, least energy-weighted error')
    .option('--rank <N|keep|auto>', 'rank of the NOLA layers (default: auto with a budget, keep otherwise)')
    .option('--coeffs <K>', 'coefficients per factor (fixed mode; capped at the factor size)')
    .option('--coeffs-a <K>', 'coefficients for factor A')
    .option('--coeffs-b <L>', 'coefficients for factor B')
    .option('--basis <family>', 'uniform (the paper) or orthogonal (seeded fast DCT basis)')
    .option('--quant <mode>', 'coefficient storage: auto (= rice: entropy-coded levels), fixed (int3..int8/f16 chosen per factor), or one of f32, f16, bf16, int8, int6, int5, int4, int3, int2')
    .option('--format-version <V>', 'newest NOLA file version to write: 3 (default: each coefficient block rice or rANS, whichever is shorter; the file says 2 where none is rANS), 2 (rice blocks only, for readers of version 2) or 1 (the nola 0.1 layout, one fixed-size precision; the default with --preset paper)')
    .option('--seed <S>', 'base seed; per-layer seeds derive from it and the layer name', '0')
    .option('--iters <N>', 'maximum gradient-refinement iterations per layer', '30')
    .option('--als-rounds <N>', 'maximum alternating least-squares rounds per layer', '5')
    .option('--device <device>', 'cpu (default), gpu (needs @tensorflow/tfjs-node-gpu) or auto (gpu when it starts, else cpu)', 'cpu')
    .option('--threads <N>', 'threads fitting layers: this one and N - 1 workers (default: all cores); the output does not depend on it')
    .option('--report <file>', 'write the full report as JSON to this file')
    .option('--json', 'print the report as JSON on stdout instead of the summary')
    .option('--sweep', 'print the size/error trade-off at several settings (writes no NOLA file)')
    .option('--svg <file>', 'with --sweep: also draw the trade-off as an SVG picture')
    .option('--no-paper', 'with --sweep: skip the (slow) paper-preset point')
    .addHelpText('after', LIBRARY_HELP)
    .action(async (loras: string[], opts: Record<string, string | boolean | undefined>) => {
      const batch = await import('./batch.js');
      if (await batch.wantsBatch('compress', loras, opts)) return batch.runBatchCommand(ctx(), 'compress', loras, opts);
      return (await import('./compress.js')).runCompress(ctx(), loras[0], opts);
    });
  addLibraryOptions(program.commands[program.commands.length - 1]);

  program
    .command('expand')
    .description('materialize an ordinary LoRA from a NOLA file, in the source format (or --to another)')
    .argument('[nola...]', 'a NOLA file (.nola or .nola.safetensors), or a folder holding one; several, a folder or a pattern: see --out-dir')
    .option('-o, --output <file>', 'output LoRA file, or a folder (DIR/) (default: beside the input, <name>.expanded/ for PEFT, holding adapter_model.safetensors and adapter_config.json; <name>.expanded.safetensors otherwise)')
    .option('--to <family>', 'write another family: peft, kohya or diffusers (when the mapping is unambiguous)')
    .option('--threads <N>', 'threads synthesizing layers: this one and N - 1 workers (default: all cores; small files use one); the output does not depend on it')
    .option('--force', 'overwrite existing outputs')
    .option('--json', 'print a JSON summary')
    .addHelpText('after', LIBRARY_HELP)
    .action(async (nolas: string[], opts: Record<string, string | boolean | undefined>) => {
      const batch = await import('./batch.js');
      if (await batch.wantsBatch('expand', nolas, opts)) return batch.runBatchCommand(ctx(), 'expand', nolas, opts);
      return (await import('./expand.js')).runExpand(ctx(), nolas[0], opts);
    });
  addLibraryOptions(program.commands[program.commands.length - 1]);

  program
    .command('summary')
    .description('merge the --summary files of several runs (shards, reruns) and print their totals')
    .argument('<summary...>', 'summary .jsonl files, or folders holding them')
    .option('-o, --output <file>', 'also write the merged records (JSON Lines) to this file')
    .option('--force', 'overwrite an existing --output')
    .option('--json', 'print the totals and the merged records as JSON')
    .action(async (files: string[], opts: Record<string, string | boolean | undefined>) => (await import('./summary.js')).runSummary(ctx(), files, opts));

  program
    .command('inspect')
    .description('size and structure statistics of a LoRA or NOLA file; of several (files, folders, patterns), a line each and their totals')
    .argument('<inputs...>', 'LoRA or NOLA files, PEFT adapter folders, folders to search, or patterns')
    .option('--format <family>', 'override format detection for LoRA files')
    .option('--layers', 'list every layer (one file)')
    .option('--json', 'print JSON')
    .action(async (inputs: string[], opts: Record<string, string | boolean | undefined>) => (await import('./inspect.js')).runInspect(ctx(), inputs, opts));

  program
    .command('verify')
    .description('re-expand a NOLA file and check its errors and checksums against what it claims; or check an expanded LoRA against its source')
    .argument('<nola>', 'a NOLA file (or a folder holding one), or an expanded LoRA')
    .argument('[source]', 'the source LoRA, to recompute errors and check its checksum')
    .option('--tolerance <t>', 'allowed difference between claimed and measured errors', '1e-4')
    .option('--max-error <E>', 'for an expanded LoRA: the bound every layer must meet (default 0.1)')
    .option('--layers', 'print every layer\'s measured error')
    .option('--json', 'print JSON')
    .action(async (nola: string, source: string | undefined, opts: Record<string, string | boolean | undefined>) => (await import('./verify.js')).runVerify(ctx(), nola, source, opts));

  program
    .command('compare')
    .description('per-layer relative error between two LoRAs of the same layout: ‖ΔW_A − ΔW_B‖ / ‖ΔW_A‖')
    .argument('<a>', 'the reference LoRA (file or PEFT folder)')
    .argument('<b>', 'the LoRA compared with it (same layer names; any ranks)')
    .option('--format <family>', 'override format detection: peft, kohya or diffusers')
    .option('--json', 'print JSON')
    .action(async (a: string, b: string, opts: Record<string, string | boolean | undefined>) => (await import('./compare.js')).runCompare(ctx(), a, b, opts));

  return program;
}

/** The flags of a run over many inputs (docs/BATCH.md), shared by compress and expand. */
function addLibraryOptions(cmd: Command): void {
  cmd
    .option('--out-dir <dir>', 'several inputs: write the outputs under DIR, mirroring the inputs\' folders')
    .option('--beside', 'several inputs: write each output beside its input (the single-file default)')
    .option('--from-list <file>', 'also take the inputs listed in FILE, one path a line (- reads stdin)')
    .option('--root <dir>', 'the folder relative paths (the --out-dir layout and the --shard key) start from')
    .option('--shard <I/N|auto>', 'process only shard I of N (0-based) by the SHA-256 of each input\'s relative path; auto: I from JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID')
    .option('--shards <N>', 'with --shard auto: the number of shards')
    .option('--summary <file>', 'append one JSON line per file (status, sizes, errors, reason) to FILE');
}

const LIBRARY_HELP = `
Many inputs (files, folders searched recursively, patterns, --from-list) run in one process, one file
at a time: each output mirrors its input's path under --out-dir; an output already made from the same
source with the same settings is skipped (--force redoes it); a failing file is reported and the run
goes on, exiting 8 if any failed. See docs/BATCH.md.
`;
