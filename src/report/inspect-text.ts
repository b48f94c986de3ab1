import type { Inspection } from '../pipeline/inspect.js';
import { describeErrors, describePair, formatBytes, formatSizeRatio, pct } from './report.js';

export function renderInspectText(i: Inspection, allLayers: boolean): string {
  const lines: string[] = [];
  if (i.kind === 'lora') {
    lines.push(
      `${i.file}: LoRA, format ${i.family}`,
      `  layers ${i.totals.layers}, ranks ${i.totals.ranks.join(',') || '-'}, parameters ${i.totals.params.toLocaleString('en-US')}`,
      `  bytes  file ${formatBytes(i.bytes.file)} = header ${formatBytes(i.bytes.header)} + factors ${formatBytes(i.bytes.factors)} + passthrough ${formatBytes(i.bytes.passthrough)}` +
        ` (as fp16 the factors would be ${formatBytes(i.totals.fp16Bytes)})`,
    );
    if (i.passthrough.length > 0) lines.push(`  passthrough (kept verbatim): ${i.passthrough.map((p) => `${p.name} ${p.dtype}[${p.shape}]`).join(', ')}`);
    const shown = allLayers ? i.layers : i.layers.slice(0, 8);
    lines.push('  layers (update shape out×in[×kernel], rank, scale, dtypes):');
    for (const l of shown) lines.push(`    ${l.shape} r${l.rank} s${fmt(l.scale)} ${l.dtypeA}/${l.dtypeB} ${l.kind}  ${l.name}`);
    if (shown.length < i.layers.length) lines.push(`    … ${i.layers.length - shown.length} more (--layers lists all)`);
    for (const n of i.notes) lines.push(`  note: ${n}`);
    for (const w of i.warnings) lines.push(`  warning: ${w}`);
  } else {
    lines.push(
      `${i.file}: NOLA v${i.formatVersion} (${i.generator}), source ${i.source.file} (${i.source.family}, ${formatBytes(i.source.bytes)})`,
      `  bytes  file ${formatBytes(i.bytes.file)} = header ${formatBytes(i.bytes.header)} + document ${formatBytes(i.bytes.document)} + coefficients ${formatBytes(i.bytes.coefficients)} + passthrough ${formatBytes(i.bytes.passthrough)}`,
      `  ratio  ${formatSizeRatio(i.source.bytes, i.bytes.file)} than the source file; ${i.totals.coefficients.toLocaleString('en-US')} coefficients for ${i.totals.sourceParams.toLocaleString('en-US')} LoRA parameters`,
      `  error  ${describeErrors(i.totals.energyWeightedError, i.totals.maxError)}`,
    );
    const t = i.totals;
    if (t.rdBoundRatio > 0 && Number.isFinite(t.rdBoundRatio)) {
      lines.push(`  limit  at these errors a data-free coder could reach about ${t.rdBoundRatio.toFixed(2)}x vs fp16 (isotropic rank-1 bound; ` +
        `Gaussian estimate ${t.rdGaussianRatio.toFixed(2)}x; both from the reconstructed spectra); this file ${t.fileFp16Ratio.toFixed(2)}x = ${pct(t.fileFp16Ratio / t.rdBoundRatio)} of the bound`);
    }
    const lost = (l: (typeof i.layers)[number]): number => l.energy * l.error * l.error;
    const total = i.layers.reduce((a, l) => a + lost(l), 0);
    const shown = allLayers ? i.layers : [...i.layers].sort((a, b) => lost(b) - lost(a) || b.bytes - a.bytes).slice(0, 8);
    lines.push(`  ${allLayers ? 'layers' : 'layers that lose the most energy'} (share of the energy lost | error | bytes | bits per degree of freedom above the bound | shape, rank, basis, k, l, quant):`);
    for (const l of shown) {
      const gap = `${l.rdGapBitsPerDof >= 0 ? '+' : ''}${l.rdGapBitsPerDof.toFixed(2)}`;
      lines.push(`    ${pct(total > 0 ? lost(l) / total : 0).padStart(6)} | ${l.error.toFixed(4)} | ${formatBytes(l.bytes).padStart(9)} | ${gap.padStart(6)} | ` +
        `${l.shape} r${l.rank}/${l.sourceRank} ${l.basis} k${l.k} l${l.l} ${describePair(l.quantA, l.quantB)}  ${l.name}`);
    }
    if (shown.length < i.layers.length) lines.push(`    … ${i.layers.length - shown.length} more (--layers lists all)`);
  }
  return lines.join('\n');
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(4);
}
