/**
 * Atomic file output: write a temp file beside the target, fsync it, then move it into place, so a
 * reader never sees a half-written output and a crash or Ctrl-C leaves the old file (or nothing).
 *
 * Temp files live in the target's folder (a rename across filesystems is not atomic) and are named
 * `.<basename>.<pid>.<random>.tmp`. Every live temp file (and every folder this run created for its
 * outputs) is in a registry so the CLI's signal handlers (SIGINT, SIGTERM, SIGHUP) can delete them
 * synchronously before exiting (`removeLiveTempFiles`). A SIGKILL leaves its temp files: the next write
 * of the same target removes those of its name whose process is gone (`removeStaleTempFiles`).
 *
 * Outputs that belong together (expand's LoRA and adapter_config.json, compress's NOLA file and its
 * --report) go through one `OutputBatch`: every file is written to its temp file first, then all are
 * renamed into place, and on any failure everything this run created is removed.
 */
import { randomBytes } from 'node:crypto';
import { rmdirSync, unlinkSync } from 'node:fs';
import { access, constants, link, lstat, mkdir, open, readdir, realpath, rename, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { IoError, NolaError, UsageError } from '../errors.js';

export interface AtomicWriteOptions {
  /** Replace an existing target. Without it an existing target is a UsageError. */
  force?: boolean;
  /** Stage the file in this batch (written and synced, renamed into place by `batch.commit()`). */
  batch?: OutputBatch;
}

const liveTempFiles = new Set<string>();
/** Outputs this process has moved into place (a signal's message says whether any were). */
let placedOutputs = 0;
/** Folders created for this run's outputs, deepest last; removed (when still empty) if the run fails. */
const createdFolders: string[] = [];

/**
 * Deletes every temp file this process is still writing, and the (empty) folders it created for
 * outputs not yet in place. Synchronous: safe to call from a signal handler.
 */
export function removeLiveTempFiles(): void {
  for (const p of liveTempFiles) {
    try {
      unlinkSync(p);
    } catch {
      // Already gone, or the folder vanished: nothing left to clean.
    }
  }
  liveTempFiles.clear();
  for (const d of createdFolders.splice(0).reverse()) {
    try {
      rmdirSync(d);
    } catch {
      // Not empty (something else was put there) or gone: leave it.
    }
  }
}

/** `.<base>.<pid>.<12 hex>(.data)?.tmp`: the names tempPathFor gives, with the pid that wrote them. */
function staleTempPattern(base: string): RegExp {
  return new RegExp(`^\\.${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(\\d+)\\.[0-9a-f]{12}(?:\\.data)?\\.tmp$`);
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes temp files of `target`'s name left in its folder by nola runs that no longer exist (a
 * SIGKILL cannot be caught). Only names of nola's own pattern for this very target, only of dead
 * processes; errors are ignored (the folder may not be listable).
 */
export async function removeStaleTempFiles(target: string): Promise<void> {
  const dir = path.dirname(path.resolve(target));
  const re = staleTempPattern(path.basename(target));
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = re.exec(name);
    if (m === null || processAlive(Number(m[1]))) continue;
    await unlink(path.join(dir, name)).catch(() => undefined);
  }
}

/** The path `p` names once symlinks are resolved; for a missing file, its resolved folder + its name. */
async function resolvedPath(p: string): Promise<string> {
  const abs = path.resolve(p);
  try {
    return await realpath(abs);
  } catch {
    const dir = await realpath(path.dirname(abs)).catch(() => path.dirname(abs));
    return path.join(dir, path.basename(abs));
  }
}

/**
 * No output may be an input, and no two outputs the same file, --force or not: paths are compared
 * after resolving symlinks, and existing files also by device and inode (hard links).
 */
export async function assertDistinctOutputs(outputs: readonly string[], inputs: readonly string[]): Promise<void> {
  const id = async (p: string): Promise<{ path: string; ino: string | null }> => {
    const st = await stat(p).catch(() => null);
    return { path: await resolvedPath(p), ino: st === null ? null : `${st.dev}:${st.ino}` };
  };
  const same = (a: { path: string; ino: string | null }, b: { path: string; ino: string | null }): boolean =>
    a.path === b.path || (a.ino !== null && a.ino === b.ino);
  const ins = await Promise.all(inputs.map(id));
  const outs = await Promise.all(outputs.map(id));
  outs.forEach((o, i) => {
    ins.forEach((x, j) => {
      if (same(o, x)) throw new UsageError(`output ${outputs[i]} is the input ${inputs[j]}; nola never overwrites its input (choose another output)`);
    });
    for (let j = 0; j < i; j++) {
      if (same(o, outs[j])) throw new UsageError(`outputs ${outputs[j]} and ${outputs[i]} are the same file`);
    }
  });
}

