// The digest search (a pull by digest while the registry is out of reach, lib/swarm/digest-search.ts), over TCP on
// loopback: a holder that answers one block every 5 s (never silent long enough for the wire's timeouts) is asked
// first; the search moves on to the next holder at the per-holder deadline, well within the 15 s a pull gives it.
// And the peers a long-running swarm counts as seen stop growing at a bound.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pieceLength } from '../../lib/store/pieces.ts';
import { HOLDER_DEADLINE_MS } from '../../lib/swarm/digest-search.ts';
import { swarmId } from '../../lib/swarm/ids.ts';
import { Swarm } from '../../lib/swarm/swarm.ts';
import { extended, handshake, Msg, swarmpullExtHandshake, WireReader } from '../support/bt-wire.ts';
import { ScriptedPeer } from './fixtures/scripted-peer.ts';

/** what a pull gives the search (PEER_SEARCH_MS in lib/manifest-source.ts) */
const PULL_SEARCH_MS = 15_000;
/** peer ids a swarm remembers as seen (lib/swarm/swarm.ts) */
const MAX_PEERS_SEEN = 4096;
let work: string;
let layout: string;
let blob: { digest: string; size: number; path: string };

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'swarmpull-digest-search-'));
  layout = join(work, 'layout');
  await mkdir(join(layout, 'blobs/sha256'), { recursive: true });
  // 600 KiB: three pieces, 38 blocks, as a large manifest list might be
  const body = randomBytes(600 * 1024);
  const hex = createHash('sha256').update(body).digest('hex');
  blob = { digest: `sha256:${hex}`, size: body.length, path: join(layout, 'blobs/sha256', hex) };
  await writeFile(blob.path, body);
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

const swarmOf = (staticPeers: { host: string; port: number }[]) => new Swarm({ port: 0, mdns: false, staticPeers, registryConcurrency: 0, log: () => {} }).start();

/** Forwards connections to `port` after `delayMs`: the holder behind it is the second to be ready. */
async function delayedProxy(port: number, delayMs: number): Promise<Server> {
  const server = createServer((inbound) => {
    inbound.pause();
    inbound.on('error', () => {});
    setTimeout(() => {
      const out = connect(port, '127.0.0.1');
      out.on('error', () => inbound.destroy());
      inbound.on('close', () => out.destroy());
      out.on('close', () => inbound.destroy());
      inbound.pipe(out).pipe(inbound);
      inbound.resume();
    }, delayMs);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

test('a holder that drips blocks is left at the per-holder deadline; the next holder sends the blob', async (t) => {
  const drip = await new ScriptedPeer('drip', { dripMs: 5000 }).start(layout);
  const honest = await swarmOf([]);
  await honest.blob({ digest: blob.digest, size: blob.size }, false).seedFrom(blob.path);
  const proxy = await delayedProxy(honest.port, 500);
  const searcher = await swarmOf([
    { host: '127.0.0.1', port: drip.port },
    { host: '127.0.0.1', port: (proxy.address() as { port: number }).port },
  ]);
  const warnings: string[] = [];
  try {
    const t0 = performance.now();
    const body = await searcher.fetchByDigest(blob.digest, { maxSize: 4 << 20, timeoutMs: PULL_SEARCH_MS, signal: new AbortController().signal, warn: (m) => warnings.push(m) });
    const seconds = (performance.now() - t0) / 1000;
    t.diagnostic(`found in ${seconds.toFixed(1)} s; the dripping holder got ${drip.asked.reduce((n, c) => n + c.requests, 0)} requests and sent ${drip.asked.reduce((n, c) => n + c.sent, 0)} bytes`);
    assert.equal('sha256:' + createHash('sha256').update(body).digest('hex'), blob.digest);
    assert.ok(drip.asked.length > 0, 'the dripping holder was never asked: nothing was tested');
    assert.ok(drip.asked.every((c) => c.closedAt), 'the dripping holder is still connected');
    assert.ok(drip.asked[0]!.closedAt! - drip.asked[0]!.openedAt >= HOLDER_DEADLINE_MS - 1000);
  } finally {
    await searcher.stop();
    await honest.stop();
    await drip.stop();
    proxy.close();
  }
});

test('the peers a swarm counts as seen stop at a bound, however many fresh peer ids connect', async (t) => {
  const seeder = await swarmOf([]);
  await seeder.blob({ digest: blob.digest, size: blob.size }, false).seedFrom(blob.path);
  const infoHash = swarmId(blob.digest, pieceLength(blob.size));
  const n = MAX_PEERS_SEEN + 100;
  /** one connection with a fresh peer id, closed once the seeder unchoked it (it was ready, so seen) */
  const visit = () =>
    new Promise<void>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: seeder.port, localAddress: '127.0.0.3' });
      const timer = setTimeout(() => (s.destroy(), reject(new Error('no unchoke within 10 s'))), 10_000);
      s.on('error', () => {});
      s.once('close', () => (clearTimeout(timer), resolve()));
      WireReader.attach(s, (m) => m.id === Msg.unchoke && s.destroy());
      s.write(Buffer.concat([handshake(infoHash, randomBytes(20)), extended(0, swarmpullExtHandshake(6881))]));
    });
  try {
    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < n) {
        next++;
        await visit();
      }
    }));
    t.diagnostic(`${n} peer ids connected; ${seeder.peersSeen.size} counted as seen`);
    assert.equal(seeder.peersSeen.size, MAX_PEERS_SEEN);
  } finally {
    await seeder.stop();
  }
});
