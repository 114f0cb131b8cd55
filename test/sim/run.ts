// The fleet simulator's command line: one image pulled by N hosts at once, for each N of a list; prints a table
// (host time p50/p99/max against the floor, registry egress against the image) and can write JSON and a chart.
//   npm run sim -- [--hosts-list 100,500,1000,2600] [--size-mib 3072] [--layers 2] [--rate-mbit 1000]
//     [--registry-mbit 10000] [--registry-latency-ms 5] [--connect-ms 20] [--learn 40] [--step-ms 50] [--seed 1]
//     [--start-spread-ms 100] [--registry-share-spread 0] [--registry-hog W] [--claim-ms 15000] [--owner-idle-ms 1000] [--starved-below-blocks B]
//     [--claim-refresh off]   (registry runs do not renew their claims: the code before fetch-policy's claimsToRefresh)
//     [--framing F]   (wire bytes per payload byte: 1.046 for TCP/IP over Ethernet; egress then counts headers)
//     [--piece-kib K]   (instead of the real piece layout: fewer pieces for big fleets)
//     [--strict-owners K [--strict-ms 3000]]   (what-if: the fleet's top-K scorers own a unit at first)
//     [--cpu-cores C [--receive-cpu-s-per-gib X] [--send-cpu-s-per-gib X] [--registry-cpu-s-per-gib X] [--start-cpu-s S]
//       [--busy-cpu-s-per-s B]]   (hosts and registry share C cores, as in the namespace benchmark: cpu.ts)
//     [--json FILE] [--chart FILE.svg]
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fleetChart } from './chart.ts';
import { CPU_20MBIT } from './cpu.ts';
import { summarise, type SimSummary } from './stats.ts';
import { simulate } from './swarm-sim.ts';

const MiB = 2 ** 20;
const usage = (msg: string): never => {
  process.stderr.write(`sim: ${msg}\nusage: node test/sim/run.ts [--hosts-list N,N,...] [--size-mib S] [--layers L] [--rate-mbit R] [--registry-mbit R] [--registry-latency-ms MS] [--connect-ms MS] [--learn K] [--step-ms MS] [--seed S] [--cpu-cores C ...] [--json FILE] [--chart FILE.svg]\n`);
  process.exit(2);
};
let values: Record<string, string | undefined> = {};
try {
  values = parseArgs({
    options: {
      'hosts-list': { type: 'string', default: '100,500,1000,2600' },
      'size-mib': { type: 'string', default: '3072' },
      layers: { type: 'string', default: '2' },
      'rate-mbit': { type: 'string', default: '1000' },
      'registry-mbit': { type: 'string', default: '10000' },
      'registry-latency-ms': { type: 'string', default: '5' },
      'connect-ms': { type: 'string', default: '20' },
      learn: { type: 'string', default: '40' },
      'step-ms': { type: 'string', default: '50' },
      'start-spread-ms': { type: 'string', default: '100' },
      'registry-share-spread': { type: 'string', default: '0' },
      'registry-hog': { type: 'string' },
      'claim-ms': { type: 'string' },
      'claim-refresh': { type: 'string', default: 'on' },
      'owner-idle-ms': { type: 'string' },
      'starved-below-blocks': { type: 'string' },
      'strict-owners': { type: 'string' },
      'piece-kib': { type: 'string' },
      framing: { type: 'string', default: '1' },
      'strict-ms': { type: 'string', default: '3000' },
      seed: { type: 'string', default: '1' },
      'cpu-cores': { type: 'string' },
      'receive-cpu-s-per-gib': { type: 'string', default: String(CPU_20MBIT.receiveCpuSPerGiB) },
      'send-cpu-s-per-gib': { type: 'string', default: String(CPU_20MBIT.sendCpuSPerGiB) },
      'registry-cpu-s-per-gib': { type: 'string', default: String(CPU_20MBIT.registryCpuSPerGiB) },
      'start-cpu-s': { type: 'string', default: String(CPU_20MBIT.startCpuS) },
      'busy-cpu-s-per-s': { type: 'string', default: String(CPU_20MBIT.busyCpuSPerS) },
      json: { type: 'string' },
      chart: { type: 'string' },
    },
  }).values as Record<string, string | undefined>;
} catch (err) {
  usage((err as Error).message);
}
const num = (flag: string, integer = false): number => {
  const n = Number(values[flag]);
  if (!(n >= 0) || (integer && !Number.isInteger(n))) usage(`--${flag} ${values[flag]}: expected a non-negative ${integer ? 'integer' : 'number'}`);
  return n;
};
const hostsList = values['hosts-list']!.split(',').map(Number);
if (hostsList.some((h) => !(Number.isInteger(h) && h >= 2))) usage(`--hosts-list ${values['hosts-list']}: expected integers >= 2`);
if (!['on', 'off'].includes(values['claim-refresh']!)) usage(`--claim-refresh ${values['claim-refresh']}: expected on or off`);
const layers = num('layers', true);
if (layers < 1) usage('--layers: at least 1');
const layerBytes = Math.floor((num('size-mib') * MiB) / layers);
const cpu =
  values['cpu-cores'] === undefined
    ? undefined
    : {
        cores: num('cpu-cores'),
        receiveCpuSPerGiB: num('receive-cpu-s-per-gib'),
        sendCpuSPerGiB: num('send-cpu-s-per-gib'),
        registryCpuSPerGiB: num('registry-cpu-s-per-gib'),
        startCpuS: num('start-cpu-s'),
        busyCpuSPerS: num('busy-cpu-s-per-s'),
      };
