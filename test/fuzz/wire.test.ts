// Fuzz: the peer wire. A real Swarm seeding a real blob listens on loopback; connections feed it random and
// mutated BitTorrent messages and extension payloads, before and after a valid handshake. The process stays up,
// bad connections are dropped, its memory stays flat, and an honest peer is served correctly afterwards.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bencode from 'bencode';
import { Bitfield } from '../../lib/store/bitfield.ts';
import { BLOCK_SIZE, pieceLayout, pieceRange } from '../../lib/store/pieces.ts';
import { Peer } from '../../lib/swarm/peer.ts';
import { Swarm } from '../../lib/swarm/swarm.ts';
import { extended, extendedRaw, handshake, keepAlive, message, Msg, SWARMPULL_EXT_ID, swarmpullExtHandshake } from '../support/bt-wire.ts';
import { bencodeSoup, FUZZ_SECONDS, fc, fuzz, mutated, retainedBytes } from './fuzz.ts';

const MiB = 1 << 20;
const SIZE = 700 * 1024; // 3 pieces of 256 KiB
let dir: string;
let data: Buffer;
let swarm: Swarm;
let infoHash: Buffer;
const logs: string[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'swarmpull-fuzz-wire-'));
  data = randomBytes(SIZE);
  const path = join(dir, 'blob');
  await writeFile(path, data);
  const digest = 'sha256:' + createHash('sha256').update(data).digest('hex');
  swarm = await new Swarm({ port: 0, mdns: false, staticPeers: [], registryConcurrency: 0, log: (m) => logs.push(m) }).start();
  const blob = swarm.blob({ digest, size: SIZE }, false);
  await blob.seedFrom(path);
  infoHash = blob.infoHash;
});
after(async () => {
  await swarm?.stop();
  await rm(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/**
 * A loopback address of its own for each connection (127.1.0.0/16; the honest peer keeps 127.0.0.1): the swarm
 * leaves an address that broke a bound alone for a while, which would otherwise stop every later connection
 * before the code under test.
 */
let lastAddress = 0;
const nextAddress = () => {
  lastAddress = (lastAddress % 65_000) + 1;
  return `127.1.${lastAddress >> 8}.${lastAddress & 255}`;
};
const LISTEN_PORT = 7000;

/** Open a connection; `closed` settles when the other side (the swarm) ends it. */
function open(): Promise<{ socket: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: swarm.port, localAddress: nextAddress() });
    socket.on('error', () => {});
    socket.resume(); // read and drop what the swarm sends
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

function write(socket: Socket, b: Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    socket.write(b, () => resolve());
  });
}

/** Resolves true if the swarm closed the connection within `ms`. */
async function closedWithin(c: { closed: Promise<void> }, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([c.closed.then(() => true), new Promise<boolean>((res) => (timer = setTimeout(() => res(false), ms)))]);
  clearTimeout(timer);
  return r;
}

/** The swarm's debug log says it closed a peer for this reason (the log line may follow the socket's close). */
async function closeLogged(reason: RegExp): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!logs.some((l) => l.includes('closed:') && reason.test(l)) && Date.now() < deadline) await sleep(10);
  assert.ok(logs.some((l) => l.includes('closed:') && reason.test(l)), `no peer closed for ${reason}: ${logs.filter((l) => l.includes('closed:')).slice(-3).join(' | ')}`);
}

async function waitForConnections(n: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (swarm.connections > n && Date.now() < deadline) await sleep(20);
  assert.ok(swarm.connections <= n, `${swarm.connections} connections still open`);
}

// ---- inputs ------------------------------------------------------------------------------------------------

const extHandshakePayload = Buffer.from(bencode.encode(swarmpullExtHandshake(7000)));
const EXT_PAYLOADS = [
  extHandshakePayload,
  Buffer.from(bencode.encode({ t: 'claim', p: [0, 1, 2] })),
  Buffer.from(bencode.encode({ t: 'pex', peers: ['10.0.0.1:7881', '127.0.0.1:1'] })),
  Buffer.from(bencode.encode({ t: 'auth', mac: randomBytes(32) })),
];
/** [message id, body after the id] of every message kind the swarm reads */
const MESSAGES: [number, Buffer][] = [
  [Msg.choke, Buffer.alloc(0)],
  [Msg.unchoke, Buffer.alloc(0)],
  [Msg.interested, Buffer.alloc(0)],
  [Msg.uninterested, Buffer.alloc(0)],
  [Msg.have, message(0, [1]).subarray(5)],
  [Msg.bitfield, Buffer.from([0xe0])],
  [Msg.request, message(0, [0, 0, BLOCK_SIZE]).subarray(5)],
  [Msg.request, message(0, [2, BLOCK_SIZE, BLOCK_SIZE]).subarray(5)],
  [Msg.piece, Buffer.concat([message(0, [0, 0]).subarray(5), randomBytes(64)])],
  [Msg.cancel, message(0, [0, 0, BLOCK_SIZE]).subarray(5)],
  [9, Buffer.from([0x1b, 0x39])], // port
  [Msg.haveAll, Buffer.alloc(0)],
  [Msg.haveNone, Buffer.alloc(0)],
  [Msg.reject, message(0, [0, 0, BLOCK_SIZE]).subarray(5)],
  [0x11, message(0, [1]).subarray(5)], // allowed fast
  ...EXT_PAYLOADS.map((p, i): [number, Buffer] => [Msg.extended, Buffer.concat([Buffer.from([i === 0 ? 0 : SWARMPULL_EXT_ID]), p])]),
];
const frame = ([id, body]: [number, Buffer]) => message(id, [], body);
const FRAMED = [...MESSAGES.map(frame), keepAlive()];

