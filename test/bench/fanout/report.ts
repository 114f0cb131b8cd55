// Medians over runs, the markdown table of a plan, and its goals checked against those medians.
import { median } from '../measure.ts';
import type { RunRecord } from './run.ts';
import { RSS_GOAL_BYTES, TOOL_LABEL, type Plan, type RowSpec, type Tool } from './scenarios.ts';

const GiB = 1 << 30;
const MiB = 1 << 20;

/** one table row of one variant, median over the runs in which every host of the row finished */
export interface RowSummary {
  tool: Tool;
  row: string;
  runs: number;
  /** runs in which a host of the row failed (not counting the host killed on purpose) */
  failedRuns: number;
  makespanMs?: number;
  hostP50Ms?: number;
  hostMinMs?: number;
  /** registry egress of the row's wave / image size */
  egressVsImage?: number;
  /** bytes from peers / bytes received, over the row's hosts */
  peersShare?: number;
  /** the largest peak RSS of one process, and of its PSS and USS (sampled) */
  peakRssMiB?: number;
  peakPssMiB?: number;
  peakUssMiB?: number;
  /** CPU seconds (less start-up where the gate measured it) per GiB received, over the row's hosts */
  cpuSecondsPerGiB?: number;
  /** the largest start lag (release → swarmpull's startedAt) */
  startLagMs?: number;
}

export interface Goal {
  text: string;
  met: boolean;
  /** what was measured, e.g. "1.12x" */
  value: string;
}

export interface PlanSummary {
  floorMs: Record<string, number>;
  rows: RowSummary[];
  goals: Goal[];
}

/** image bits over the row's (slowest) link: no host can do better */
export function floorMs(plan: Plan, row: RowSpec, imageBytes: number): number {
  const rate = Math.min(...row.hosts.map((i) => plan.hostRates[i]!));
  return ((imageBytes * 8) / (rate * 1e6)) * 1000;
}

export function summarise(plan: Plan, imageBytes: number, runs: RunRecord[]): PlanSummary {
  const floors: Record<string, number> = {};
  for (const row of plan.rows) floors[row.label] = floorMs(plan, row, imageBytes);
  const rows: RowSummary[] = [];
  const tools = [...new Set(runs.map((r) => r.tool))];
  for (const row of plan.rows) {
    for (const tool of tools) rows.push(summariseRow(row, tool, imageBytes, runs.filter((r) => r.tool === tool)));
  }
  return { floorMs: floors, rows, goals: checkGoals(plan, floors, rows) };
}

function summariseRow(row: RowSpec, tool: Tool, imageBytes: number, runs: RunRecord[]): RowSummary {
  const per = runs.map((r) => {
    const wave = r.waves[row.wave]!;
    const hosts = wave.hosts.filter((h) => row.hosts.includes(h.index) && !h.killed);
    const times = hosts.map((h) => h.timeMs ?? Number.NaN);
    const received = hosts.reduce((a, h) => a + h.receivedBytes, 0);
    // a rate: start-up (module loading, measured by the gate) is a fixed cost, not per byte
    const cpu = hosts.reduce((a, h) => a + (h.cpuSeconds ?? 0) - (h.startupCpuSeconds ?? 0), 0);
    return {
      ok: hosts.every((h) => h.ok),
      makespanMs: Math.max(...times),
      hostP50Ms: median(times),
      hostMinMs: Math.min(...times),
      egressVsImage: wave.registryEgressBytes / imageBytes,
      peersShare: tool === 'skopeo' ? undefined : hosts.reduce((a, h) => a + (h.bytes?.peers ?? 0), 0) / received,
      peakRssMiB: Math.max(...hosts.map((h) => h.peakRssMiB ?? 0)),
      peakPssMiB: Math.max(...hosts.map((h) => h.peakPssMiB ?? 0)) || undefined,
      peakUssMiB: Math.max(...hosts.map((h) => h.peakUssMiB ?? 0)) || undefined,
      cpuSecondsPerGiB: received > 0 ? cpu / (received / GiB) : undefined,
      startLagMs: tool === 'skopeo' ? undefined : Math.max(...hosts.map((h) => h.startLagMs ?? 0)),
    };
  });
  const good = per.filter((p) => p.ok);
  const med = (pick: (p: (typeof good)[number]) => number | undefined) => {
    const xs = good.map(pick).filter((x): x is number => x !== undefined && Number.isFinite(x));
    return xs.length ? median(xs) : undefined;
  };
  const s: RowSummary = { tool, row: row.label, runs: per.length, failedRuns: per.length - good.length };
  const fields = ['makespanMs', 'hostP50Ms', 'hostMinMs', 'egressVsImage', 'peersShare', 'peakRssMiB', 'peakPssMiB', 'peakUssMiB', 'cpuSecondsPerGiB', 'startLagMs'] as const;
  for (const f of fields) {
    const v = med((p) => p[f]);
    if (v !== undefined) s[f] = v;
  }
  return s;
}

