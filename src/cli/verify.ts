import type { Ctx } from './main.js';
import { parsePositive } from './options.js';
import { verify } from '../pipeline/verify.js';
import { NumericError } from '../errors.js';

export async function runVerify(ctx: Ctx, file: string, source: string | undefined, o: Record<string, string | boolean | undefined>): Promise<void> {
  const result = await verify(file, source, parsePositive('--tolerance', String(o.tolerance)));
  if (o.json === true) {
    ctx.out(JSON.stringify(result, null, 2));
  } else {
    const bad = result.layers.filter((l) => !l.ok);
    ctx.out([
      `${result.file}: ${result.layers.length} layers rebuilt${result.source ? ` and compared with ${result.source}` : ''}`,
      `  coefficient checksum: ${result.coefficients}`,
      `  source checksum: ${result.checksum}`,
      ...bad.slice(0, 10).map((l) => `  FAIL ${l.name}: claimed ${l.claimed.toFixed(6)}, measured ${l.measured === null ? 'n/a' : l.measured.toFixed(6)}${l.finite ? '' : ', non-finite values'}`),
      ...result.missing.slice(0, 10).map((name) => `  FAIL ${name}: in the source, missing from the NOLA file`),
      result.ok ? '  verify: ok' : `  verify: FAILED (${bad.length + result.missing.length} layers${result.coefficients === 'mismatch' ? ', coefficient checksum differs' : ''}${result.checksum === 'mismatch' ? ', source checksum differs' : ''})`,
    ].join('\n'));
  }
  if (!result.ok) throw new NumericError(`${file}: verification failed`);
}
