// A line chart as a standalone SVG (no dependency): time against hosts, one line per series.
export interface Series {
  name: string;
  color: string;
  dashed?: boolean;
  points: { x: number; y: number }[];
}

export interface ChartOptions {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  width?: number;
  height?: number;
  /** x on a log scale (host counts over decades) */
  logX?: boolean;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** 1, 2, 5 × 10^k: a step that gives about `count` ticks up to max */
function niceStep(max: number, count: number): number {
  const raw = max / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * pow >= raw) return m * pow;
  return 10 * pow;
}

export function lineChart(o: ChartOptions): string {
  const width = o.width ?? 760;
  const height = o.height ?? 440;
  const m = { left: 64, right: 190, top: o.subtitle ? 62 : 44, bottom: 52 };
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  const all = o.series.flatMap((s) => s.points);
  const xs = [...new Set(all.map((p) => p.x))].sort((a, b) => a - b);
  const xMax = Math.max(...xs, 1);
  const xMin = xs.length ? Math.min(...xs) : 1;
  const yStep = niceStep(Math.max(...all.map((p) => p.y), 1) * 1.05, 6);
  const yMax = Math.ceil((Math.max(...all.map((p) => p.y), 1) * 1.05) / yStep) * yStep;
  const px = o.logX
    ? (x: number) => m.left + 10 + ((Math.log(x) - Math.log(xMin)) / Math.max(1e-9, Math.log(xMax) - Math.log(xMin))) * (plotW - 10)
    : (x: number) => m.left + (x / xMax) * plotW;
  const py = (y: number) => m.top + plotH - (y / yMax) * plotH;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${m.left}" y="24" font-size="15" font-weight="bold">${esc(o.title)}</text>`,
  ];
  if (o.subtitle) out.push(`<text x="${m.left}" y="42" fill="#555">${esc(o.subtitle)}</text>`);
  // grid and y ticks
  for (let y = 0; y <= yMax + 1e-9; y += yStep) {
    out.push(`<line x1="${m.left}" x2="${m.left + plotW}" y1="${py(y)}" y2="${py(y)}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${m.left - 8}" y="${py(y) + 4}" text-anchor="end">${+y.toFixed(6)}</text>`);
  }
  // x ticks at the measured host counts
  for (const x of xs) {
    out.push(`<line x1="${px(x)}" x2="${px(x)}" y1="${m.top + plotH}" y2="${m.top + plotH + 5}" stroke="#333"/>`);
    out.push(`<text x="${px(x)}" y="${m.top + plotH + 19}" text-anchor="middle">${x}</text>`);
  }
  out.push(`<line x1="${m.left}" x2="${m.left + plotW}" y1="${m.top + plotH}" y2="${m.top + plotH}" stroke="#333"/>`);
  out.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + plotH}" stroke="#333"/>`);
  out.push(`<text x="${m.left + plotW / 2}" y="${height - 10}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${m.top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  // series, then the legend
  for (const [i, s] of o.series.entries()) {
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2.2"${dash} points="${pts.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(' ')}"/>`);
    for (const p of pts) out.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="3.5" fill="${s.color}"><title>${esc(`${s.name}: ${p.x} hosts, ${p.y.toFixed(2)} s`)}</title></circle>`);
    const ly = m.top + 10 + i * 22;
    const lx = m.left + plotW + 16;
    out.push(`<line x1="${lx}" x2="${lx + 26}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2.2"${dash}/>`);
    out.push(`<text x="${lx + 32}" y="${ly + 4}">${esc(s.name)}</text>`);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
