import type { Ctx } from './main.js';
import { parseFamily } from './options.js';
import { compareLoras, type CompareResult } from '../pipeline/compare.js';
import { describeErrors } from '../report/report.js';

export function renderCompareText(r: CompareResult): string {
  const lines = [
    `nola compare: ${r.a} vs ${r.b} (${r.family}, ${r.layers.length} layers in common)`,
    `  error  ${describeErrors(r.energyWeightedError, r.maxError)}, relative to the first`,
    '  layers (error | shape | rank first/second):',
    ...r.layers.map((l) => `    ${l.error.toFixed(4)} | ${l.shape} | r${l.rankA}/r${l.rankB}  ${l.name}`),
  ];
  if (r.onlyInA.length > 0) lines.push(`  only in ${r.a}: ${r.onlyInA.length} layers (${r.onlyInA.slice(0, 3).join(', ')}${r.onlyInA.length > 3 ? ', …' : ''})`);
  if (r.onlyInB.length > 0) lines.push(`  only in ${r.b}: ${r.onlyInB.length} layers (${r.onlyInB.slice(0, 3).join(', ')}${r.onlyInB.length > 3 ? ', …' : ''})`);
  return lines.join('\n');
}

export async function runCompare(ctx: Ctx, a: string, b: string, o: Record<string, string | boolean | undefined>): Promise<void> {
  const result = await compareLoras(a, b, parseFamily('--format', o.format as string | undefined));
  if (result.onlyInA.length + result.onlyInB.length > 0) {
    ctx.log.warn(`the two files differ in layout: ${result.onlyInA.length} layers only in the first, ${result.onlyInB.length} only in the second`);
  }
  ctx.out(o.json === true ? JSON.stringify(result, null, 2) : renderCompareText(result));
}
