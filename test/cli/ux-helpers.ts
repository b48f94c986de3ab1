/** Shared by the "what a user sees" CLI tests: generated fixtures in a temp folder and tiny readers written here. */
import { readFileSync } from 'node:fs';
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
