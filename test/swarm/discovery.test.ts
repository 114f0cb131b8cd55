// mDNS discovery between real processes in network namespaces on a bridge: no mocks, real multicast.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { canUseNetns, createLan, type Lan } from '../support/netns.ts';
import { subtypeName } from '../../lib/swarm/ids.ts';
import { MdnsDiscovery } from '../../lib/swarm/mdns.ts';
import { LanPeer, HOSTILE_SCRIPT } from './lan-peer.ts';

const skip = canUseNetns() ? false : 'needs root and working `ip netns`';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const newId = () => randomBytes(20).toString('hex');
const WIRE_PORT = 7000;

test('MdnsDiscovery checks its options and bounds its lookups (no socket needed)', () => {
  assert.throws(() => new MdnsDiscovery({ port: 0, interfaceAddress: '10.0.0.1' }), RangeError);
  assert.throws(() => new MdnsDiscovery({ port: 70000, interfaceAddress: '10.0.0.1' }), RangeError);
  assert.throws(() => new MdnsDiscovery({ port: 7000, interfaceAddress: 'fd00::1' }), RangeError);
  const d = new MdnsDiscovery({ port: 7000, interfaceAddress: '10.0.0.1', maxLookups: 2 });
  assert.match(d.instance, /^[a-z0-9-]+-7000-[0-9a-f]{8}\._swarmpull\._tcp\.local$/);
  assert.equal(d.target, d.instance.replace('._swarmpull._tcp.local', '.local'));
  d.lookup(Buffer.alloc(20, 1));
  d.lookup(Buffer.alloc(20, 1)); // the same id again is no new lookup
  d.lookup(Buffer.alloc(20, 2));
  assert.throws(() => d.lookup(Buffer.alloc(20, 3)), RangeError);
  d.stopLookup(Buffer.alloc(20, 1));
  d.lookup(Buffer.alloc(20, 3));
  assert.throws(() => d.announce(Buffer.alloc(19)), TypeError);
});

/** A LAN of `hosts` namespaces for a suite, torn down after it; start(i) runs a discovery peer on host i. */
function peerLan(hosts: number) {
  let lan: Lan;
  const peers: LanPeer[] = [];
  before(async () => {
    lan = await createLan({ hosts });
  });
  after(async () => {
    await Promise.all(peers.map((p) => p.stop()));
    await lan?.destroy();
  });
  /** a peer the suite started itself: stopped with the others */
  const track = (p: LanPeer) => (peers.push(p), p);
  return {
    lan: () => lan,
    track,
    start: (i: number, args: string[]) => track(new LanPeer(lan, lan.hosts[i]!, WIRE_PORT + i, args)),
    endpoint: (i: number) => `${lan.hosts[i]!.address}:${WIRE_PORT + i}`,
  };
}

describe('mDNS discovery on a LAN', { skip }, () => {
  const { start, endpoint } = peerLan(4);

  test('hosts find each other, late joiners too; unknown ids stay silent; withdraw stops answers', async (t) => {
    const A = newId(); // announced by everyone
    const B = newId(); // looked up by everyone, announced by nobody
    const first = [0, 1, 2].map((i) => start(i, ['--announce', A, '--lookup', `${A},${B}`]));
    const t0 = performance.now();

    // each of the first three finds the other two
    await Promise.all(first.map((p, i) => p.waitForPeers(A, [0, 1, 2].filter((j) => j !== i).map(endpoint), 5000)));
    const allFound = performance.now() - t0;
    const firstPeer = first.map((p) => p.events.find((e) => e.ev === 'peer')!.t);
    const lastPeer = first.map((p) => Math.max(...p.events.filter((e) => e.ev === 'peer' && e.id === A).map((e) => e.t)));
    t.diagnostic(`start() → first peer per host: ${firstPeer.join(', ')} ms; → both peers: ${lastPeer.join(', ')} ms`);
    t.diagnostic(`spawn of 3 processes → all 6 discoveries: ${Math.round(allFound)} ms (includes node start-up)`);

    // a host starting 2 s later finds all three, and all three find it
    await sleep(Math.max(0, 2000 - (performance.now() - t0)));
    const late = start(3, ['--announce', A, '--lookup', `${A},${B}`]);
    await late.waitForPeers(A, [0, 1, 2].map(endpoint), 3000);
    await Promise.all(first.map((p) => p.waitForPeers(A, [endpoint(3)], 3000)));
    t.diagnostic(`late joiner: start() → all three peers: ${Math.max(...late.events.filter((e) => e.ev === 'peer').map((e) => e.t))} ms`);

    // nobody announced B: after all this querying, no peer for it anywhere, and never ourselves
    for (const p of [...first, late]) {
      assert.equal(p.peers(B).size, 0, `${p.host.name} found peers for an id nobody announces`);
      assert.ok(!p.peers(A).has(`${p.host.address}:${p.port}`), `${p.host.name} reported itself`);
      assert.equal(p.peers(A).size, 3, `${p.host.name}: ${[...p.peers(A)]}`);
    }

    // h1 withdraws A; a fresh lookup from h3 then finds h0 and h2 but not h1
    await first[1]!.command('withdraw', A);
    await late.command('stopLookup', A);
    const from = await late.command('lookup', A);
    await late.waitForPeers(A, [endpoint(0), endpoint(2)], 3000, from);
    await sleep(1500); // long enough for h1 to have answered (re-query at 0.25 s, 0.75 s, 1.75 s)
    assert.ok(!late.peers(A, from).has(endpoint(1)), 'h1 still answers for a withdrawn id');
  });
});

