// The simulator's CPU model (cpu.ts): processor sharing of a few cores among the fleet's processes, on cases whose
// shares are known by hand, and its effect on a whole simulated pull.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Cpu, fairShares, type CpuConfig } from './cpu.ts';
import { Flow, Network } from './network.ts';
import { summarise } from './stats.ts';
import { simulate, type SimConfig } from './swarm-sim.ts';

const GiB = 2 ** 30;
/** bytes per ms that cost one core at `cpuSPerGiB` */
const oneCore = (cpuSPerGiB: number) => GiB / (cpuSPerGiB * 1000);
const near = (actual: number, expected: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `${what}: ${actual}, expected ${expected}`);

test('fair shares: everyone gets what it asks while the cores suffice, else an equal level with the small askers served', () => {
  const out = new Float64Array(3);
  assert.equal(fairShares(Float64Array.from([0.5, 0.25, 1]), 2, out), 1.75);
  assert.deepEqual([...out], [0.5, 0.25, 1]);
  assert.equal(fairShares(Float64Array.from([0.2, 3, 1]), 2, out), 2);
  assert.deepEqual([...out], [0.2, 0.9, 0.9]);
  fairShares(Float64Array.from([4, 4, 0]), 2, out);
  assert.deepEqual([...out], [1, 1, 0]);
});

const config: CpuConfig = { cores: 1, receiveCpuSPerGiB: 10, sendCpuSPerGiB: 0, registryCpuSPerGiB: 0, startCpuS: 0 };

test('flows keep their link rates while the CPU suffices, and are scaled to it when it does not', () => {
  // two receivers, each at a rate that costs 0.4 cores: 0.8 of 1 core, no change
  const rate = 0.4 * oneCore(10);
  const links = new Float64Array([rate, rate, 2 * rate]);
  const net = new Network(links, links);
  const cpu = new Cpu(config, 2, 2);
  net.limit = (flows, dt) => void cpu.limit(flows, dt);
  const a = new Flow(2, 0);
  const b = new Flow(2, 1);
  for (const f of [a, b]) net.send(f, { bytes: 1e12, left: 1e12, cancelled: false, done: () => {} });
  cpu.start(0, () => {});
  cpu.start(1, () => {});
  net.advance(0, 1);
  near(a.rate, rate, 'within the cores');
  near(cpu.used[0]!, 0.4, 'CPU-ms used by host 0 in 1 ms');
  // half a core: both ask 0.4, each gets 0.25, so each flow goes at 0.25 / 0.4 of its link's rate
  const half = new Cpu({ ...config, cores: 0.5 }, 2, 2);
  net.limit = (flows, dt) => void half.limit(flows, dt);
  net.advance(1, 1);
  near(a.rate, rate * (0.25 / 0.4), 'flow a scaled');
  near(b.rate, rate * (0.25 / 0.4), 'flow b scaled');
  assert.equal(half.saturatedMs, 1);
});

test("a flow goes at the pace of its slower end: the sender's CPU share counts too", () => {
  // the registry (node 2) costs 1 core per oneCore(10) bytes/ms sent and asks for 2 cores' worth; 1 core: half speed
  const rate = 2 * oneCore(10);
  const links = new Float64Array([rate, rate, rate]);
  const net = new Network(links, links);
  const cpu = new Cpu({ ...config, receiveCpuSPerGiB: 0, registryCpuSPerGiB: 10 }, 2, 2);
  net.limit = (flows, dt) => void cpu.limit(flows, dt);
  const f = new Flow(2, 0);
  net.send(f, { bytes: 1e12, left: 1e12, cancelled: false, done: () => {} });
  net.advance(0, 1);
  near(f.rate, rate / 2, 'registry flow');
});

test("start-up: a host begins once it has had its start-up CPU, shared with the others'", () => {
  const cpu = new Cpu({ ...config, cores: 2, startCpuS: 0.3 }, 8, 8);
  const begunAt: number[] = [];
  for (let h = 0; h < 8; h++) cpu.start(h, () => begunAt.push(h));
  let now = 0;
  while (begunAt.length < 8 && now < 10_000) {
    for (const begin of cpu.limit([], 10)) begin();
    now += 10;
  }
  // 8 x 0.3 CPU-s on 2 cores: 1.2 s, all together (equal shares)
  assert.equal(now, 1200);
  near(cpu.used.reduce((a, b) => a + b, 0), 2400, 'CPU-ms of start-up');
  // one host alone gets one core, not two: 0.3 s
  const alone = new Cpu({ ...config, cores: 2, startCpuS: 0.3 }, 1, 1);
  let t = 0;
  let started = false;
  alone.start(0, () => (started = true));
  while (!started) {
    for (const begin of alone.limit([], 10)) begin();
    t += 10;
  }
  assert.equal(t, 300);
});

const fleet: SimConfig = {
  hosts: 8,
  layers: [4 * 2 ** 20, 2 * 2 ** 20],
  rateMbit: 100,
  registryMbit: 100,
  registryLatencyMs: 5,
  connectMs: 20,
  learnPeers: 40,
  discoveryMs: [50, 300],
  startSpreadMs: 100,
  stepMs: 10,
  seed: 5,
  limitMs: 600_000,
};

test('a whole pull: plenty of cores (and no start-up cost) change nothing; too few make every host slower', () => {
  const free = summarise(simulate(fleet));
  const plenty = simulate({ ...fleet, cpu: { cores: 1000, receiveCpuSPerGiB: 20, sendCpuSPerGiB: 5, registryCpuSPerGiB: 10, startCpuS: 0 } });
  assert.deepEqual(plenty.hosts, simulate(fleet).hosts, 'CPU that never runs short changes no host time');
  // each host asks ~0.27 cores at 100 Mbit/s (12.5 MB/s in, about as much out): 8 of them on half a core
  const starved = simulate({ ...fleet, cpu: { cores: 0.5, receiveCpuSPerGiB: 20, sendCpuSPerGiB: 5, registryCpuSPerGiB: 10, startCpuS: 0.3 } });
  const s = summarise(starved);
  for (const [i, kept] of starved.keptBytes.entries()) assert.equal(kept, starved.imageBytes, `host ${i} kept ${kept}`);
  assert.ok(s.minS > 2 * free.maxS, `starved: fastest host ${s.minS} s, unlimited: slowest ${free.maxS} s`);
  assert.ok(starved.cpu && starved.cpu.saturatedS > 0.5 * s.maxS, 'the CPU was short most of the time');
  // the CPU used cannot exceed the cores over the run
  const usedS = starved.cpu.hostS.reduce((a, b) => a + b, 0) + starved.cpu.registryS;
  const lastDone = Math.max(...starved.hosts.map((h) => h.doneAt)) / 1000;
  assert.ok(usedS <= 0.5 * lastDone + 0.5 * fleet.stepMs / 1000, `used ${usedS} CPU-s in ${lastDone} s on 0.5 cores`);
});
