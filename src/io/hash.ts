/** SHA-256 of a safetensors file's data section (all tensor bytes as stored), streamed. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { SafetensorsFile } from './safetensors/index.js';

export async function hashDataSection(file: Pick<SafetensorsFile, 'path' | 'dataStart' | 'fileSize'>): Promise<string> {
  const hash = createHash('sha256');
  if (file.fileSize > file.dataStart) {
    for await (const chunk of createReadStream(file.path, { start: file.dataStart, end: file.fileSize - 1, highWaterMark: 1 << 20 })) {
      hash.update(chunk as Buffer);
    }
  }
  return hash.digest('hex');
}