describe('hostile packets', { skip }, () => {
  const peerHosts = peerLan(5);
  const { start } = peerHosts;

  test('garbage and lies neither crash nor produce peers; a real peer is still found', async (t) => {
    const C = newId();
    const D = newId();
    const lan = peerHosts.lan();
    const h = lan.hosts;
    const at = (i: number) => `${h[i]!.address}:${WIRE_PORT + i}`;
    // h4 has no route for 224.0.0.0/4: it still works, because we pin the multicast interface (IP_MULTICAST_IF)
    await lan.exec(4, 'ip', ['route', 'del', '224.0.0.0/4']);
    const victim = start(0, ['--announce', C, '--lookup', C]);
    const capped = start(3, ['--lookup', D, '--max-peers', '5']);
    const noRoute = start(4, ['--announce', C, '--lookup', C]);
    // an address that is not on the host: no group membership, no multicast interface, so every multicast send
    // fails with ENETUNREACH; that must be logged once, not crash. (Ids of its own: it would still answer C by
    // unicast, with its wrong address, as it hears multicast through h4's other socket's membership.)
    const unreachable = peerHosts.track(
      new LanPeer(lan, h[4]!, WIRE_PORT + 40, ['--announce', newId(), '--lookup', newId(), '--interface', `${h[4]!.address.replace(/\.\d+$/, '.99')}`]),
    );
    const ready = (p: LanPeer) => p.waitFor('ready', (e) => e.ev === 'ready', 5000);
    const [{ instance }] = await Promise.all([ready(victim), ready(capped), ready(noRoute), ready(unreachable)]);
    await victim.waitForPeers(C, [at(4)], 3000);

    const net = h[0]!.address.split('.').slice(0, 3).join('.');
    const res = await lan.exec(
      1,
      process.execPath,
      [HOSTILE_SCRIPT, '--target', h[0]!.address, '--subtype', subtypeName(Buffer.from(C, 'hex')), '--cap-subtype', subtypeName(Buffer.from(D, 'hex')), '--fake-net', net],
      { timeoutMs: 15_000 },
    );
    assert.equal(res.code, 0, res.stderr);
    const lines = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok((lines[0]!.packets as number) > 100, res.stdout);

    // the legacy unicast query got a unicast answer echoing its id and question, with all three records
    const legacy = lines[1] as { id: number; questions: { name: string }[]; answers: { type: string; data: unknown }[]; additionals: { type: string; data: unknown }[] };
    assert.equal(legacy.id, 4242, JSON.stringify(legacy));
    assert.equal(legacy.questions[0]!.name, subtypeName(Buffer.from(C, 'hex')));
    assert.deepEqual(legacy.answers.map((a) => [a.type, a.data]), [['PTR', instance]]);
    assert.deepEqual(
      legacy.additionals.map((a) => [a.type, a.type === 'SRV' ? (a.data as { port: number }).port : a.data]),
      [['SRV', WIRE_PORT], ['A', h[0]!.address]],
    );

    await sleep(300);
    for (const p of [victim, capped, noRoute, unreachable]) {
      assert.ok(p.alive, `${p.host.name}:${p.port} died`);
      // a handler that threw is caught and logged as a dropped packet: none of the junk may get that far
      assert.deepEqual(p.logs().filter((m) => m.includes('dropped a packet')), []);
    }
    t.diagnostic(`logs: victim ${JSON.stringify(victim.logs())}; misconfigured ${JSON.stringify(unreachable.logs())}`);
    assert.deepEqual([...victim.peers(C)], [at(4)], 'bogus peers reported');
    // 20 plausible peers flooded for D, but only 5 are remembered
    assert.equal(capped.peers(D).size, 5);
    assert.equal(capped.logs().filter((m) => m.includes('more than 5 peers')).length, 1);
    const sendFailures = unreachable.logs().filter((m) => m.includes('send failed'));
    assert.equal(sendFailures.length, 1, JSON.stringify(unreachable.logs()));
    assert.match(sendFailures[0]!, /ENETUNREACH/);

    // after all that, a real peer appears: all find each other, and the victim reports only real peers
    // (within 7 s: a lookup that has backed off to its longest step asks again within 6 s, jitter included)
    const real = start(2, ['--announce', C, '--lookup', C]);
    await victim.waitForPeers(C, [at(2)], 7000);
    await real.waitForPeers(C, [at(0), at(4)], 7000);
    await noRoute.waitForPeers(C, [at(0), at(2)], 7000);
    assert.deepEqual(new Set(victim.peers(C)), new Set([at(2), at(4)]));
    assert.ok(victim.alive);
  });
});

