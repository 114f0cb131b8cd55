// Dials a peer can make us make: a hostile peer (raw wire, test/support/bt-wire.ts), dialled as the operator named
// it (--peers 127.0.0.1:PORT, through a real Swarm over TCP), sends peer-exchange messages ten times a second naming
// a loopback-only service of this host, unspecified, broadcast, multicast and reserved addresses, and a hundred
// addresses on the LAN. The loopback service is never dialled; LAN addresses are dialled within the per-source and
// per-address bounds (lib/swarm/candidates.ts), not once per message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { REDIAL_MS } from '../../lib/swarm/candidates.ts';
import { Swarm } from '../../lib/swarm/swarm.ts';
import { extended, handshake, message, Msg, SWARMPULL_EXT_ID, swarmpullExtHandshake, WireReader } from '../support/bt-wire.ts';

const ATTACK_MS = 3_000;
const PEX_EVERY_MS = 100;

/** A listener that counts connections and closes each at once (a refusal, as far as the dialler can tell). */
async function counter(host: string): Promise<{ server: Server; port: number; accepted: () => number }> {
  let accepted = 0;
  const server = createServer((s) => {
    accepted++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return { server, port: (server.address() as { port: number }).port, accepted: () => accepted };
}

function lanAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) if (i.family === 'IPv4' && !i.internal) return i.address;
  return undefined;
}

test('peer exchange: loopback, unspecified, broadcast and multicast addresses are never dialled; LAN addresses within bounds', async (t) => {
  const lan = lanAddress();
  const loopbackOnly = await counter('127.0.0.1');
  const lanListeners = lan ? await Promise.all(Array.from({ length: 100 }, () => counter(lan))) : [];
  const sockets = new Set<Socket>();
  const timers: NodeJS.Timeout[] = [];
  // The hostile peer: answers the swarm's dial like a seeder, then floods peer exchange.
  const hostile = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    let answered = false;
    const reader = WireReader.attach(socket, () => {});
    socket.on('data', () => {
      if (answered || !reader.handshake) return;
      answered = true;
      socket.write(Buffer.concat([handshake(reader.handshake.subarray(28, 48)), extended(0, swarmpullExtHandshake(6881)), message(Msg.haveAll), message(Msg.unchoke)]));
      let round = 0;
      const lp = loopbackOnly.port;
      const timer = setInterval(() => {
        const named = [`127.0.0.1:${lp}`, `0.0.0.0:${lp}`, `255.255.255.255:${lp}`, `224.0.0.251:${lp}`, `239.1.2.3:${lp}`, `240.0.0.1:${lp}`, `127.9.9.9:${lp}`];
        // 25 of the LAN listeners per message, a different 25 each round
        for (let k = 0; k < 25 && lanListeners.length; k++) named.push(`${lan}:${lanListeners[(round * 25 + k) % lanListeners.length]!.port}`);
        round++;
        if (!socket.destroyed) socket.write(extended(SWARMPULL_EXT_ID, { t: 'pex', peers: named }));
      }, PEX_EVERY_MS);
      timers.push(timer);
    });
  });
  await new Promise<void>((r) => hostile.listen(0, '127.0.0.1', r));
  const hostilePort = (hostile.address() as { port: number }).port;
  const swarm = await new Swarm({ port: 0, mdns: false, staticPeers: [{ host: '127.0.0.1', port: hostilePort }], registryConcurrency: 0, log: () => {} }).start();
  try {
    // A blob we want and never get: the swarm keeps taking peer exchange for it.
    swarm.blob({ digest: `sha256:${randomBytes(32).toString('hex')}`, size: 1 << 20 }, true);
    await new Promise((r) => setTimeout(r, ATTACK_MS));
    const lanDials = lanListeners.map((l) => l.accepted());
    const total = lanDials.reduce((a, b) => a + b, 0);
    const most = Math.max(0, ...lanDials);
    t.diagnostic(`${ATTACK_MS / PEX_EVERY_MS} peer-exchange messages: the loopback-only service was dialled ${loopbackOnly.accepted()} times; ${total} dials to ${lanListeners.length} LAN addresses (at most ${most} to one)`);
    assert.equal(loopbackOnly.accepted(), 0, 'a loopback address from peer exchange was dialled');
    if (!lan) return t.diagnostic('no LAN interface: the bounds on LAN dials were not checked');
    assert.ok(total > 0, 'no LAN address from peer exchange was dialled at all: nothing was tested');
    // per source: a burst of 32, then 2 a second; per address: once per REDIAL_MS
    assert.ok(total <= 32 + 2 * (ATTACK_MS / 1000) + 2, `${total} dials`);
    assert.ok(most <= Math.ceil(ATTACK_MS / REDIAL_MS) + 1, `one address dialled ${most} times`);
  } finally {
    for (const timer of timers) clearInterval(timer);
    for (const s of sockets) s.destroy();
    await swarm.stop();
    await new Promise<void>((r) => hostile.close(() => r()));
    for (const l of [loopbackOnly, ...lanListeners]) l.server.close();
  }
});

test('operator-named loopback peers are still dialled', async () => {
  const named = await counter('127.0.0.1');
  const swarm = await new Swarm({ port: 0, mdns: false, staticPeers: [{ host: '127.0.0.1', port: named.port }], registryConcurrency: 0, log: () => {} }).start();
  try {
    swarm.blob({ digest: `sha256:${randomBytes(32).toString('hex')}`, size: 1 << 20 }, true);
    const until = Date.now() + 5000;
    while (named.accepted() === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    assert.equal(named.accepted(), 1);
  } finally {
    await swarm.stop();
    named.server.close();
  }
});
