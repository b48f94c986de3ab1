import type { Ctx } from './main.js';
import { parseFamily } from './options.js';
import { inspect } from '../pipeline/inspect.js';
import { renderInspectText } from '../report/inspect-text.js';

export async function runInspect(ctx: Ctx, file: string, o: Record<string, string | boolean | undefined>): Promise<void> {
  const result = await inspect(file, parseFamily('--format', o.format as string | undefined));
  ctx.out(o.json === true ? JSON.stringify(result, null, 2) : renderInspectText(result, o.layers === true));
}
