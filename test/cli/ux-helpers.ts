/** Shared by the "what a user sees" CLI tests: generated fixtures in a temp folder and tiny readers written here. */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { generateFixtures } from '../../fixtures/generate.js';
import { makeTempDir } from '../io/helpers.js';

export interface Workspace { dir: string; fixtures: string; cleanup: () => void }

export async function makeWorkspace(prefix: string): Promise<Workspace> {
  const tmp = makeTempDir(prefix);
  const fixtures = path.join(tmp.dir, 'fixtures');
  await generateFixtures(fixtures);
  return { dir: tmp.dir, fixtures, cleanup: tmp.cleanup };
}

/** A safetensors header, parsed with JSON.parse from the bytes (independent of nola's reader). */
export function readHeader(file: string): { tensors: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>; metadata: Record<string, string> | null } {
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const h = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const metadata = (h.__metadata__ ?? null) as Record<string, string> | null;
  delete h.__metadata__;
  return { tensors: h as ReturnType<typeof readHeader>['tensors'], metadata };
}

/** Non-empty stderr lines. */
export function lines(s: string): string[] {
  return s.split('\n').filter((l) => l.trim() !== '');
}

/**
 * The smallest kohya LoRA there is: one 8 × 8 layer at rank 1 in F16, 216 bytes, written byte by
 * byte (not by nola's writer). A NOLA file's document alone is larger than that. Returns the path.
 */
export function writeTinyF16Lora(file: string): string {
  const header = JSON.stringify({
    'lora_unet_a_b.lora_down.weight': { dtype: 'F16', shape: [1, 8], data_offsets: [0, 16] },
    'lora_unet_a_b.lora_up.weight': { dtype: 'F16', shape: [8, 1], data_offsets: [16, 32] },
  });
  const data = Buffer.alloc(32);
  // Halves of ±0.0625·(1 + (i mod 8)/8): exact in F16 (0x2C00 is 0.0625), sign alternating.
  for (let i = 0; i < 16; i++) data.writeUInt16LE(0x2c00 + ((i % 8) << 7) + (i % 2 === 0 ? 0 : 0x8000), 2 * i);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  writeFileSync(file, Buffer.concat([len, Buffer.from(header), data]));
  return file;
}
