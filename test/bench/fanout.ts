// Fan-out benchmark (issue 4): N hosts in network namespaces on a bridge, a registry in a namespace of its own,
// every link shaped with tbf both ways; all hosts pull the same generated image at one instant. Per scenario it
// runs swarmpull, direct pulls (swarmpull --registry-only, and skopeo copy) and reports medians against the floor
// (image bits / link rate). Needs root. Usage:
//   npm run bench:fanout -- --scenario a|b|c|d|e|f|sweep|all[,…] [--hosts N] [--hosts-list 2,4,8,16]
//     [--size-mib 128] [--small-mib 4] [--layers 4] [--rate-mbit 100] [--slow-rate-mbit 10] [--runs 3]
//     [--json FILE] [--chart FILE.svg] [--no-skopeo] [--tools swarmpull,registry-only,skopeo] [--linger S]
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildImage, pushImage, type FixtureImage } from '../support/fixtures.ts';
import { createLan } from '../support/netns.ts';
import { startRegistry, type Registry } from '../support/registry.ts';
import { lineChart, type Series } from './fanout/chart.ts';
import { TIME_BIN } from './fanout/host-process.ts';
import { preflight, scratchDirs } from './preflight.ts';
import { markdownTable, summarise, type PlanSummary } from './fanout/report.ts';
import { runVariant, type Bench, type RunRecord } from './fanout/run.ts';
import { ALL, plansFor, SCENARIOS, type Plan, type ScenarioId, type Tool } from './fanout/scenarios.ts';

const MiB = 1 << 20;
const log = (msg: string) => process.stderr.write(`fanout: ${msg}\n`);
const usage = (msg: string): never => {
  process.stderr.write(`fanout: ${msg}\nusage: node test/bench/fanout.ts --scenario a|b|c|d|e|f|sweep|all[,...] [--hosts N] [--hosts-list 2,4,8] [--size-mib S] [--small-mib S] [--layers L] [--rate-mbit R] [--slow-rate-mbit R] [--runs K] [--json FILE] [--chart FILE.svg] [--no-skopeo] [--tools swarmpull,registry-only,skopeo] [--linger S]\n`);
  process.exit(2);
};

function parse() {
  try {
    return parseArgs({
      options: {
        scenario: { type: 'string', default: 'all' },
        hosts: { type: 'string' },
        'hosts-list': { type: 'string' },
        'size-mib': { type: 'string', default: '128' },
        'small-mib': { type: 'string', default: '4' },
        layers: { type: 'string', default: '4' },
        'rate-mbit': { type: 'string', default: '100' },
        'slow-rate-mbit': { type: 'string', default: '10' },
        runs: { type: 'string', default: '3' },
        json: { type: 'string' },
        chart: { type: 'string' },
        'no-skopeo': { type: 'boolean', default: false },
        tools: { type: 'string' },
        linger: { type: 'string' },
      },
    }).values;
  } catch (err) {
    return usage((err as Error).message);
  }
}
const values = parse();
const positive = (flag: string, s: string | undefined, integer = true): number | undefined => {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!(n > 0) || (integer && !Number.isInteger(n))) usage(`--${flag} ${s}: expected a positive ${integer ? 'integer' : 'number'}`);
  return n;
};
const scenarios = values.scenario!.split(',').flatMap((s) => (s === 'all' ? ALL : [s])) as ScenarioId[];
for (const s of scenarios) if (!SCENARIOS.includes(s)) usage(`--scenario ${s}: expected one of ${SCENARIOS.join(', ')}, all`);
const hostsList = values['hosts-list']?.split(',').map((s) => positive('hosts-list', s)!);
const params = {
  ...(values.hosts !== undefined ? { hosts: positive('hosts', values.hosts)! } : {}),
  ...(hostsList ? { hostsList } : {}),
  sizeMiB: positive('size-mib', values['size-mib'], false)!,
  smallMiB: positive('small-mib', values['small-mib'], false)!,
  layers: positive('layers', values.layers)!,
  rateMbit: positive('rate-mbit', values['rate-mbit'], false)!,
  slowRateMbit: positive('slow-rate-mbit', values['slow-rate-mbit'], false)!,
};
const runs = positive('runs', values.runs)!;
const lingerOverride = values.linger === undefined ? undefined : Number(values.linger);
const ALL_TOOLS: Tool[] = ['swarmpull', 'registry-only', 'skopeo'];
// --tools swarmpull: a quick look at swarmpull alone (no direct pulls to compare with, no goal on them)
const tools = (values.tools?.split(',') ?? ALL_TOOLS.filter((t) => !(values['no-skopeo'] && t === 'skopeo'))) as Tool[];
for (const t of tools) if (!ALL_TOOLS.includes(t)) usage(`--tools ${t}: expected some of ${ALL_TOOLS.join(', ')}`);
let plans: Plan[] = [];
try {
  plans = scenarios.flatMap((s) => plansFor(s, params));
} catch (err) {
  usage((err as Error).message);
}
if (plans.some((p) => p.hosts > 200)) usage('at most 200 hosts');

