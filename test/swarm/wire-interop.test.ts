// The wire stays BitTorrent: swarmpull's Peer (lib/swarm/wire.ts underneath) and webtorrent's bittorrent-protocol
// Wire (a devDependency, for this test only) on the two ends of a TCP connection on loopback do the handshake, the
// extension handshake, bitfields, haves, block requests both ways (a short last block too), a cancel, and
// swarmpull's extension messages both ways.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Socket } from 'node:net';
import bencode from 'bencode';
import BtWire from 'bittorrent-protocol';
import { Bitfield } from '../../lib/store/bitfield.ts';
import { BLOCK_SIZE } from '../../lib/store/pieces.ts';
import { Peer } from '../../lib/swarm/peer.ts';

const PIECE = 256 * 1024;
/** piece 0 full, piece 1 of two blocks, the last short */
const data = randomBytes(PIECE + BLOCK_SIZE + 1000);
const pieceLength = (i: number) => (i === 0 ? PIECE : data.length - PIECE);
const infoHash = randomBytes(20);

function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)))]).finally(() =>
    clearTimeout(timer),
  );
}

test('bittorrent-protocol and our wire speak to each other: handshakes, bitfield, have, requests both ways, extension messages', async () => {
  const theirId = randomBytes(20);
  let bt!: BtWire;
  const theirSide = new Promise<BtWire>((resolve) => {
    const server = createServer((socket: Socket) => {
      server.close();
      bt = new BtWire();
      socket.on('error', () => {});
      socket.pipe(bt).pipe(socket);
      bt.extendedMapping[1] = 'swarmpull';
      bt.extendedHandshake = { p: 7001, v: 'bittorrent-protocol', nonce: randomBytes(16), key: 0, s: data.length };
      bt.on('handshake', () => bt.handshake(infoHash, theirId, { fast: true }));
      // they have piece 0; they answer requests from it
      bt.on('request', (piece, offset, length, respond) => respond(null, data.subarray(piece * PIECE + offset, piece * PIECE + offset + length)));
      resolve(bt);
    });
    server.listen(0, '127.0.0.1', () => {
      const socket = connect((server.address() as { port: number }).port, '127.0.0.1');
      ours = new Peer(socket, true, '127.0.0.1');
      socket.once('connect', () =>
        ours.attach({
          infoHash,
          ourId: randomBytes(20),
          listenPort: 7000,
          pieceCount: 2,
          pieceLength,
          ourBits: () => new Bitfield(2, Uint8Array.from([0x40])), // we have piece 1
          readBlock: async (piece, offset, length) => Buffer.from(data.subarray(piece * PIECE + offset, piece * PIECE + offset + length)),
          size: data.length,
        }),
      );
    });
  });
  let ours!: Peer;
  const them = await within(5000, 'connection', theirSide);
  const theirExt: Record<string, unknown>[] = [];
  const theirHaves: number[] = [];
  them.on('extended', (ext, payload) => {
    if (ext === 'handshake') {
      // BEP 10 handshake: ours, read by their decoder
      theirExt.push(payload as Record<string, unknown>);
      them.bitfield(Uint8Array.from([0x80]));
      them.unchoke();
    } else theirExt.push({ [String(ext)]: bencode.decode(payload as Uint8Array) });
  });
  them.on('have', (i) => theirHaves.push(i));
  const theirBitfield = new Promise<boolean[]>((resolve) => them.on('bitfield', (bits) => resolve([bits.get(0), bits.get(1)])));
  const claimed = new Promise<number[]>((resolve) => ours.on('claim', (pieces) => resolve(pieces)));
  try {
    await within(5000, 'our peer ready', new Promise<void>((resolve, reject) => {
      ours.once('ready', () => resolve());
      ours.once('close', (why) => reject(new Error(`closed: ${why}`)));
    }));
    assert.equal(ours.id, theirId.toString('hex'), 'their peer id, from their handshake');
    assert.equal(ours.listenPort, 7001, 'their listen port, from their extension handshake');
    assert.equal(ours.toldSize, data.length);
    await within(5000, 'their reading our extension handshake', (async () => {
      while (theirExt.length < 1) await new Promise((r) => setTimeout(r, 10));
    })());
    const ext = theirExt[0]!;
    assert.deepEqual(them.peerExtendedMapping, { swarmpull: 1 }, 'our extension mapping, read by their decoder');
    assert.equal(ext.p, 7000);
    assert.equal(Buffer.from(ext.v as Uint8Array).toString(), 'swarmpull');
    assert.deepEqual(await within(5000, 'our bitfield', theirBitfield), [false, true]);

    // we ask them: a whole piece of 16 blocks, resolved as one buffer
    await within(5000, 'their unchoke', new Promise<void>((resolve) => (ours.choking ? ours.once('unchoke', () => resolve()) : resolve())));
    assert.ok(ours.bits.get(0) && !ours.bits.get(1), 'their bitfield');
    const piece0 = await within(5000, 'piece 0 from them', ours.requestPiece(0, PIECE));
    assert.ok(piece0.equals(data.subarray(0, PIECE)), 'piece 0 as they sent it');
    assert.equal(ours.delivered, PIECE / BLOCK_SIZE);

    // they ask us: a full block and the short last one of piece 1
    const ask = (offset: number, length: number) =>
      new Promise<Uint8Array>((resolve, reject) => them.request(1, offset, length, (err, block) => (err ? reject(err) : resolve(block!))));
    const [first, last] = await within(5000, 'piece 1 from us', Promise.all([ask(0, BLOCK_SIZE), ask(BLOCK_SIZE, 1000)]));
    assert.ok(Buffer.from(first).equals(data.subarray(PIECE, PIECE + BLOCK_SIZE)));
    assert.ok(Buffer.from(last).equals(data.subarray(PIECE + BLOCK_SIZE)));
    // a block we do not have: BEP 6 reject, which their wire turns into an error
    await assert.rejects(within(5000, 'a reject', ask(0, 0).catch(() => Promise.reject(new Error('rejected')))), /rejected/);

    // extension messages both ways, and a have
    ours.claim([1], true);
    ours.have(0);
    them.extended('swarmpull', bencode.encode({ t: 'claim', p: [0] }));
    assert.deepEqual(await within(5000, 'their claim', claimed), [0]);
    await within(5000, 'our claim and have', (async () => {
      while (theirExt.length < 2 || theirHaves.length < 1) await new Promise((r) => setTimeout(r, 10));
    })());
    const claim = theirExt[1]!.swarmpull as Record<string, unknown>;
    assert.equal(Buffer.from(claim.t as Uint8Array).toString(), 'claim');
    assert.deepEqual(claim.p, [1]);
    assert.equal(claim.v, 1);
    assert.deepEqual(theirHaves, [0]);

    // our cancel: the piece request fails as cancelled, and the connection goes on
    const cancelled = ours.requestPiece(0, PIECE);
    ours.cancelPiece(0);
    await assert.rejects(cancelled, /request was cancelled/);
    const again = await within(5000, 'piece 0 again', ours.requestPiece(0, PIECE));
    assert.ok(again.equals(data.subarray(0, PIECE)));
    assert.ok(!ours.isClosed && !ours.faulty);
  } finally {
    ours.close('done');
    bt?.destroy();
  }
});

test('a peer whose handshake lacks the extension-protocol bit is closed at once, not after the ready timeout', async () => {
  const server = createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => socket.write(Buffer.concat([Buffer.from('\x13BitTorrent protocol', 'latin1'), Buffer.alloc(8), infoHash, randomBytes(20)])));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const socket = connect((server.address() as { port: number }).port, '127.0.0.1');
  const peer = new Peer(socket, true, '127.0.0.1');
  socket.once('connect', () =>
    peer.attach({ infoHash, ourId: randomBytes(20), listenPort: 7000, pieceCount: 2, pieceLength, ourBits: () => new Bitfield(2), readBlock: () => Promise.reject(new Error('no')) }),
  );
  try {
    const why = await within(3000, 'the close', new Promise<string>((resolve) => peer.once('close', resolve)));
    assert.equal(why, 'peer lacks the extension protocol');
  } finally {
    peer.close('done');
    server.close();
  }
});
