/**
 * Atomic file output: write a temp file beside the target, fsync it, then move it into place, so a
 * reader never sees a half-written output and a crash or Ctrl-C leaves the old file (or nothing).
 *
 * Temp files live in the target's folder (a rename across filesystems is not atomic) and are named
 * `.<basename>.<pid>.<random>.tmp`. Every live temp file is in a registry so the CLI's SIGINT handler
 * can delete them synchronously before exiting (`removeLiveTempFiles`).
 */
import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { access, constants, link, lstat, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { IoError, NolaError, UsageError } from '../errors.js';

export interface AtomicWriteOptions {
  /** Replace an existing target. Without it an existing target is a UsageError. */
  force?: boolean;
}

const liveTempFiles = new Set<string>();

/** Deletes every temp file this process is still writing. Synchronous: safe to call from a signal handler. */
export function removeLiveTempFiles(): void {
  for (const p of liveTempFiles) {
    try {
      unlinkSync(p);
    } catch {
      // Already gone, or the folder vanished: nothing left to clean.
    }
  }
  liveTempFiles.clear();
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
 * Removes temp files for `target` (named as tempPathFor names them) left by a process that died
 * without cleaning up (SIGKILL, power loss): those of a pid that no longer runs, and those of this
 * pid that this process is not writing (a container's restarted process often gets the same pid).
 * Returns the paths removed.
 */
export async function removeStaleTempFiles(target: string): Promise<string[]> {
  const dir = path.dirname(path.resolve(target));
  const base = path.basename(target).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const re = new RegExp(`^\\.${base}\\.([0-9]+)\\.[0-9a-f]{12}(\\.data)?\\.tmp$`);
  const names = await readdir(dir).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names) {
    const m = re.exec(name);
    if (m === null) continue;
    const p = path.join(dir, name);
    const pid = Number(m[1]);
    if ((pid === process.pid && !liveTempFiles.has(p)) || (pid !== process.pid && !processRuns(pid))) {
      await unlink(p).then(() => removed.push(p), () => undefined);
    }
  }
  return removed;
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
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
  const tmp = tempPathFor(target);
  liveTempFiles.add(tmp);
  let fh: FileHandle | undefined;
  let stage: 'own' | 'callback' = 'own';
  try {
    fh = await open(tmp, 'wx', 0o666);
    stage = 'callback';
    await write(fh);
    stage = 'own';
    await testWriteDelay();
    await fh.sync();
    await fh.close();
    fh = undefined;
    await moveIntoPlace(tmp, target, force);
  } catch (err) {
    if (fh) await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw mapFsError(err, target, stage === 'own');
  } finally {
    liveTempFiles.delete(tmp);
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
