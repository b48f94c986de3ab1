import type { Ctx } from './main.js';
import { parseFamily, parseThreads } from './options.js';
import { createProgress } from './progress.js';
import { expand } from '../pipeline/expand.js';
import { formatBytes } from '../report/report.js';

export async function runExpand(ctx: Ctx, input: string, o: Record<string, string | boolean | undefined>): Promise<void> {
  const started = Date.now();
  const progress = createProgress('expand', ctx.progress);
  const result = await expand({
    input,
    output: o.output as string | undefined,
    to: parseFamily('--to', o.to as string | undefined),
    force: o.force === true,
    threads: parseThreads(o),
    onProgress: (d, t, name) => progress.update(d, t, name),
  }).finally(() => progress.done());
  for (const w of result.warnings) ctx.log.warn(w);
  ctx.log.info(`expanded ${result.layers} layers (${result.family}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (o.json === true) {
    ctx.out(JSON.stringify(result, null, 2));
    return;
  }
  ctx.out([
    `nola expand: ${result.input} -> ${result.output} (${result.family}, ${result.layers} layers, ${result.tensors} tensors, ${formatBytes(result.bytes)})`,
    ...(result.config ? [`  config: ${result.config}`] : []),
  ].join('\n'));
}
