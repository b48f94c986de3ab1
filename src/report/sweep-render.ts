/** The sweep as a table (text) and as a picture (SVG: size on x, error on y, one series per method). */
import type { SweepPoint, SweepResult } from '../pipeline/sweep.js';
import { formatBytes } from './report.js';

export function renderSweepText(r: SweepResult): string {
  const lines = [
    `nola compress --sweep: ${r.input} (${r.family}, ${r.layers} layers, fp16 factors ${formatBytes(r.fp16Bytes)})`,
    '  setting                         bytes        x fp16   error (weighted / worst)',
  ];
  for (const p of r.points) {
    lines.push(`  ${p.setting.padEnd(30)}  ${formatBytes(p.bytes).padStart(11)}  ${p.ratio.toFixed(2).padStart(7)}x  ${p.energyWeightedError.toFixed(4)} / ${p.maxError.toFixed(4)}`);
  }
  lines.push('  (nola rows are NOLA settings; svd fp16 rows are plain SVD truncation stored in fp16 at the same bound or size, as kohya resize_lora does)');
  return lines.join('\n');
}

const SERIES: Array<{ method: SweepPoint['method']; label: string; color: string }> = [
  { method: 'nola', label: 'nola (budget modes)', color: '#1f77b4' },
  { method: 'svd-fp16', label: 'SVD truncation, fp16', color: '#d62728' },
  { method: 'paper', label: 'NOLA paper preset', color: '#2ca02c' },
];

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function renderSweepSvg(r: SweepResult): string {
  const w = 720, h = 440, left = 70, right = 20, top = 40, bottom = 60;
  const pts = r.points.filter((p) => p.ratio > 0 && Number.isFinite(p.ratio));
  const xs = pts.map((p) => Math.log2(p.ratio));
  const xMin = Math.floor(Math.min(0, ...xs)), xMax = Math.ceil(Math.max(1, ...xs));
  const yMax = Math.min(1, Math.max(0.05, ...pts.map((p) => p.energyWeightedError)) * 1.1);
  const px = (ratio: number): number => left + ((Math.log2(ratio) - xMin) / (xMax - xMin)) * (w - left - right);
  const py = (err: number): number => top + (1 - err / yMax) * (h - top - bottom);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="12">`,
    `<rect width="${w}" height="${h}" fill="white"/>`,
    `<text x="${left}" y="20" font-size="14">${escapeXml(`size vs error: ${r.input.split('/').slice(-2).join('/')}`)}</text>`,
    `<line x1="${left}" y1="${h - bottom}" x2="${w - right}" y2="${h - bottom}" stroke="black"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${h - bottom}" stroke="black"/>`,
    `<text x="${(left + w - right) / 2}" y="${h - 20}" text-anchor="middle">times smaller than the fp16 LoRA factors (log scale)</text>`,
    `<text x="18" y="${(top + h - bottom) / 2}" transform="rotate(-90 18 ${(top + h - bottom) / 2})" text-anchor="middle">energy-weighted relative error</text>`,
  ];
  for (let e = xMin; e <= xMax; e++) {
    out.push(`<line x1="${px(2 ** e)}" y1="${h - bottom}" x2="${px(2 ** e)}" y2="${h - bottom + 5}" stroke="black"/>`);
    out.push(`<text x="${px(2 ** e)}" y="${h - bottom + 18}" text-anchor="middle">${2 ** e}x</text>`);
  }
  for (let i = 0; i <= 5; i++) {
    const v = (yMax * i) / 5;
    out.push(`<line x1="${left - 5}" y1="${py(v)}" x2="${left}" y2="${py(v)}" stroke="black"/>`);
    out.push(`<text x="${left - 8}" y="${py(v) + 4}" text-anchor="end">${v.toFixed(2)}</text>`);
  }
  SERIES.forEach((s, si) => {
    const series = pts.filter((p) => p.method === s.method).sort((a, b) => a.ratio - b.ratio);
    if (series.length === 0) return;
    // Lines join the --ratio points (energy-optimal at each size); --max-error points are hollow
    // markers, since bounding the worst layer is a different trade-off.
    const line = series.filter((p) => p.target !== 'max-error');
    if (line.length > 1) {
      out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${line.map((p) => `${px(p.ratio).toFixed(1)},${py(Math.min(p.energyWeightedError, yMax)).toFixed(1)}`).join(' ')}"/>`);
    }
    for (const p of series) {
      const fill = p.target === 'max-error' ? `fill="white" stroke="${s.color}" stroke-width="1.5"` : `fill="${s.color}"`;
      out.push(`<circle cx="${px(p.ratio).toFixed(1)}" cy="${py(Math.min(p.energyWeightedError, yMax)).toFixed(1)}" r="3.5" ${fill}><title>${escapeXml(`${p.setting}: ${p.ratio.toFixed(2)}x, error ${p.energyWeightedError.toFixed(4)}`)}</title></circle>`);
    }
    out.push(`<rect x="${w - right - 190}" y="${top + 6 + si * 18}" width="10" height="10" fill="${s.color}"/>`);
    out.push(`<text x="${w - right - 175}" y="${top + 15 + si * 18}">${escapeXml(s.label)}</text>`);
  });
  out.push(`<text x="${w - right - 190}" y="${top + 15 + SERIES.length * 18}" fill="#555">filled: --ratio, hollow: --max-error</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