function checkGoals(plan: Plan, floors: Record<string, number>, rows: RowSummary[]): Goal[] {
  const find = (tool: Tool, row: string) => rows.find((r) => r.tool === tool && r.row === row);
  const label = (row: string) => (row ? ` (${row})` : '');
  const goals: Goal[] = [];
  const unmeasured = (text: string): Goal => ({ text, met: false, value: 'not measured (failed runs)' });
  for (const g of plan.goals) {
    const sp = find('swarmpull', g.row);
    if (g.kind === 'makespan') {
      const text = `swarmpull makespan${label(g.row)} <= ${g.maxVsFloor}x floor`;
      const v = sp?.makespanMs === undefined ? undefined : sp.makespanMs / floors[g.row]!;
      goals.push(v === undefined ? unmeasured(text) : { text, met: v <= g.maxVsFloor, value: `${v.toFixed(2)}x` });
    } else if (g.kind === 'egress') {
      const text = `registry egress${label(g.row)} <= ${g.maxVsImage}x the image`;
      const v = sp?.egressVsImage;
      goals.push(v === undefined ? unmeasured(text) : { text, met: v <= g.maxVsImage, value: `${v.toFixed(2)}x` });
    } else if (g.kind === 'not-slower') {
      const other = find(g.than, g.row);
      if (!other) continue; // skopeo skipped
      const text = `swarmpull${label(g.row)} not slower than ${TOOL_LABEL[g.than]}`;
      if (sp?.makespanMs === undefined || other.makespanMs === undefined) goals.push(unmeasured(text));
      else goals.push({ text, met: sp.makespanMs <= other.makespanMs, value: `${seconds(sp.makespanMs)} vs ${seconds(other.makespanMs)}` });
    } else {
      const text = `every swarmpull host${label(g.row)} finishes, in every run`;
      goals.push(sp ? { text, met: sp.failedRuns === 0, value: `${sp.runs - sp.failedRuns}/${sp.runs} runs` } : unmeasured(text));
    }
  }
  // For every scenario: the pulling processes' memory.
  const rss = rows.filter((r) => r.tool !== 'skopeo' && r.peakRssMiB !== undefined).map((r) => r.peakRssMiB!);
  if (rss.length) {
    const peak = Math.max(...rss);
    goals.push({ text: `peak RSS of every swarmpull process (both modes) <= ${RSS_GOAL_BYTES / 1e6} MB`, met: peak * MiB <= RSS_GOAL_BYTES, value: `${((peak * MiB) / 1e6).toFixed(0)} MB` });
  }
  return goals;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const dash = '–';

export function markdownTable(plan: Plan, summary: PlanSummary, runs: number): string {
  const lines = [
    `### ${plan.title}, median of ${runs} run${runs === 1 ? '' : 's'}`,
    '',
    '| | makespan | vs floor | host p50 / min | registry egress / image | from peers | peak RSS / PSS / USS (max) | CPU s / GiB |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const row of plan.rows) {
    const floor = summary.floorMs[row.label]!;
    const name = (s: string) => (row.label ? `${s}, ${row.label}` : s);
    for (const r of summary.rows.filter((x) => x.row === row.label)) {
      const failed = r.failedRuns ? ` (${r.failedRuns}/${r.runs} runs failed)` : '';
      const cells = [
        name(TOOL_LABEL[r.tool]) + failed,
        r.makespanMs === undefined ? 'failed' : seconds(r.makespanMs),
        r.makespanMs === undefined ? dash : `${(r.makespanMs / floor).toFixed(2)}x`,
        r.hostP50Ms === undefined ? dash : `${seconds(r.hostP50Ms)} / ${seconds(r.hostMinMs!)}`,
        r.egressVsImage === undefined ? dash : `${r.egressVsImage.toFixed(2)}x`,
        r.peersShare === undefined ? dash : `${(r.peersShare * 100).toFixed(0)} %`,
        r.peakRssMiB === undefined ? dash : `${[r.peakRssMiB, r.peakPssMiB, r.peakUssMiB].map((m) => (m === undefined ? dash : m.toFixed(0))).join(' / ')} MiB`,
        r.cpuSecondsPerGiB === undefined ? dash : r.cpuSecondsPerGiB.toFixed(1),
      ];
      lines.push(`| ${cells.join(' | ')} |`);
    }
    lines.push(`| ${name('floor (image bits / link rate)')} | ${seconds(floor)} | 1.00x | | | | | |`);
  }
  if (summary.goals.length) {
    lines.push('');
    for (const g of summary.goals) lines.push(`- ${g.met ? 'met' : '**not met**'}: ${g.text}: ${g.value}`);
  }
  return lines.join('\n');
}