const validStream = fc.array(fc.constantFrom(...FRAMED), { minLength: 1, maxLength: 12 }).map((ms) => Buffer.concat(ms));
/** framing intact, payloads mutated: what reaches the message and bencode decoders */
const mutatedPayloads = fc
  .array(
    fc.oneof(
      fc.tuple(fc.constantFrom(...MESSAGES.map(([id]) => id)), mutated(fc.constantFrom(...MESSAGES.map(([, b]) => b)), MESSAGES.map(([, b]) => b), 70_000)),
      fc
        .tuple(fc.constantFrom(0, SWARMPULL_EXT_ID, 2, 255), fc.oneof(mutated(fc.constantFrom(...EXT_PAYLOADS), EXT_PAYLOADS, 70_000), bencodeSoup))
        .map(([ext, p]): [number, Buffer] => [Msg.extended, Buffer.concat([Buffer.from([ext]), p])]),
    ),
    { minLength: 1, maxLength: 6 },
  )
  .map((ms) => Buffer.concat(ms.map(frame)));
const bodyArb = fc.oneof(
  { arbitrary: validStream, weight: 1 },
  { arbitrary: mutated(validStream, FRAMED, 200_000), weight: 3 },
  { arbitrary: mutatedPayloads, weight: 4 },
  { arbitrary: fc.uint8Array({ maxLength: 2048 }).map((a) => Buffer.from(a)), weight: 1 },
);
const caseArb = fc.record({
  preamble: fc.constantFrom('none', 'handshake', 'ready', 'ready', 'ready'),
  body: bodyArb,
  /** where the body is split between writes (what TCP may do anyway) */
  cuts: fc.array(fc.nat(), { maxLength: 3 }),
});

// ---- tests -------------------------------------------------------------------------------------------------

test('fuzz: random and mutated wire messages and extension payloads never crash the swarm or pile up memory', async (t) => {
  const heapBefore = retainedBytes();
  let droppedByUs = 0;
  const r = await fuzz('wire', caseArb, async ({ preamble, body, cuts }) => {
    const c = await open();
    if (preamble !== 'none') await write(c.socket, handshake(infoHash));
    if (preamble === 'ready') await write(c.socket, extended(0, swarmpullExtHandshake(LISTEN_PORT)));
    const at = [...new Set(cuts.map((x) => x % (body.length + 1)))].sort((a, b) => a - b);
    let from = 0;
    for (const to of [...at, body.length]) {
      await write(c.socket, body.subarray(from, to));
      from = to;
    }
    // Either the swarm drops the connection, or it keeps it, having found nothing wrong: both are fine here.
    if (await closedWithin(c, 15)) droppedByUs++;
    c.socket.destroy();
  }, { seconds: FUZZ_SECONDS * 3, hangMs: 10_000, minRuns: 50 });
  await waitForConnections(0, 5000);
  const grew = retainedBytes() - heapBefore;
  t.diagnostic(`${r.runs} connections in ${r.seconds.toFixed(1)} s, ${droppedByUs} dropped by the swarm; heap ${(grew / MiB).toFixed(1)} MiB after`);
  assert.ok(droppedByUs > 0, 'no input was refused: the fuzzer reached nothing');
  assert.ok(grew < 32 * MiB, `memory grew by ${(grew / MiB).toFixed(1)} MiB`);
  await assertServesHonestPeer();
});

test('a 100 MiB length prefix is refused at once, not buffered', async () => {
  const heapBefore = retainedBytes();
  const c = await open();
  await write(c.socket, Buffer.concat([handshake(infoHash), extended(0, swarmpullExtHandshake(LISTEN_PORT))]));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(100 * MiB);
  await write(c.socket, Buffer.concat([len, Buffer.from([Msg.piece])]));
  // keep streaming the announced body: nothing of it may be kept
  const junk = Buffer.alloc(MiB);
  for (let i = 0; i < 100 && !c.socket.destroyed; i++) c.socket.write(junk);
  assert.ok(await closedWithin(c, 5000), 'the connection was not closed');
  c.socket.destroy();
  assert.ok(retainedBytes() - heapBefore < 16 * MiB);
  await closeLogged(/message of 104857600 bytes/);
});