preflight('fanout', [TIME_BIN, '/usr/bin/skopeo', '/usr/bin/docker-registry'], 'apt-get install time skopeo docker-registry');
const scratch = scratchDirs();

const work = await mkdtemp(join(tmpdir(), 'swarmpull-fanout-'));
scratch.push(work);
const images = new Map<string, FixtureImage>();
async function imageOf(sizeMiB: number, layers: number): Promise<FixtureImage> {
  const key = `${sizeMiB}-${layers}`;
  let image = images.get(key);
  if (!image) {
    const perLayer = Math.floor((sizeMiB * MiB) / layers);
    image = await buildImage(join(work, 'images', key), 'bench', { layers: Array(layers).fill(perLayer), seed: `fanout-${key}` });
    images.set(key, image);
  }
  return image;
}

interface PlanResult {
  plan: Plan;
  image: { size: number; digest: string; layers: number[] };
  settings: { lingerS: number; timeoutMs: number };
  runs: RunRecord[];
  summary: PlanSummary;
}
const results: PlanResult[] = [];
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

log(`${plans.length} plan(s): ${plans.map((p) => p.key).join(', ')}; ${runs} run(s) of ${tools.join(', ')} each; ${cpus().length} cores`);
// One LAN per scenario, sized for its largest plan; (c) and the sweep run their host counts on its first hosts.
for (const scenario of [...new Set(plans.map((p) => p.scenario))]) {
  const group = plans.filter((p) => p.scenario === scenario);
  const widest = group.reduce((a, p) => (p.hosts > a.hosts ? p : a));
  const image = await imageOf(widest.sizeMiB, widest.layers);
  const lan = await createLan({ hosts: widest.hosts, rateMbit: widest.rateMbit, hostRatesMbit: widest.hostRates, withRegistryHost: true });
  let registry: Registry | undefined;
  try {
    const reg = lan.registryHost!;
    registry = await startRegistry({ netns: reg.ns, addr: `${reg.address}:5000` });
    scratch.push(registry.dir);
    const ref = `${registry.host}/bench/fanout:${image.tag}`;
    const digest = await pushImage(image.layoutDir, image.tag, ref);
    const bench: Bench = { lan, image, ref, digest, work: join(work, 'hosts') };
    await mkdir(bench.work, { recursive: true });
    for (const plan of group) {
      if (plan.sizeMiB !== widest.sizeMiB) throw new Error(`${plan.key}: one image per scenario`);
      const slowest = Math.min(...plan.hostRates);
      const floorS = (bits: number, rate: number) => bits / (rate * 1e6);
      const slowFloorS = floorS(image.size * 8, slowest);
      // Lingering ends by itself once no peer needs anything; this is only its bound: long enough for the slow host.
      const lingerS = lingerOverride ?? Math.ceil(2 * slowFloorS) + 30;
      // Direct pulls share the registry's link: every host's bytes through it, one after another at worst.
      const timeoutMs = Math.ceil((floorS(plan.hosts * image.size * 8, plan.rateMbit) + slowFloorS) * 3 + 180) * 1000;
      const records: RunRecord[] = [];
      for (let run = 0; run < runs; run++) {
        // Rotate the order, so no variant always runs first (page cache, leftover load).
        for (const tool of tools.map((_, k) => tools[(k + run) % tools.length]!)) {
          const r = await runVariant(bench, plan, tool, run, { lingerS, timeoutMs, log });
          records.push(r);
          for (const w of r.waves) {
            const done = w.hosts.filter((h) => h.timeMs !== undefined).map((h) => h.timeMs!);
            const lag = Math.max(0, ...w.hosts.map((h) => h.startLagMs ?? 0));
            log(
              `${plan.key} run ${run + 1} ${tool}${r.waves.length > 1 ? ` wave ${w.wave + 1}` : ''}: ` +
                `${done.length}/${w.hosts.length} ready, last at ${done.length ? seconds(Math.max(...done)) : '-'}, ` +
                `all exited at ${seconds(w.wallMs)}; registry sent ${(w.registryEgressBytes / MiB).toFixed(1)} MiB ` +
                `(${(w.registryEgressBytes / image.size).toFixed(2)}x the image)` +
                (tool === 'skopeo' ? '' : `; start lag <= ${lag} ms`) +
                (w.kill ? `; killed ${w.kill.host} at ${seconds(w.kill.afterMs)} with ${(w.kill.rxBytes / MiB).toFixed(1)} MiB in` : ''),
            );
          }
        }
      }
      const summary = summarise(plan, image.size, records);
      results.push({
        plan,
        image: { size: image.size, digest, layers: [image.config.size, ...image.layers.map((l) => l.size)] },
        settings: { lingerS, timeoutMs },
        runs: records,
        summary,
      });
      process.stdout.write(`\n${markdownTable(plan, summary, runs)}\n`);
    }
  } finally {
    await registry?.stop().catch(() => {});
    await lan.destroy();
  }
}

