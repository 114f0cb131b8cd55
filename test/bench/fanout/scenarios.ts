// The fan-out scenarios of issue 4 as plans: who pulls when, over which links, which rows the table shows,
// and which goals the medians must meet.
export type ScenarioId = 'a' | 'b' | 'c' | 'd' | 'e' | 'f' | 'sweep';
export const SCENARIOS: ScenarioId[] = ['a', 'b', 'c', 'd', 'e', 'f', 'sweep'];
/** what `--scenario all` runs: the chart's sweep is asked for by name */
export const ALL: ScenarioId[] = ['a', 'b', 'c', 'd', 'e', 'f'];

export type Tool = 'swarmpull' | 'registry-only' | 'skopeo';
export const TOOL_LABEL: Record<Tool, string> = {
  swarmpull: 'swarmpull',
  'registry-only': 'direct (`--registry-only`)',
  skopeo: 'direct (`skopeo copy`)',
};

/** a table row: some hosts of one wave */
export interface RowSpec {
  label: string;
  wave: number;
  hosts: number[];
}

export interface Plan {
  /** unique per run of the harness, e.g. "a", "c@4", "sweep@16" */
  key: string;
  scenario: ScenarioId;
  title: string;
  hosts: number;
  sizeMiB: number;
  layers: number;
  /** link rate of each host; the registry's link has `rateMbit` */
  rateMbit: number;
  hostRates: number[];
  /** host indices started together, wave after wave (the next when the previous one is done) */
  waves: number[][];
  /** SIGKILLed once it has received half the image */
  killHost?: number;
  rows: RowSpec[];
  /** goal thresholds, checked by the report */
  goals: GoalSpec[];
}

export type GoalSpec =
  | { kind: 'makespan'; row: string; maxVsFloor: number }
  | { kind: 'egress'; row: string; maxVsImage: number }
  | { kind: 'not-slower'; row: string; than: Tool }
  | { kind: 'all-finish'; row: string };

/** peak RSS per pulling process, for every scenario: 150 MB */
export const RSS_GOAL_BYTES = 150e6;

export interface PlanParams {
  /** --hosts, or the scenario's default */
  hosts?: number;
  /** --hosts-list: host counts for (c) and the sweep */
  hostsList?: number[];
  sizeMiB: number;
  smallMiB: number;
  layers: number;
  rateMbit: number;
  slowRateMbit: number;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const hostsText = (n: number) => `${n} host${n === 1 ? '' : 's'}`;

export function plansFor(id: ScenarioId, p: PlanParams): Plan[] {
  const image = (sizeMiB: number) => `${sizeMiB} MiB in ${p.layers} layers`;
  const base = (key: string, hosts: number, sizeMiB = p.sizeMiB) => ({
    key,
    scenario: id,
    hosts,
    sizeMiB,
    layers: p.layers,
    rateMbit: p.rateMbit,
    hostRates: range(hosts).map(() => p.rateMbit),
    waves: [range(hosts)],
  });
  /** all hosts at once; goals: makespan within `makespan` x floor, registry egress within 1.25x the image */
  const firstWave = (key: string, hosts: number, title: string, makespan?: number): Plan => ({
    ...base(key, hosts),
    title,
    rows: [{ label: '', wave: 0, hosts: range(hosts) }],
    goals: makespan === undefined ? [] : [
      { kind: 'makespan', row: '', maxVsFloor: makespan },
      { kind: 'egress', row: '', maxVsImage: 1.25 },
    ],
  });
  switch (id) {
    case 'a': {
      const n = p.hosts ?? 8;
      return [firstWave('a', n, `(a) first wave: ${hostsText(n)}, ${image(p.sizeMiB)}, ${p.rateMbit} Mbit/s`, 1.3)];
    }
    case 'b': {
      const n = p.hosts ?? 16;
      return [firstWave('b', n, `(b) first wave: ${hostsText(n)}, ${image(p.sizeMiB)}, ${p.rateMbit} Mbit/s`, 1.5)];
    }
    case 'c':
      // "never slower than direct pulls at any host count": every count of the list
      return (p.hostsList ?? (p.hosts ? [p.hosts] : [2, 4, 8])).map((n) => ({
        ...base(`c@${n}`, n, p.smallMiB),
        title: `(c) small image: ${hostsText(n)}, ${image(p.smallMiB)}, ${p.rateMbit} Mbit/s`,
        rows: [{ label: '', wave: 0, hosts: range(n) }],
        goals: [
          { kind: 'not-slower', row: '', than: 'registry-only' },
          { kind: 'not-slower', row: '', than: 'skopeo' },
        ],
      }));
    case 'd': {
      const n = p.hosts ?? 8;
      if (n < 2) throw new RangeError('(d) needs at least 2 hosts');
      const first = range(Math.ceil(n / 2));
      const late = range(n).slice(first.length);
      return [{
        ...base('d', n),
        title: `(d) late joiners: ${hostsText(first.length)}, then ${late.length} more when they are done; ${image(p.sizeMiB)}, ${p.rateMbit} Mbit/s`,
        waves: [first, late],
        rows: [
          { label: 'first wave', wave: 0, hosts: first },
          { label: 'late joiners', wave: 1, hosts: late },
        ],
        goals: [
          { kind: 'makespan', row: 'late joiners', maxVsFloor: 1.2 },
          // "registry egress for them near zero": manifests and nothing much else
          { kind: 'egress', row: 'late joiners', maxVsImage: 0.05 },
        ],
      }];
    }
    case 'e': {
      const n = p.hosts ?? 8;
      if (n < 2) throw new RangeError('(e) needs at least 2 hosts');
      const slow = n - 1;
      return [{
        ...base('e', n),
        title: `(e) one slow link: ${hostsText(n)}, host ${slow} at ${p.slowRateMbit} Mbit/s, the rest at ${p.rateMbit} Mbit/s; ${image(p.sizeMiB)}`,
        hostRates: range(n).map((i) => (i === slow ? p.slowRateMbit : p.rateMbit)),
        rows: [
          { label: 'fast hosts', wave: 0, hosts: range(n).filter((i) => i !== slow) },
          { label: 'slow host', wave: 0, hosts: [slow] },
        ],
        goals: [
          { kind: 'makespan', row: 'fast hosts', maxVsFloor: 1.3 },
          { kind: 'egress', row: 'fast hosts', maxVsImage: 1.25 },
        ],
      }];
    }
    case 'f': {
      const n = p.hosts ?? 8;
      if (n < 2) throw new RangeError('(f) needs at least 2 hosts');
      const victim = 1 % n;
      return [{
        ...base('f', n),
        title: `(f) one host killed halfway: ${hostsText(n)}, host ${victim} SIGKILLed at half the image; ${image(p.sizeMiB)}, ${p.rateMbit} Mbit/s`,
        killHost: victim,
        rows: [{ label: 'survivors', wave: 0, hosts: range(n).filter((i) => i !== victim) }],
        goals: [{ kind: 'all-finish', row: 'survivors' }],
      }];
    }
    case 'sweep':
      return (p.hostsList ?? [2, 4, 8, 16]).map((n) => firstWave(`sweep@${n}`, n, `sweep: ${hostsText(n)}, ${image(p.sizeMiB)}, ${p.rateMbit} Mbit/s`));
  }
}
