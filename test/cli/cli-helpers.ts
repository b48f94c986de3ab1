/**
 * Running the built CLI as a user would (node bin/nola.js …) and small helpers the CLI tests share.
 * Each spawn costs ~0.3 s of node start-up, so tests run independent invocations a few at a time.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { findRepoRoot } from '../io/helpers.js';

export const REPO = findRepoRoot();
export const NOLA_BIN = path.join(REPO, 'bin', 'nola.js');

export interface CliResult {
  args: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Extra node flags before the script (e.g. --import a preload). */
  nodeArgs?: string[];
}

export function runNola(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return startNola(args, opts).done;
}

/** Starts the CLI and returns the child (to signal it) and its result once it has exited. */
export function startNola(args: string[], opts: CliOptions = {}): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), NOLA_BIN, ...args], {
    cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const done = new Promise<CliResult>((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ args, code, signal, stdout, stderr }));
  });
  return { child, done };
}

/** Polls `pred` every 10 ms until it returns a value (not undefined/false) or `ms` pass. */
export async function waitFor<T>(pred: () => T | undefined | false, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = pred();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Runs the thunks with at most `width` in flight, results in input order. */
export async function inBatches<T>(thunks: Array<() => Promise<T>>, width = 4): Promise<T[]> {
  const out: T[] = new Array(thunks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < thunks.length) {
      const i = next++;
      out[i] = await thunks[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, thunks.length) }, worker));
  return out;
}

/** Why python3 cannot run here, or null when it can. */
export function python3Missing(): string | null {
  const r = spawnSync('python3', ['--version'], { encoding: 'utf8' });
  if (r.error) return `python3 is not available (${r.error.message}); the bad-input generator needs it`;
  if (r.status !== 0) return `python3 --version failed (${r.status})`;
  return null;
}

/** A folder's entries, sorted, including hidden ones (temp files are hidden). */
export function listing(dir: string): string[] {
  return readdirSync(dir).sort();
}

/** The checks every refused input must pass: the exit code, one `nola: error:` line naming the file, no stack. */
export function assertCleanRefusal(r: CliResult, expectedCode: number, file: string): string[] {
  const problems: string[] = [];
  const where = `nola ${r.args.join(' ')}`;
  if (r.signal !== null) problems.push(`${where}: killed by ${r.signal}`);
  if (r.code !== expectedCode) problems.push(`${where}: exit ${r.code}, expected ${expectedCode}; stderr: ${r.stderr.trim()}`);
  const lines = r.stderr.split('\n').filter((l, i, all) => l !== '' || i < all.length - 1);
  if (lines.length !== 1) problems.push(`${where}: stderr has ${lines.length} lines, expected 1:\n${r.stderr}`);
  if (!r.stderr.startsWith('nola: error: ')) problems.push(`${where}: stderr does not start with 'nola: error: ': ${r.stderr.trim()}`);
  if (!r.stderr.includes(file)) problems.push(`${where}: stderr does not name ${file}: ${r.stderr.trim()}`);
  if (/^\s+at /m.test(r.stderr)) problems.push(`${where}: stack trace on stderr`);
  if (r.stdout !== '') problems.push(`${where}: unexpected stdout: ${r.stdout.trim()}`);
  return problems;
}