interface Staged { tmp: string; target: string }

/**
 * Outputs written together: each `writeFileAtomic(…, { batch })` leaves its file complete and synced
 * under its temp name; `commit()` moves them all into place; `abort()` removes every temp file and
 * every folder the batch created. Folders are created only by `createFolder`, and are registered so
 * a signal removes them too.
 */
export class OutputBatch {
  private readonly staged: Staged[] = [];
  private readonly folders: string[] = [];
  private committed = false;
  constructor(private readonly force = false) {}

  /** Creates `dir` (and missing parents) for outputs of this batch; removed again on abort. */
  async createFolder(dir: string): Promise<void> {
    const abs = path.resolve(dir);
    const missing: string[] = [];
    for (let d = abs; ; d = path.dirname(d)) {
      if (await stat(d).then(() => true, () => false)) break;
      missing.unshift(d);
      if (path.dirname(d) === d) break;
    }
    try {
      await mkdir(abs, { recursive: true });
    } catch (e) {
      throw new IoError(`cannot create folder ${dir}: ${(e as NodeJS.ErrnoException).code === 'EACCES' ? 'permission denied' : (e as Error).message}`);
    }
    for (const d of missing) { this.folders.push(d); createdFolders.push(d); }
  }

  /** Where a staged target's bytes are until commit (the target itself once committed). */
  pathOf(target: string): string {
    return this.staged.find((s) => s.target === target)?.tmp ?? target;
  }

  /** @internal writeFileAtomic's side of the batch. */
  add(tmp: string, target: string): void {
    this.staged.push({ tmp, target });
  }

  async commit(): Promise<void> {
    const done: string[] = [];
    try {
      for (const s of this.staged) {
        await moveIntoPlace(s.tmp, s.target, this.force);
        liveTempFiles.delete(s.tmp);
        done.push(s.target);
      }
      placedOutputs += done.length;
    } catch (err) {
      // A later rename failed: the outputs already moved belong to a run that failed.
      for (const t of done) await unlink(t).catch(() => undefined);
      await this.abort();
      throw mapFsError(err, this.staged[done.length]?.target ?? '', true);
    }
    this.committed = true;
    for (const d of this.folders) {
      const i = createdFolders.indexOf(d);
      if (i >= 0) createdFolders.splice(i, 1);
    }
    for (const dir of new Set(this.staged.map((s) => path.dirname(path.resolve(s.target))))) await syncFolder(dir);
    this.staged.length = 0;
  }

  async abort(): Promise<void> {
    if (this.committed) return;
    for (const s of this.staged.splice(0)) {
      await unlink(s.tmp).catch(() => undefined);
      liveTempFiles.delete(s.tmp);
    }
    for (const d of this.folders.splice(0).reverse()) {
      await rmdir(d).catch(() => undefined);
      const i = createdFolders.indexOf(d);
      if (i >= 0) createdFolders.splice(i, 1);
    }
  }
}

/** Outputs this process has put in place so far (single files and committed batches' files). */
export function placedOutputCount(): number {
  return placedOutputs;
}

/** Temp files currently registered (for tests and diagnostics). */
export function liveTempFileCount(): number {
  return liveTempFiles.size;
}

