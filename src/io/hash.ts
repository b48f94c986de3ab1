/** SHA-256 of a safetensors file's data section (all tensor bytes as stored), streamed. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { SafetensorsFile } from './safetensors/index.js';

/** SHA-256 (hex) of bytes in memory. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** SHA-256 (hex) of bytes [start, end) of a file, streamed. */
export async function hashFileRange(file: string, start: number, end: number): Promise<string> {
  const hash = createHash('sha256');
  if (end > start) {
    for await (const chunk of createReadStream(file, { start, end: end - 1, highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}

export async function hashDataSection(file: Pick<SafetensorsFile, 'path' | 'dataStart' | 'fileSize'>): Promise<string> {
  return hashFileRange(file.path, file.dataStart, file.fileSize);
}
