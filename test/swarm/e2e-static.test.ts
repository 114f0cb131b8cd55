// End to end without multicast: static peers (--no-mdns --peers), a late joiner served by `swarmpull serve`,
// pulls from peers alone (--no-registry), and a registry that is gone.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSwarmLan, ok, skipWithoutNetns, MiB, type PullRun, type SwarmLan } from './swarm-lan.ts';

const skip = skipWithoutNetns;

const mib = (n: number) => `${(n / MiB).toFixed(2)} MiB`;

describe('static peers, seeders and the registry gone', { skip }, () => {
  let s: SwarmLan;
  const servers: PullRun[] = [];
  /** every host's address at the default port, as an inventory would list them (each host finds itself too) */
  let everyone: string;
  before(async () => {
    s = await createSwarmLan({ hosts: 4, rateMbit: 50, layers: [5 * MiB, 7 * MiB], seed: 'static' });
    everyone = s.hosts.map((h) => h.address).join(',');
  });
  after(async () => {
    for (const r of servers) r.proc.kill('SIGTERM');
    await s?.destroy();
  });

  /** `swarmpull serve` on a host's store, ready once it logs what it serves */
  async function serve(host: number, store?: string): Promise<PullRun> {
    const r = s.serve(host, ['--no-mdns'], store ? { store } : {});
    servers.push(r);
    await r.waitForStderr(/serving \d+ blobs/, 20_000);
    return r;
  }

  test('--no-mdns --peers: two hosts swap pieces; a late joiner gets every layer from seeders', async (t) => {
    const outs = await Promise.all([0, 1].map((i) => s.pull(i, ['--no-mdns', '--peers', everyone]).done));
    const first = outs.map((o, i) => ok(o, `h${i}`));
    // Each found the other through --peers (and itself, which it must skip); pieces went at least one way.
    for (const [i, j] of first.entries()) assert.equal(j.peers.seen, 1, `h${i}: ${JSON.stringify(j.peers)}\n${outs[i]!.stderr}`);
    assert.ok(first[0]!.bytes.peers + first[1]!.bytes.peers > 0, outs.map((o) => o.stderr).join('\n'));
    t.diagnostic(`h0, h1 together: from peers ${first.map((j) => mib(j.bytes.peers)).join(', ')}, from the registry ${first.map((j) => mib(j.bytes.registry)).join(', ')}`);

    // Both seed what they pulled; h2 joins after they finished.
    await serve(0);
    await serve(1);
    const late = s.pull(2, ['--no-mdns', '--peers', `${s.hosts[0]!.address}:7881,${s.hosts[1]!.address}`]);
    const j = ok(await late.done, 'h2 (late)');
    await s.validate(late);
    t.diagnostic(`late joiner: ${mib(j.bytes.peers)} from peers, ${mib(j.bytes.registry)} from the registry (config ${s.image.config.size} bytes)`);
    assert.equal(j.peers.used, 2, `both seeders should have served: ${JSON.stringify(j.peers)}\n${late.stderr}`);
    // Every layer byte from the seeders; the config (one small piece) may come from either side.
    assert.ok(j.bytes.registry <= s.image.config.size, `late joiner took ${j.bytes.registry} bytes from the registry:\n${late.stderr}`);
    assert.ok(j.bytes.peers >= s.image.size - s.image.config.size);
  });

  test('--no-registry: blobs from a seeder only; the registry sends the manifest and nothing else', async () => {
    // h0's store holds the image (previous test) and its `serve` is still running.
    const tx = s.registryTx();
    const r = s.pull(3, ['--no-mdns', '--peers', s.hosts[0]!.address, '--no-registry']);
    const j = ok(await r.done, 'h3 --no-registry');
    const egress = s.registryTx() - tx;
    await s.validate(r);
    assert.equal(j.bytes.registry, 0);
    // (a second seeder, found by peer exchange, may send a few endgame duplicates)
    assert.ok(j.bytes.peers >= s.image.size, (await r.done).stderr);
    assert.ok(egress < 64 * 1024, `registry sent ${egress} bytes for a manifest`);
  });

  test('registry gone: a pull by tag fails with exit 6 and one line', async () => {
    await s.stopRegistry();
    const r = s.pull(3, ['--no-mdns', '--peers', s.hosts[0]!.address], { store: 'gone', timeoutMs: 120_000, debug: false });
    const o = await r.done;
    assert.equal(o.code, 6, `exit ${o.code ?? o.signal}:\n${o.stderr}`);
    assert.equal(o.stdout, '');
    const lines = o.stderr.split('\n').filter((l) => l.startsWith('swarmpull: '));
    assert.equal(lines.length, 1, o.stderr);
    assert.match(lines[0]!, /unreachable|connect|refused/i);
    assert.doesNotMatch(o.stderr, /^\s+at /m, 'a stack trace without --debug');
  });
});