describe('answers from off the link, and packets naming many peers', { skip }, () => {
  const peerHosts = peerLan(3);
  const ANSWER_SCRIPT = fileURLToPath(new URL('./fixtures/mdns-answer.ts', import.meta.url));
  /** from host 1 (its address `from`) to host `to`, by unicast: `count` peers of swarm `id` at host 1's address */
  const sendAnswer = async (lan: Lan, id: string, o: { from: string; to: number; port: number; count?: number }) => {
    const { from, port, count = 1 } = o;
    const args = [ANSWER_SCRIPT, '--from', from, '--to', lan.hosts[o.to]!.address, '--subtype', subtypeName(Buffer.from(id, 'hex')), '--port', String(port), '--address', lan.hosts[1]!.address, '--count', String(count)];
    const r = await lan.exec(1, process.execPath, args, { timeoutMs: 10_000 });
    assert.equal(r.code, 0, r.stderr);
  };

  test('a unicast answer from an address outside the interface subnet is ignored; the same from on the link is taken', async () => {
    const C = newId();
    const lan = peerHosts.lan();
    const h = lan.hosts;
    const victim = peerHosts.start(0, ['--lookup', C]);
    await victim.waitFor('ready', (e) => e.ev === 'ready', 5000);
    // h1 also holds an address of another subnet; h0 routes that subnet to the LAN, so its kernel takes the packets
    // (reverse-path filter) and only swarmpull's own check can refuse them.
    const offLink = '10.99.0.1';
    await lan.exec(1, 'ip', ['addr', 'add', `${offLink}/32`, 'dev', 'eth0']);
    await lan.exec(0, 'ip', ['route', 'add', '10.99.0.0/24', 'dev', 'eth0']);
    const send = (from: string, port: number) => sendAnswer(lan, C, { from, to: 0, port });
    await send(offLink, 7777);
    await send(h[1]!.address, 7778);
    await victim.waitForPeers(C, [`${h[1]!.address}:7778`], 3000);
    assert.deepEqual([...victim.peers(C)], [`${h[1]!.address}:7778`], 'an answer from off the link was taken');
    assert.ok(victim.logs().some((m) => m.includes(`ignoring answers from ${offLink}`)), JSON.stringify(victim.logs()));
  });

  test('one packet naming 40 peers: at most 8 of them are taken (each a dial on every host that looks the swarm up)', async () => {
    const D = newId();
    const lan = peerHosts.lan();
    const victim = peerHosts.start(2, ['--lookup', D, '--max-peers', '1000']);
    await victim.waitFor('ready', (e) => e.ev === 'ready', 5000);
    await sendAnswer(lan, D, { from: lan.hosts[1]!.address, to: 2, port: 8000, count: 40 });
    await victim.waitFor('a peer', (e) => e.ev === 'peer' && e.id === D, 3000);
    await sleep(500);
    assert.equal(victim.peers(D).size, 8, JSON.stringify([...victim.peers(D)]));
  });
});
