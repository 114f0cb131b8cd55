// Fuzz: mDNS packets anyone on the LAN can send. A real MdnsDiscovery on a loopback port of its own hears
// mutated queries and answers (raw UDP datagrams, decoded by multicast-dns as on 5353): no handler may throw,
// every peer it reports is one it may dial, memory stays flat, and it keeps hearing honest answers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { isIPv4 } from 'node:net';
import makeMdns from 'multicast-dns';
import type { Answer, RecordType } from 'dns-packet'; // RecordType lacks 'ANY', which dns-packet encodes
import { subtypeName } from '../../lib/swarm/ids.ts';
import { MdnsDiscovery, type Peer } from '../../lib/swarm/mdns.ts';
import { fc, fuzz, mutated, retainedBytes } from './fuzz.ts';

const WANTED = randomBytes(20); // the swarm we look up
const OURS = randomBytes(20); // the swarm we answer for
let mdnsPort: number;
let discovery: MdnsDiscovery;
let sender: Socket;
const logs: string[] = [];
const found: { id: Buffer; peer: Peer }[] = [];

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  s.close();
  return port;
}

/** Encode packets with multicast-dns itself: what it sends to a raw socket is a corpus of real datagrams. */
async function capture(send: (m: ReturnType<typeof makeMdns>, to: { port: number; address: string }) => void, count: number): Promise<Buffer[]> {
  const sink = createSocket('udp4');
  sink.bind(0, '127.0.0.1');
  await once(sink, 'listening');
  const got: Buffer[] = [];
  const all = new Promise<void>((resolve) => sink.on('message', (b) => got.push(b) === count && resolve()));
  const m = makeMdns({ multicast: false, port: 0, bind: '127.0.0.1' });
  await once(m, 'ready');
  send(m, { port: sink.address().port, address: '127.0.0.1' });
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([all, new Promise((r) => (timer = setTimeout(r, 5000)))]);
  clearTimeout(timer);
  m.destroy();
  sink.close();
  assert.equal(got.length, count, 'the corpus packets did not all arrive');
  return got;
}

const instance = (n: string) => `fuzz-${n}._swarmpull._tcp.local`;
const answer = (name: string, inst: string, port: number, address: string): { answers: Answer[]; additionals: Answer[] } => ({
  answers: [{ name, type: 'PTR', ttl: 120, data: inst }],
  additionals: [
    { name: inst, type: 'SRV', ttl: 120, data: { port, target: `${inst.split('.')[0]}.local`, priority: 0, weight: 0 } },
    { name: `${inst.split('.')[0]}.local`, type: 'A', ttl: 120, data: address },
  ],
});

let corpus: Buffer[];
before(async () => {
  mdnsPort = await freeUdpPort();
  discovery = new MdnsDiscovery({ port: 7000, interfaceAddress: '127.0.0.1', mdnsPort, log: (m) => logs.push(m), maxPeersPerId: 1_000_000 });
  discovery.on('peer', (id, peer) => found.push({ id, peer }));
  await discovery.start();
  discovery.announce(OURS);
  discovery.lookup(WANTED);
  sender = createSocket('udp4');
  sender.bind(0, '127.0.0.1');
  await once(sender, 'listening');
  corpus = await capture((m, to) => {
    m.respond(answer(subtypeName(WANTED), instance('a'), 7001, '10.1.2.3'), to);
    m.respond(answer(subtypeName(WANTED), instance('b'), 65535, '127.0.0.1'), to);
    m.respond({ answers: [{ name: subtypeName(OURS), type: 'PTR', ttl: 0, data: instance('bye') }] }, to);
    m.query({ questions: [{ name: subtypeName(OURS), type: 'PTR' }] }, to);
    m.query({ id: 4242, questions: [{ name: subtypeName(OURS), type: 'ANY' as RecordType }, { name: subtypeName(WANTED), type: 'PTR' }] }, to);
  }, 5);
});
after(async () => {
  await discovery?.stop();
  sender?.close();
});

/** A fresh honest answer for WANTED; resolves when the discovery reports it (so every earlier datagram was handled). */
let sentinels = 0;
async function heardAfter(): Promise<void> {
  const port = 1 + (sentinels++ % 65535);
  const host = `10.250.${(sentinels >> 8) & 255}.${sentinels & 255}`;
  const [packet] = await capture((m, to) => m.respond(answer(subtypeName(WANTED), instance(`s${sentinels}`), port, host), to), 1);
  const before = found.length;
  await send(packet!);
  const deadline = Date.now() + 3000;
  while (!found.slice(before).some((f) => f.peer.host === host && f.peer.port === port)) {
    assert.ok(Date.now() < deadline, `the discovery stopped hearing honest answers (sentinel ${host}:${port}); logs: ${logs.join(' | ')}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function send(b: Buffer): Promise<void> {
  return new Promise((resolve, reject) => sender.send(b, mdnsPort, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
}

test('fuzz: mutated and random mDNS datagrams: no handler throws, only dialable peers are reported', async (t) => {
  await heardAfter(); // it hears an honest answer before anything else
  const heapBefore = retainedBytes();
  const datagrams = fc.array(
    fc.oneof(
      { arbitrary: mutated(fc.constantFrom(...corpus), corpus, 9000), weight: 6 },
      { arbitrary: fc.uint8Array({ maxLength: 1500 }).map((a) => Buffer.from(a)), weight: 1 },
      { arbitrary: fc.constantFrom(...corpus), weight: 1 },
    ),
    { minLength: 1, maxLength: 8 },
  );
  const r = await fuzz('mDNS datagrams', datagrams, async (batch) => {
    for (const b of batch) await send(b);
    await heardAfter();
  }, { hangMs: 5000, minRuns: 50 });
  const heapAfter = retainedBytes();
  const dropped = logs.filter((l) => l.includes('dropped a packet'));
  assert.deepEqual(dropped, [], 'a handler threw on a packet');
  for (const { id, peer } of found) {
    assert.ok(id.equals(WANTED), 'a peer was reported for a swarm nobody looked up');
    assert.ok(isIPv4(peer.host), peer.host);
    const first = Number(peer.host.split('.')[0]);
    assert.ok(first !== 0 && first < 224, `reported ${peer.host}`);
    assert.ok(Number.isInteger(peer.port) && peer.port >= 1 && peer.port <= 65535, `port ${peer.port}`);
  }
  const grew = heapAfter - heapBefore;
  t.diagnostic(`${r.runs} batches in ${r.seconds.toFixed(1)} s; ${found.length} peers reported; heap ${(grew / 2 ** 20).toFixed(1)} MiB after; logs: ${[...new Set(logs)].slice(0, 4).join(' | ')}`);
  // The peers remembered per lookup (one per sentinel) are the only thing that may grow.
  assert.ok(grew < 32 * 2 ** 20, `memory grew by ${grew} bytes`);
});