test('extension handshakes that hang or crash the bencode decoder and the wire library are refused', async () => {
  const cases: [string, Buffer][] = [
    ['negative string length (the decoder loops forever)', extendedRaw(0, Buffer.from('l-3:e'))],
    ['a mapping the library calls toString on', extendedRaw(0, Buffer.from('d1:md9:swarmpulld8:toStringi1eeee'))],
    ['nesting 60000 deep', extendedRaw(0, Buffer.from('l'.repeat(60_000) + 'e'.repeat(60_000)))],
    ['__proto__ key', extendedRaw(0, Buffer.from('d9:__proto__d1:pi1eee'))],
  ];
  for (const [what, msg] of cases) {
    const c = await open();
    await write(c.socket, Buffer.concat([handshake(infoHash), msg]));
    assert.ok(await closedWithin(c, 5000), `${what}: the connection was not closed`);
  }
  // and after the handshake, in swarmpull's own extension messages
  for (const bad of ['l-3:e', 'd1:t5:claim1:pl' + 'l'.repeat(50) + 'e'.repeat(51) + 'e', 'i-0e', 'd1:t5:claime9:trailing']) {
    const c = await open();
    await write(c.socket, Buffer.concat([handshake(infoHash), extended(0, swarmpullExtHandshake(LISTEN_PORT)), extendedRaw(SWARMPULL_EXT_ID, Buffer.from(bad))]));
    assert.ok(await closedWithin(c, 5000), `${bad.slice(0, 20)}: the connection was not closed`);
  }
  await assertServesHonestPeer();
});

test('a peer that asks for blocks and never reads them is dropped before its backlog fills memory', async () => {
  const heapBefore = retainedBytes();
  const c = await open();
  c.socket.pause(); // never read what the swarm sends
  await write(c.socket, Buffer.concat([handshake(infoHash), extended(0, swarmpullExtHandshake(LISTEN_PORT)), message(Msg.interested)]));
  const layout = pieceLayout(SIZE);
  const requests: Buffer[] = [];
  for (let n = 0; n < 4000; n++) {
    const piece = n % layout.count;
    const blocks = Math.ceil((pieceRange(layout, piece).end - pieceRange(layout, piece).start) / BLOCK_SIZE);
    const off = (Math.floor(n / layout.count) % blocks) * BLOCK_SIZE;
    requests.push(message(Msg.request, [piece, off, Math.min(BLOCK_SIZE, pieceRange(layout, piece).end - pieceRange(layout, piece).start - off)]));
  }
  // In bursts, as a pipelining peer would, each answered before the next arrives: never more than the 512
  // requests outstanding that close a peer at once, only a backlog of answers growing (64 MiB of them in all).
  for (let i = 0; i < requests.length && !c.socket.destroyed; i += 50) {
    await write(c.socket, Buffer.concat(requests.slice(i, i + 50)));
    await sleep(20);
  }
  assert.ok(await closedWithin(c, 10_000), 'the connection was not closed');
  c.socket.destroy();
  await closeLogged(/asks faster than it reads/);
  const grew = retainedBytes() - heapBefore;
  assert.ok(grew < 32 * MiB, `memory grew by ${(grew / MiB).toFixed(1)} MiB`);
});

test('garbage instead of a handshake, or an unknown swarm, is dropped', async () => {
  for (const first of [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), Buffer.alloc(68), handshake(randomBytes(20))]) {
    const c = await open();
    await write(c.socket, first);
    assert.ok(await closedWithin(c, 15_000), `${JSON.stringify(first.subarray(0, 12).toString('latin1'))}: the connection was not closed`);
  }
});

/** A swarmpull peer connecting now gets the right bytes. */
async function assertServesHonestPeer(): Promise<void> {
  const socket = connect({ host: '127.0.0.1', port: swarm.port });
  const peer = new Peer(socket, true, '127.0.0.1');
  const layout = pieceLayout(SIZE);
  socket.once('connect', () =>
    peer.attach({
      infoHash,
      ourId: randomBytes(20),
      listenPort: 0,
      pieceCount: layout.count,
      pieceLength: (i) => pieceRange(layout, i).end - pieceRange(layout, i).start,
      ourBits: () => new Bitfield(layout.count),
      readBlock: () => Promise.reject(new Error('nothing to serve')),
    }),
  );
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the honest peer never became ready')), 10_000);
      peer.once('ready', () => peer.once('unchoke', () => (clearTimeout(timer), resolve())));
      peer.once('close', (why) => (clearTimeout(timer), reject(new Error(`the honest peer was closed: ${why}`))));
    });
    const last = layout.count - 1;
    const { start, end } = pieceRange(layout, last);
    const piece = await peer.requestPiece(last, end - start);
    assert.ok(piece.equals(data.subarray(start, end)), 'the honest peer got wrong bytes');
  } finally {
    peer.close('done');
  }
}
