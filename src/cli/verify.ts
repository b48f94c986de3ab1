import type { Ctx } from './main.js';
import { parseMaxError, parsePositive } from './options.js';
import { verify } from '../pipeline/verify.js';
import { resolveNolaPath } from '../pipeline/expand.js';
import { isNolaMetadata } from '../pipeline/nola-source.js';
import { resolveLoraPath } from '../pipeline/source.js';
import { openSafetensors } from '../io/safetensors/index.js';
import { compareLoras } from '../pipeline/compare.js';
import { renderCompareText } from './compare.js';
import { NumericError, UsageError } from '../errors.js';

async function isNolaFile(file: string): Promise<boolean> {
  const f = await openSafetensors(file);
  try { return isNolaMetadata(f.metadata); } finally { await f.close(); }
}

export async function runVerify(ctx: Ctx, input: string, source: string | undefined, o: Record<string, string | boolean | undefined>): Promise<void> {
  const tolerance = parsePositive('--tolerance', String(o.tolerance));
  const file = await resolveNolaPath(input);
  if (!(await isNolaFile(await resolveLoraPath(file)))) return verifyExpanded(ctx, file, source, o);
  const result = await verify(file, source, tolerance);
  if (o.json === true) ctx.out(JSON.stringify(result, null, 2));
  if (result.checksum === 'mismatch') {
    throw new NumericError(`${result.file} was made from a different LoRA than ${result.source} (the source's SHA-256 differs from the one recorded at compression)`);
  }
  if (o.json !== true) {
    const bad = result.layers.filter((l) => !l.ok);
    const measured = result.layers.filter((l) => l.measured !== null);
    const worst = measured.reduce<(typeof measured)[number] | undefined>((w, l) => (w === undefined || l.measured! > w.measured! ? l : w), undefined);
    const maxDiff = measured.reduce((m, l) => Math.max(m, Math.abs(l.measured! - l.claimed)), 0);
    ctx.out([
      `${result.file}: ${result.layers.length} layers rebuilt${result.source ? ` and compared with ${result.source}` : ''}`,
      `  coefficient checksum: ${result.coefficients}`,
      `  source checksum: ${result.checksum}`,
      ...(worst !== undefined ? [`  measured errors: worst layer ${worst.measured!.toFixed(4)} (${worst.name}); largest difference from the stated errors ${maxDiff.toExponential(2)} (tolerance ${tolerance})`] : []),
      ...(o.layers === true ? measured.map((l) => `    ${l.measured!.toFixed(4)} (stated ${l.claimed.toFixed(4)})  ${l.name}`) : []),
      ...bad.slice(0, 10).map((l) => `  FAIL ${l.name}: claimed ${l.claimed.toFixed(6)}, measured ${l.measured === null ? 'n/a' : l.measured.toFixed(6)}${l.finite ? '' : ', non-finite values'}`),
      ...result.missing.slice(0, 10).map((name) => `  FAIL ${name}: in the source, missing from the NOLA file`),
      result.ok ? '  verify: ok' : `  verify: FAILED (${bad.length + result.missing.length} layers${result.coefficients === 'mismatch' ? ', coefficient checksum differs' : ''})`,
    ].join('\n'));
  }
  if (!result.ok) throw new NumericError(`${file}: verification failed`);
}

/** `nola verify EXPANDED SOURCE`: every layer of an expanded LoRA within --max-error of its source. */
async function verifyExpanded(ctx: Ctx, file: string, source: string | undefined, o: Record<string, string | boolean | undefined>): Promise<void> {
  if (source === undefined) throw new UsageError(`${file} is not a NOLA file; to check an expanded LoRA give its source too: nola verify ${file} SOURCE`);
  const bound = parseMaxError(String(o.maxError ?? '0.1'));
  const result = await compareLoras(source, file);
  const above = result.layers.filter((l) => l.error > bound);
  const missing = [...result.onlyInA, ...result.onlyInB];
  if (o.json === true) ctx.out(JSON.stringify({ ...result, bound, ok: above.length === 0 && missing.length === 0 }, null, 2));
  else {
    ctx.out([
      renderCompareText(result),
      above.length === 0 && missing.length === 0 ? `  verify: ok (every layer within ${bound})`
        : `  verify: FAILED (${above.length} layers above ${bound}${missing.length ? `, ${missing.length} layers in only one file` : ''})`,
    ].join('\n'));
  }
  if (above.length > 0 || missing.length > 0) throw new NumericError(`${file}: verification against ${source} failed`);
}