if (cpu && !(cpu.cores > 0)) usage('--cpu-cores: more than 0');
if (!(num('framing') >= 1)) usage('--framing: at least 1');
if (values['registry-hog'] !== undefined && !(num('registry-hog') > 0)) usage('--registry-hog: more than 0');
const cpuColumns = cpu ? ' host CPU-s / GiB received | registry CPU-s | CPU saturated |' : '';

const rows: SimSummary[] = [];
process.stdout.write(`| hosts | floor | p50 | p99 | max | p50 / p99 / max vs floor | registry egress / image | duplicates / image / host | peers per blob | lapsed claim views | registry: own / idle owner / alone |${cpuColumns} wall |\n|---|---|---|---|---|---|---|---|---|---|---|${cpu ? '---|---|---|' : ''}---|\n`);
for (const hosts of hostsList) {
  const result = simulate({
    hosts,
    layers: Array(layers).fill(layerBytes),
    rateMbit: num('rate-mbit'),
    registryMbit: num('registry-mbit'),
    registryLatencyMs: num('registry-latency-ms'),
    registryShareSpread: num('registry-share-spread'),
    ...(values['registry-hog'] !== undefined ? { registryHogWeight: num('registry-hog') } : {}),
    framing: num('framing'),
    ...(values['piece-kib'] !== undefined ? { pieceBytes: num('piece-kib', true) * 1024 } : {}),
    ...(values['claim-ms'] !== undefined ? { claimMs: num('claim-ms') } : {}),
    ...(values['claim-refresh'] === 'off' ? { refreshClaims: false } : {}),
    ...(values['starved-below-blocks'] !== undefined ? { starvedBelowBlocks: num('starved-below-blocks') } : {}),
    ...(values['owner-idle-ms'] !== undefined ? { ownerIdleMs: num('owner-idle-ms') } : {}),
    ...(values['strict-owners'] !== undefined ? { strictOwners: { owners: num('strict-owners'), ms: num('strict-ms') } } : {}),
    connectMs: num('connect-ms'),
    learnPeers: num('learn', true),
    discoveryMs: [50, 300],
    startSpreadMs: num('start-spread-ms'),
    stepMs: num('step-ms'),
    seed: num('seed', true),
    limitMs: 3_600_000,
    ...(cpu ? { cpu } : {}),
  });
  const s = summarise(result);
  rows.push(s);
  const x = (v: number) => `${(v / s.floorS).toFixed(2)}x`;
  const cpuCells = s.cpu ? ` ${s.cpu.hostCpuSPerGiB.toFixed(1)} | ${s.cpu.registryS.toFixed(1)} s | ${s.cpu.saturatedS.toFixed(1)} s |` : '';
  process.stdout.write(
    `| ${hosts} | ${s.floorS.toFixed(1)} s | ${s.p50S.toFixed(1)} s | ${s.p99S.toFixed(1)} s | ${s.maxS.toFixed(1)} s | ${x(s.p50S)} / ${x(s.p99S)} / ${x(s.maxS)} | ${s.egressVsImage.toFixed(2)}x | ${s.duplicateVsImage.toFixed(3)} | ${s.meanPeers.toFixed(1)} | ${result.lapsedClaimViews} | ${(['own', 'idleOwner', 'alone'] as const).map((k) => `${(result.registryBy[k] / result.imageBytes).toFixed(2)}x`).join(' / ')} |${cpuCells} ${s.wallS.toFixed(0)} s |\n`,
  );
  if (values.json) writeFileSync(values.json, JSON.stringify(rows, null, 2) + '\n');
}
if (values.chart) {
  const title = `Simulated fleet: ${num('size-mib')} MiB in ${layers} layers, ${num('rate-mbit')} Mbit/s links`;
  writeFileSync(values.chart, fleetChart(rows, title, `registry ${num('registry-mbit')} Mbit/s; host time from its start to its last blob (virtual time)`));
}
