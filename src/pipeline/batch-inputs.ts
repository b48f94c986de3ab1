/**
 * What a run over many inputs works on: files, folders (walked recursively; a PEFT adapter folder is
 * one input), glob patterns and list lines, each turned into an item with the path relative to its
 * root. That relative path is mirrored under --out-dir and is the stable key --shard hashes, so N
 * machines given the same inputs split them the same way without talking to each other.
 */
import { createHash } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { resolveLoraPath } from './source.js';
import { UsageError } from '../errors.js';

export type BatchCommand = 'compress' | 'expand';

export interface BatchItem {
  /** What to open, as the user's argument, walk or list named it (a file, or a PEFT adapter folder). */
  input: string;
  /** The file itself (a PEFT folder's adapter_model.safetensors), as the input names it (relative if it is). */
  file: string;
  /** `file` relative to the item's root, with `/` separators: mirrored under --out-dir, hashed by --shard. */
  rel: string;
  /** `input` relative to the same root (a PEFT folder: the folder; otherwise equal to `rel`). */
  inputRel: string;
}

export interface DiscoverOptions {
  command: BatchCommand;
  /** Every relative path is taken against this folder (default: each argument's own, see rootOf). */
  root?: string;
  /** Folders never walked into (the output folder, when it lies inside an input folder). */
  exclude?: string[];
}

