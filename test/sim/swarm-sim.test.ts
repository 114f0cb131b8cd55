// The fleet simulator at a small size: what any sound model of a pull must show. Run after changing the simulator
// or the decision code it drives (lib/swarm/fetch-policy.ts, picker.ts, owner.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { summarise } from './stats.ts';
import { seeded } from '../support/random.ts';
import { registryWeights, simulate, type SimConfig } from './swarm-sim.ts';

const MiB = 2 ** 20;
// 40 hosts: past MAX_PEERS_PER_BLOB + 1, so not a full mesh (pieces take several hops, owners cannot all hear
// each other); 3 layers of uneven size, one smaller than a piece run
const config: SimConfig = {
  hosts: 40,
  layers: [6 * MiB, 3 * MiB + 12345, 200_000],
  rateMbit: 20,
  registryMbit: 200,
  registryLatencyMs: 5,
  connectMs: 20,
  learnPeers: 40,
  discoveryMs: [50, 300],
  startSpreadMs: 100,
  stepMs: 10,
  seed: 7,
  limitMs: 600_000,
};

test('every host gets the whole image, no faster than its link allows, and the registry sent each piece at least once', () => {
  const r = simulate(config);
  const s = summarise(r);
  assert.equal(r.hosts.length, config.hosts);
  for (const [i, h] of r.hosts.entries()) assert.ok(h.doneAt >= 0, `host ${i} did not finish`);
  for (const [i, kept] of r.keptBytes.entries()) assert.equal(kept, r.imageBytes, `host ${i} kept ${kept} bytes of ${r.imageBytes}`);
  assert.equal(r.registryPiecesCovered, r.pieces, 'a piece never came from the registry');
  assert.ok(r.registryBytes >= r.imageBytes, `registry sent ${r.registryBytes} < image ${r.imageBytes}`);
  assert.ok(s.minS >= s.floorS, `a host took ${s.minS} s, under the floor ${s.floorS} s`);
  // beyond 33 hosts nobody is a full mesh, and nobody is over the limit
  assert.ok(r.meanPeers <= 32 && r.meanPeers > 8, `mean peers ${r.meanPeers}`);
  // peers carry most of the image: a model where the registry did the work would pass the checks above
  assert.ok(s.egressVsImage < 4, `registry egress ${s.egressVsImage}x the image`);
});

test('the same seed gives the same run', () => {
  const small = { ...config, hosts: 12 };
  const a = simulate(small);
  const b = simulate(small);
  assert.deepEqual(a.hosts, b.hosts);
  assert.equal(a.registryBytes, b.registryBytes);
});

test('framing: links carry payload at their rate / framing, and egress is counted on the wire', () => {
  const framing = 1.046;
  // one host alone with the registry at its own link's rate: the link's payload rate sets its time
  const alone = { ...config, hosts: 1, layers: [6 * MiB], registryMbit: config.rateMbit };
  const plain = summarise(simulate(alone));
  const r = simulate({ ...alone, framing });
  const s = summarise(r);
  const slower = s.maxS - plain.maxS;
  const expected = plain.floorS * (framing - 1);
  assert.ok(Math.abs(slower - expected) <= (2 * config.stepMs) / 1000, `framing added ${slower} s, expected ${expected} s`);
  assert.ok(s.minS >= s.floorS * framing, `the host took ${s.minS} s, under floor x framing ${s.floorS * framing} s`);
  assert.equal(s.egressVsImage, (r.registryBytes * framing) / r.imageBytes);
});

test("registry shares: one request in the fleet's hosts x 4 is the hog; the others within the spread", () => {
  const draw = registryWeights({ hosts: 8, registryHogWeight: 15, registryShareSpread: 0.2 }, seeded(11));
  const weights = Array.from({ length: 32_000 }, draw);
  const hogs = weights.filter((w) => w === 15).length;
  // expected 1,000 of 32,000 (1 in 32); binomial sd ~31
  assert.ok(hogs > 880 && hogs < 1120, `${hogs} hogs in 32,000 requests`);
  for (const w of weights) assert.ok(w === 15 || (w >= 0.8 && w <= 1.2), `weight ${w}`);
  const fair = registryWeights({ hosts: 8 }, seeded(11));
  for (let i = 0; i < 1000; i++) assert.equal(fair(), 1);
});

test('beyond a full mesh, hosts busy with peers leave the registry to hosts that run short (STARVED_BELOW_BLOCKS)', () => {
  // 60 hosts, 512 MiB in 2 MiB pieces at 1 Gbit/s, a 10 Gbit/s registry: with a registry run whenever a slot was free,
  // the registry sent 3.34x the image (seed 1), 2.26x with the rule
  const r = simulate({ ...config, hosts: 60, layers: [256 * MiB, 256 * MiB], rateMbit: 1000, registryMbit: 10_000, pieceBytes: 2 * MiB, stepMs: 50, seed: 1 });
  const s = summarise(r);
  for (const [i, h] of r.hosts.entries()) assert.ok(h.doneAt >= 0, `host ${i} did not finish`);
  assert.ok(s.egressVsImage < 2.8, `registry egress ${s.egressVsImage.toFixed(2)}x the image`);
});