if (values.json) {
  const doc = {
    generatedAt: new Date().toISOString(),
    argv: process.argv.slice(2),
    machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version, bin: process.env.SWARMPULL_BIN ?? 'bin/swarmpull.ts' },
    results,
  };
  await writeFile(values.json, JSON.stringify(doc, null, 1) + '\n');
  log(`raw numbers in ${values.json}`);
}

if (values.chart) {
  // The sweep if there is one, else every first-wave plan of the big image: (a) and (b).
  const sweep = results.filter((r) => r.plan.scenario === 'sweep');
  const points = sweep.length ? sweep : results.filter((r) => r.plan.scenario === 'a' || r.plan.scenario === 'b');
  if (!points.length) {
    log('--chart: no sweep, (a) or (b) results to draw; run --scenario sweep');
  } else {
    const first = points[0]!;
    const line = (tool: Tool) =>
      points.flatMap((r) => {
        const row = r.summary.rows.find((x) => x.tool === tool);
        return row?.makespanMs === undefined ? [] : [{ x: r.plan.hosts, y: row.makespanMs / 1000 }];
      });
    const series: Series[] = [
      { name: 'swarmpull', color: '#1f77b4', points: line('swarmpull') },
      { name: 'direct (--registry-only)', color: '#d62728', points: line('registry-only') },
      ...(tools.includes('skopeo') ? [{ name: 'direct (skopeo copy)', color: '#ff7f0e', dashed: true, points: line('skopeo') }] : []),
      { name: 'floor (image / link rate)', color: '#555', dashed: true, points: points.map((r) => ({ x: r.plan.hosts, y: r.summary.floorMs['']! / 1000 })) },
    ];
    const svg = lineChart({
      title: 'Time until every host has the image',
      subtitle: `${(first.image.size / MiB).toFixed(0)} MiB in ${first.plan.layers} layers, every link ${first.plan.rateMbit} Mbit/s, median of ${runs} run${runs === 1 ? '' : 's'}`,
      xLabel: 'hosts pulling at once',
      yLabel: 'makespan (s)',
      series,
    });
    await writeFile(values.chart, svg);
    log(`chart in ${values.chart}`);
  }
}