/** True when `s` is a pattern rather than a path: it has *, ? or [. */
export function hasGlobMagic(s: string): boolean {
  return /[*?[]/.test(s);
}

/**
 * Every input, in order of the arguments (a folder's or a pattern's entries sorted), each file once.
 * A path that does not exist stays an item: it fails when processed, as an unreadable file does.
 */
export async function discoverInputs(args: readonly string[], o: DiscoverOptions): Promise<BatchItem[]> {
  const items: BatchItem[] = [];
  const seen = new Set<string>();
  const exclude = new Set((o.exclude ?? []).map((d) => path.resolve(d)));
  const add = (input: string, file: string, base: string): void => {
    const abs = path.resolve(file);
    if (seen.has(abs)) return;
    seen.add(abs);
    const rel = relativeTo(o.root ?? base, abs);
    items.push({ input, file, rel, inputRel: input === file ? rel : relativeTo(o.root ?? base, path.resolve(input)) });
  };
  for (const arg of args) {
    const st = await stat(arg).catch(() => null);
    if (st === null && hasGlobMagic(arg)) {
      const { base, matches } = await expandGlob(arg);
      // A pattern's files count when they are inputs of this command (lib/* does not take README.md).
      for (const m of matches) {
        const isDir = (await stat(m).catch(() => null))?.isDirectory() === true;
        if (isDir || isInputFile(path.basename(m), o.command)) await addPath(m, base, o, exclude, add);
      }
    } else if (st === null) {
      add(arg, arg, path.dirname(arg));
    } else {
      await addPath(arg, st.isDirectory() && !(await isAdapterFolder(arg, o.command)) ? arg : path.dirname(arg), o, exclude, add);
    }
  }
  return items;
}

/** A file, an adapter folder, or a folder to walk; `base` is the folder its relative path starts from. */
async function addPath(p: string, base: string, o: DiscoverOptions, exclude: Set<string>, add: (input: string, file: string, base: string) => void): Promise<void> {
  const st = await stat(p).catch(() => null);
  if (st?.isDirectory() !== true) {
    add(p, p, base);
    return;
  }
  if (await isAdapterFolder(p, o.command)) {
    await addAdapterFolder(p, base, add);
    return;
  }
  await walk(p, base, o, exclude, add, new Set());
}

async function walk(dir: string, base: string, o: DiscoverOptions, exclude: Set<string>, add: (input: string, file: string, base: string) => void, visiting: Set<string>): Promise<void> {
  const real = path.resolve(dir);
  if (exclude.has(real) || visiting.has(real)) return;
  visiting.add(real);
  const entries = (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();
  for (const name of entries) {
    const p = path.join(dir, name);
    const st = await stat(p).catch(() => null);
    if (st === null) continue;
    if (st.isDirectory()) {
      if (await isAdapterFolder(p, o.command)) await addAdapterFolder(p, base, add);
      else await walk(p, base, o, exclude, add, visiting);
    } else if (isInputFile(name, o.command)) {
      add(p, p, base);
    }
  }
  visiting.delete(real);
}

/**
 * A PEFT adapter folder is one input (compress reads its adapter_config.json with it); any other
 * LoRA file in it is an input of its own, never dropped without a word.
 */
async function addAdapterFolder(dir: string, base: string, add: (input: string, file: string, base: string) => void): Promise<void> {
  const chosen = await resolveLoraPath(dir).catch(() => undefined);
  // A folder compress cannot choose a file in stays one input: it fails with compress's own reason.
  add(dir, chosen ?? path.join(dir, 'adapter_model.safetensors'), base);
  if (chosen === undefined) return;
  for (const name of (await readdir(dir)).sort()) {
    if (!name.startsWith('.') && isInputFile(name, 'compress') && path.join(dir, name) !== chosen) add(path.join(dir, name), path.join(dir, name), base);
  }
}

/** compress: a folder holding adapter_config.json and a LoRA file. expand has no such folders. */
async function isAdapterFolder(dir: string, command: BatchCommand): Promise<boolean> {
  if (command !== 'compress') return false;
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.includes('adapter_config.json') && names.some((n) => isInputFile(n, 'compress'));
}

/** compress takes LoRA .safetensors files (not NOLA files); expand takes NOLA files. */
export function isInputFile(name: string, command: BatchCommand): boolean {
  const nola = name.endsWith('.nola.safetensors') || name.endsWith('.nola');
  return command === 'expand' ? nola : name.endsWith('.safetensors') && !nola;
}

function relativeTo(root: string, abs: string): string {
  const rel = path.relative(path.resolve(root), abs);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new UsageError(`${abs} is outside --root ${root}`);
  }
  return rel.split(path.sep).join('/');
}

/**
 * Matches of a pattern: `*` and `?` within one path segment, `[…]` a character class, `**` any
 * number of folders. Hidden names match only a segment that starts with a dot. `base` is the
 * pattern's leading folders without magic: the root of the matches' relative paths.
 */
export async function expandGlob(pattern: string): Promise<{ base: string; matches: string[] }> {
  const parts = pattern.split(/[\\/]/);
  let fixed = 0;
  while (fixed < parts.length - 1 && !hasGlobMagic(parts[fixed])) fixed++;
  const baseParts = parts.slice(0, fixed);
  const base = baseParts.length === 0 ? '.' : baseParts.join('/') === '' ? '/' : baseParts.join('/');
  const rest = parts.slice(fixed);
  const matches: string[] = [];
  const visit = async (dir: string, i: number): Promise<void> => {
    if (i === rest.length) {
      matches.push(dir);
      return;
    }
    const seg = rest[i];
    if (seg === '**') {
      await visit(dir, i + 1);
      for (const name of await listDirs(dir)) await visit(path.join(dir, name), i);
      return;
    }
    if (!hasGlobMagic(seg)) {
      const p = path.join(dir, seg);
      if (await stat(p).then(() => true, () => false)) await visit(p, i + 1);
      return;
    }
    const re = segmentRegex(seg);
    const names = (await readdir(dir).catch(() => [] as string[])).sort();
    for (const name of names) {
      if (name.startsWith('.') && !seg.startsWith('.')) continue;
      if (re.test(name)) await visit(path.join(dir, name), i + 1);
    }
  };
  await visit(base, 0);
  return { base, matches: [...new Set(matches)] };
}

async function listDirs(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
}

function segmentRegex(seg: string): RegExp {
  let re = '';
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i];
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = seg.indexOf(']', i + 2);
      if (end < 0) { re += '\\['; continue; }
      let cls = seg.slice(i + 1, end).replace(/\\/g, '\\\\');
      if (cls.startsWith('!')) cls = `^${cls.slice(1)}`;
      re += `[${cls}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

/** Paths of a --from-list file: one a line, blank lines and lines starting with # ignored. */
export function parseList(text: string): string[] {
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}

/** The shard (0..count-1) an item's relative path falls in: the SHA-256 of the path, first 48 bits, mod count. */
export function shardOf(rel: string, count: number): number {
  const h = createHash('sha256').update(rel, 'utf8').digest('hex');
  return parseInt(h.slice(0, 12), 16) % count;
}

/** `I/N` (0 ≤ I < N), or `auto` with the index from JOB_COMPLETION_INDEX (Kubernetes) or SLURM_ARRAY_TASK_ID. */
export function parseShard(spec: string, shards: string | undefined, env: NodeJS.ProcessEnv): { index: number; count: number } {
  const whole = (flag: string, v: string): number => {
    if (!/^[0-9]+$/.test(v.trim())) throw new UsageError(`${flag} expects a whole number, got "${v}"`);
    return Number(v);
  };
  let index: number, count: number;
  if (spec === 'auto') {
    if (shards === undefined) throw new UsageError('--shard auto needs --shards N (the number of shards: completions of the Indexed Job, tasks of the array)');
    count = whole('--shards', shards);
    const from = env.JOB_COMPLETION_INDEX !== undefined ? 'JOB_COMPLETION_INDEX' : env.SLURM_ARRAY_TASK_ID !== undefined ? 'SLURM_ARRAY_TASK_ID' : undefined;
    if (from === undefined) throw new UsageError('--shard auto: neither JOB_COMPLETION_INDEX (Kubernetes Indexed Job) nor SLURM_ARRAY_TASK_ID (Slurm array) is set; give --shard I/N');
    index = whole(from, env[from]!);
  } else {
    const m = /^\s*([0-9]+)\s*\/\s*([0-9]+)\s*$/.exec(spec);
    if (!m) throw new UsageError(`--shard expects I/N (e.g. 0/4) or auto, got "${spec}"`);
    if (shards !== undefined) throw new UsageError('--shards goes with --shard auto; --shard I/N already says N');
    index = Number(m[1]);
    count = Number(m[2]);
  }
  if (count < 1) throw new UsageError(`the number of shards must be at least 1, got ${count}`);
  if (index >= count) throw new UsageError(`shard index ${index} is not below the number of shards ${count} (shards are numbered 0..${count - 1})`);
  return { index, count };
}

/** Two inputs that would write the same output under --out-dir: refused before any work, naming both. */
export function assertDistinctRelatives(items: readonly BatchItem[]): void {
  const byRel = new Map<string, BatchItem>();
  for (const it of items) {
    const prev = byRel.get(it.rel);
    if (prev !== undefined) {
      throw new UsageError(`${prev.input} and ${it.input} would both go to ${it.rel} under --out-dir; give --root DIR (a folder above both) so their folders are kept`);
    }
    byRel.set(it.rel, it);
  }
}
