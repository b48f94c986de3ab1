/**
 * Reading a small text input (adapter_config.json) from a path a user or a folder layout named:
 * only a regular file, and only up to a size limit. Opening a FIFO for reading blocks until a writer
 * appears (forever, for a planted one), so the file is opened non-blocking and checked with fstat
 * before a byte is read; the size is checked before the contents are.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { FormatError, IoError } from '../errors.js';

/** Opens `path` for reading only if it is a regular file (after symlinks); null when it does not exist. */
export async function openRegularFile(path: string): Promise<FileHandle | null> {
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'EISDIR') throw new IoError(`${path}: is a directory`);
    throw new IoError(`${path}: cannot open (${code ?? (err as Error).message})`);
  }
  const st = await fh.stat().catch(async (err: Error) => { await fh.close(); throw new IoError(`${path}: cannot stat (${err.message})`); });
  if (!st.isFile()) {
    await fh.close();
    throw new IoError(`${path}: ${st.isDirectory() ? 'is a directory' : 'is not a regular file (a FIFO, socket or device)'}; nola reads only regular files`);
  }
  return fh;
}

/** The UTF-8 text of regular file `path` of at most `maxBytes` bytes; null when it does not exist. */
export async function readRegularText(path: string, maxBytes: number): Promise<string | null> {
  const fh = await openRegularFile(path);
  if (fh === null) return null;
  try {
    const { size } = await fh.stat();
    if (size > maxBytes) throw new FormatError(`${path} is ${size} bytes, more than the limit of ${maxBytes} bytes for this file`);
    const buf = Buffer.alloc(size);
    let done = 0;
    while (done < size) {
      const { bytesRead } = await fh.read(buf, done, size - done, done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return buf.subarray(0, done).toString('utf8');
  } finally {
    await fh.close();
  }
}
