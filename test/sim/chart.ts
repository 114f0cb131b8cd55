// Host time p50 / p99 / max against the number of hosts (log scale), as SVG, from run.ts's summaries. Also a command:
//   node test/sim/chart.ts OUT.svg "TITLE" A.json [B.json ...]   (the --json files of several runs, joined)
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { lineChart } from '../bench/fanout/chart.ts';
import type { SimSummary } from './stats.ts';

export function fleetChart(rows: readonly SimSummary[], title: string, subtitle: string): string {
  const floor = rows[0]!.floorS;
  const series = (name: string, color: string, y: (s: SimSummary) => number, dashed = false) => ({ name, color, dashed, points: rows.map((s) => ({ x: s.hosts, y: y(s) })) });
  return lineChart({
    title,
    subtitle,
    xLabel: 'hosts (log scale)',
    yLabel: 'host time (s)',
    logX: true,
    series: [
      series('max', '#c0392b', (s) => s.maxS),
      series('p99', '#e67e22', (s) => s.p99S),
      series('p50', '#2471a3', (s) => s.p50S),
      series('floor', '#777', () => floor, true),
    ],
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [out, title, ...files] = process.argv.slice(2);
  if (!out || !title || files.length === 0) {
    process.stderr.write('usage: node test/sim/chart.ts OUT.svg "TITLE" A.json [B.json ...]\n');
    process.exit(2);
  }
  const rows = files.flatMap((f) => JSON.parse(readFileSync(f, 'utf8')) as SimSummary[]).sort((a, b) => a.hosts - b.hosts);
  writeFileSync(out, fleetChart(rows, title, `${rows.map((r) => r.hosts).join(', ')} hosts; simulated (test/sim), virtual time`));
}
