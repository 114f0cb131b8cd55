// End to end, the first wave: hosts in network namespaces pull the same image at the same moment from a real
// registry in a namespace of its own, over shaped links, discovering each other with mDNS. The registry's veth
// counter is its egress.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSwarmLan, ok, skipWithoutNetns, MiB, type SwarmLan } from './swarm-lan.ts';

const skip = skipWithoutNetns;
const RATE_MBIT = 50;

/** exit 0 and a --json result, or a failure message with the pull's stderr */
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

describe('the first wave on a LAN', { skip }, () => {
  let s: SwarmLan;
  before(async () => {
    s = await createSwarmLan({ hosts: 4, rateMbit: RATE_MBIT, layers: [6 * MiB, 10 * MiB], seed: 'fanout' });
  });
  after(async () => {
    await s?.destroy();
  });

  test('three hosts pulling at once share pieces; the registry sends the image about once', async (t) => {
    const size = s.image.size;
    // The baseline: one host alone (mDNS on, nobody to find).
    let tx = s.registryTx();
    const alone = await s.pull(3).done;
    const aloneJson = ok(alone, 'h3 alone');
    const aloneEgress = s.registryTx() - tx;
    assert.equal(aloneJson.bytes.peers, 0);
    t.diagnostic(`one host alone: pull ${aloneJson.durationMs} ms (process ${Math.round(alone.ms)} ms), registry egress ${mib(aloneEgress)} for ${mib(size)}`);

    tx = s.registryTx();
    const t0 = performance.now();
    const runs = [0, 1, 2].map((i) => s.pull(i));
    const outs = await Promise.all(runs.map((r) => r.done));
    const makespan = performance.now() - t0;
    const egress = s.registryTx() - tx;
    const results = outs.map((o, i) => ok(o, `h${i}`));
    for (const r of runs) await s.validate(r);
    for (const [i, j] of results.entries()) {
      assert.equal(j.digest, s.image.digest);
      assert.equal(j.bytes.total, size);
      assert.ok(j.bytes.peers > 0, `h${i} got nothing from peers: ${JSON.stringify(j.bytes)}\n${outs[i]!.stderr}`);
      assert.ok(j.peers.used >= 1, `h${i}: ${JSON.stringify(j.peers)}`);
    }
    t.diagnostic(
      `three hosts at once: makespan ${Math.round(makespan)} ms (processes incl. start-up and linger), pulls ` +
        `${results.map((j) => j.durationMs).join(', ')} ms; from the registry ${results.map((j) => mib(j.bytes.registry)).join(', ')}, ` +
        `from peers ${results.map((j) => mib(j.bytes.peers)).join(', ')}`,
    );
    t.diagnostic(`registry egress ${mib(egress)} for a ${mib(size)} image (${(egress / size).toFixed(2)}x); three direct pulls would send ${mib(3 * size)}`);
    assert.ok(egress <= 1.5 * size + MiB, `registry egress ${egress} for an image of ${size}`);
  });

  test('a host killed mid-transfer: the others finish; the killed one resumes from its pieces', async (t) => {
    const size = s.image.size;
    const runs = [0, 1, 2].map((i) => s.pull(i, [], { store: 'kill' }));
    const victim = runs[1]!;
    // Kill h1 once it has a third of the image and has served some of it to the others (at the latest when it
    // has most of the image).
    const rx0 = s.lan.rxBytes(1);
    const tx0 = s.lan.txBytes(1);
    const midway = () => {
      const rx = s.lan.rxBytes(1) - rx0;
      return (rx >= size / 3 && s.lan.txBytes(1) - tx0 >= 512 * 1024) || rx >= 0.8 * size;
    };
    const deadline = Date.now() + 30_000;
    while (!midway() && Date.now() < deadline && victim.proc.exitCode === null) await sleep(20);
    const served = s.lan.txBytes(1) - tx0;
    assert.equal(victim.proc.exitCode, null, `h1 ended before it could be killed:\n${victim.stderr}`);
    victim.proc.kill('SIGKILL');
    const killedAt = performance.now();
    t.diagnostic(`killed h1 after it received ${mib(s.lan.rxBytes(1) - rx0)} and sent ${mib(served)}`);
    assert.ok(served > 256 * 1024, `h1 served only ${served} bytes before the kill: not a swarm member worth killing`);

    const [a, killed, b] = await Promise.all(runs.map((r) => r.done));
    const after = performance.now() - killedAt;
    assert.equal(killed!.signal, 'SIGKILL');
    t.diagnostic(`h0 and h2 ended after ${Math.round(a!.ms)} and ${Math.round(b!.ms)} ms (pulls ${a!.json?.durationMs} and ${b!.json?.durationMs} ms)`);
    // Nothing waits on the dead host: not its registry claims (15 s), not its requests (8 s).
    assert.ok(after < 8000, `h0 and h2 needed ${Math.round(after)} ms after the kill:\n${a!.stderr}\n${b!.stderr}`);
    for (const [o, r, who] of [[a!, runs[0]!, 'h0'], [b!, runs[2]!, 'h2']] as const) {
      const j = ok(o, who);
      assert.equal(j.bytes.total, size);
      await s.validate(r);
    }

    // The killed host starts again: the pieces it had are kept (the bitfield is persisted as pieces land).
    const again = await s.pull(1, [], { store: 'kill' }).done;
    const j = ok(again, 'h1 again');
    t.diagnostic(`h1 again: ${mib(j.bytes.cached)} cached, ${mib(j.bytes.peers)} from peers, ${mib(j.bytes.registry)} from the registry`);
    assert.ok(j.bytes.cached > 0, `nothing resumed: ${JSON.stringify(j.bytes)}`);
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