async function pathExists(p: string): Promise<boolean> {
  try {
    await lstat(p); // a dangling symlink still occupies the name
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

function existsError(target: string): UsageError {
  return new UsageError(`${target} exists; pass --force to overwrite`);
}

/**
 * Fails fast, before any long work, when `target` could not be written: it exists and !force, it is a
 * folder, or its folder is missing / not writable.
 */
export async function assertWritable(target: string, force = false): Promise<void> {
  const dir = path.dirname(path.resolve(target));
  try {
    const exists = await pathExists(target);
    if (exists && !force) throw existsError(target);
    if (exists && (await stat(target).catch(() => null))?.isDirectory()) {
      throw new IoError(`cannot write ${target}: it is a directory`);
    }
    const st = await stat(dir);
    if (!st.isDirectory()) throw new IoError(`cannot write ${target}: ${dir} is not a folder`);
    await access(dir, constants.W_OK);
  } catch (err) {
    throw mapFsError(err, target, true);
  }
}

/** The name a temp file for `target` gets: hidden, per process, unguessable. */
function tempPathFor(target: string, tag = ''): string {
  const dir = path.dirname(path.resolve(target));
  return path.join(dir, `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}${tag}.tmp`);
}

/**
 * Writes `target` atomically: `write` fills a fresh temp file (through the handle, from position 0);
 * it is fsynced and renamed over the target; the folder is fsynced where the platform allows.
 * On any error the temp file is removed and the error rethrown (filesystem errors as IoError).
 */
export async function writeFileAtomic(
  target: string,
  write: (fh: FileHandle) => Promise<void>,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const force = options.force ?? false;
  await assertWritable(target, force);
  await removeStaleTempFiles(target);
  const tmp = tempPathFor(target);
  liveTempFiles.add(tmp);
  let fh: FileHandle | undefined;
  let stage: 'own' | 'callback' = 'own';
  let staged = false;
  try {
    fh = await open(tmp, 'wx', 0o666);
    stage = 'callback';
    await write(fh);
    stage = 'own';
    await testWriteDelay();
    await fh.sync();
    await fh.close();
    fh = undefined;
    if (options.batch) {
      // Stays registered (a signal removes it) until the batch commits or aborts.
      options.batch.add(tmp, target);
      staged = true;
      return;
    }
    await moveIntoPlace(tmp, target, force);
    placedOutputs++;
  } catch (err) {
    if (fh) await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw mapFsError(err, target, stage === 'own');
  } finally {
    if (!staged) liveTempFiles.delete(tmp);
  }
  await syncFolder(path.dirname(path.resolve(target)));
}

/**
 * For tests only: NOLA_TEST_WRITE_DELAY_MS=<ms> holds every atomic write that long with its temp file
 * written but not yet fsynced and moved into place, so a test can kill the CLI mid-write reliably.
 */
async function testWriteDelay(): Promise<void> {
  const ms = Number(process.env.NOLA_TEST_WRITE_DELAY_MS);
  if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Without --force, link(2) is used instead of rename(2): it fails with EEXIST rather than replacing a
 * file that appeared while we were writing. Filesystems without hard links fall back to a checked rename.
 */
async function moveIntoPlace(tmp: string, target: string, force: boolean): Promise<void> {
  if (force) {
    await rename(tmp, target);
    return;
  }
  if (await pathExists(target)) throw existsError(target);
  try {
    await link(tmp, target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw existsError(target);
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS' && code !== 'EXDEV' && code !== 'EMLINK') throw err;
    if (await pathExists(target)) throw existsError(target);
    await rename(tmp, target);
    return;
  }
  // The target is complete; a temp name left behind is only clutter.
  await unlink(tmp).catch(() => undefined);
}

async function syncFolder(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Some platforms and filesystems cannot open or fsync a folder (Windows, some network mounts).
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/** `writeFileAtomic` for small text outputs (adapter_config.json, report.json). */
export async function writeTextAtomic(target: string, text: string, options: AtomicWriteOptions = {}): Promise<void> {
  await writeFileAtomic(target, (fh) => fh.writeFile(text, 'utf8'), options);
}

/**
 * Runs `fn` with a registered scratch file (read/write) in `near`'s folder, removed afterwards whatever
 * happens. For data that must be staged before the final file can be written (e.g. to hash it first).
 */
export async function withTempFile<T>(near: string, fn: (fh: FileHandle, tempPath: string) => Promise<T>): Promise<T> {
  const tmp = tempPathFor(near, '.data');
  liveTempFiles.add(tmp);
  let fh: FileHandle | undefined;
  try {
    try {
      fh = await open(tmp, 'wx+', 0o600);
    } catch (err) {
      throw mapFsError(err, near, true);
    }
    return await fn(fh, tmp);
  } finally {
    await fh?.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    liveTempFiles.delete(tmp);
  }
}

/** Errors a write itself can hit, whoever issued it: these always mean "the output could not be written". */
const WRITE_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EFBIG', 'EROFS']);

/**
 * Filesystem errors -> one-line IoError naming the output. `ours` is true for errors from our own
 * operations on the target's folder; errors from the caller's callback are mapped only when they are
 * write failures (an ENOENT there is about some other file and passes through untouched).
 */
export function mapFsError(err: unknown, target: string, ours: boolean): unknown {
  if (err instanceof NolaError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code !== 'string') return err;
  if (!ours && !WRITE_ERRORS.has(code)) return err;
  const dir = path.dirname(path.resolve(target));
  const why = (() => {
    switch (code) {
      case 'ENOSPC': return 'no space left on device';
      case 'EDQUOT': return 'disk quota exceeded';
      case 'EFBIG': return 'file too large for this filesystem';
      case 'EROFS': return 'read-only file system';
      case 'EACCES':
      case 'EPERM': return `permission denied in ${dir}`;
      case 'ENOENT': return `folder ${dir} does not exist`;
      case 'ENOTDIR': return `a parent of ${target} is not a folder`;
      case 'EISDIR': return 'it is a directory';
      case 'EMFILE':
      case 'ENFILE': return 'too many open files';
      case 'EIO': return 'input/output error';
      default: return code;
    }
  })();
  return new IoError(`cannot write ${target}: ${why}`);
}
