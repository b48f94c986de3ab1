/**
 * Generated patterns of the matcher's subset and short texts over a small alphabet (so that matches
 * and near-misses are both common), for the tests that compare matchers: test/formats/pattern.test.ts
 * (nola's against RegExp) and test/python/pattern.test.ts (the Python reader's against nola's).
 */
/** Deterministic PRNG (mulberry32) so a failure names a reproducible case. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const ATOMS = ['a', 'b', '.', '\\.', '\\d', '\\w', '[ab]', '[^a]', '[a-c]', '[\\d.]', '1', '_'];

export function genPattern(r: () => number, depth: number): string {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const atom = (): string => {
    const x = r();
    if (depth > 0 && x < 0.25) return `(${genPattern(r, depth - 1)})`;
    if (depth > 0 && x < 0.32) return `(?:${genPattern(r, depth - 1)})`;
    return pick(ATOMS);
  };
  const n = 1 + Math.floor(r() * 4);
  const alts: string[] = [];
  const nAlt = r() < 0.3 ? 2 : 1;
  for (let a = 0; a < nAlt; a++) {
    let seq = r() < 0.1 ? '^' : '';
    for (let i = 0; i < n; i++) {
      let x = atom();
      const q = r();
      if (q < 0.15) x += '*';
      else if (q < 0.3) x += '+';
      else if (q < 0.4) x += '?';
      else if (q < 0.45) x += `{${Math.floor(r() * 3)}}`;
      else if (q < 0.5) { const m = Math.floor(r() * 3); x += `{${m},${m + Math.floor(r() * 3)}}`; }
      else if (q < 0.53) x += `{${Math.floor(r() * 2)},}`;
      if (q < 0.53 && r() < 0.2) x += '?';
      seq += x;
    }
    if (r() < 0.1) seq += '$';
    alts.push(seq);
  }
  return alts.join('|');
}

export function genText(r: () => number): string {
  const chars = 'ab.1_c';
  let s = '';
  const n = Math.floor(r() * 9);
  for (let i = 0; i < n; i++) s += chars[Math.floor(r() * chars.length)];
  return s;
}
