// The framing of lib/swarm/wire.ts: messages split across socket reads at every byte, blocks copied into the
// buffer their owner names, and the bounds against hostile bytes (oversized messages, malformed handshakes and
// extension handshakes, wrong-sized messages, handlers that throw), each refused once, with nothing parsed after.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import bencode from 'bencode';
import { MAX_MESSAGE, Wire, type WireHandler } from '../../lib/swarm/wire.ts';
import { extended, extendedRaw, handshake, keepAlive, message, Msg, SWARMPULL_EXT_ID, swarmpullExtHandshake } from '../support/bt-wire.ts';

/** A socket that records what is written to it (parsing needs none; the handshake answers go here). */
function recordingSocket(): { socket: Socket; written: Buffer[] } {
  const written: Buffer[] = [];
  const socket = { destroyed: false, write: (b: Uint8Array) => (written.push(Buffer.from(b)), true), cork() {}, uncork() {} };
  return { socket: socket as unknown as Socket, written };
}

/** A wire whose handler records every call as a line; blocks of piece 0 go into `piece0` (others are dropped). */
function recordingWire(opts: { throwOn?: string } = {}) {
  const events: string[] = [];
  const piece0 = Buffer.alloc(3 * 16384);
  const { socket, written } = recordingSocket();
  const record =
    (name: string) =>
    (...args: unknown[]) => {
      if (name === opts.throwOn) throw new Error(`${name} threw`);
      events.push(`${name} ${args.map((a) => (a instanceof Uint8Array ? Buffer.from(a).toString('hex') : typeof a === 'object' ? JSON.stringify(a, (_k, v: unknown) => (v instanceof Uint8Array || (v as { type?: string })?.type === 'Buffer' ? 'bytes' : v)) : String(a))).join(' ')}`.trim());
    };
  const handler: WireHandler = {
    handshake: record('handshake'),
    extendedHandshake: record('extendedHandshake'),
    extended: record('extended'),
    choke: record('choke'),
    unchoke: record('unchoke'),
    interested: record('interested'),
    have: record('have'),
    bitfield: record('bitfield'),
    haveAll: record('haveAll'),
    request: record('request'),
    cancel: record('cancel'),
    reject: record('reject'),
    blockTarget: (piece, offset, length) => (record('blockTarget')(piece, offset, length), piece === 0 ? piece0.subarray(offset, offset + length) : null),
    block: record('block'),
    refused: record('refused'),
  };
  const wire = new Wire(socket, handler);
  return { wire, events, piece0, written };
}

const infoHash = Buffer.alloc(20, 0xab);
const peerId = Buffer.alloc(20, 0xcd);
const block0 = randomBytes(16384);
const block2 = randomBytes(100);
/** one of every message the wire reads, keep-alives between */
const stream = Buffer.concat([
  handshake(infoHash, peerId),
  extended(0, swarmpullExtHandshake(7000, { nonce: Buffer.alloc(16, 1) })),
  keepAlive(),
  message(Msg.bitfield, [], Buffer.from([0xa0])),
  message(Msg.unchoke),
  message(Msg.interested),
  message(Msg.have, [2]),
  message(Msg.request, [1, 16384, 16384]),
  message(Msg.piece, [0, 0], block0),
  keepAlive(),
  message(Msg.piece, [5, 0], Buffer.from('dropped')),
  message(Msg.piece, [0, 32768], block2),
  message(Msg.cancel, [1, 16384, 16384]),
  message(Msg.reject, [3, 0, 16384]),
  message(Msg.haveAll),
  message(9, [], Buffer.from([0x1b, 0x39])), // port: ignored
  message(0x11, [4]), // allowed fast: ignored
  message(0x42, [], Buffer.from('unknown ids are ignored')),
  extended(SWARMPULL_EXT_ID, { t: 'claim', p: [1] }),
  extended(7, { t: 'another extension' }), // an id we did not map: ignored
  message(Msg.uninterested),
  message(Msg.choke),
]);

function parseWhole() {
  const w = recordingWire();
  w.wire.push(stream);
  return w;
}

test('every message of a stream is parsed, blocks land in their target, unknown messages are skipped', () => {
  const { wire, events, piece0 } = parseWhole();
  assert.deepEqual(events, [
    `handshake ${infoHash.toString('hex')} ${peerId.toString('hex')} {"fast":true,"extended":true}`,
    'extendedHandshake {"key":0,"m":{"swarmpull":1},"nonce":"bytes","p":7000,"v":"bytes"}',
    'bitfield a0',
    'unchoke',
    'interested true',
    'have 2',
    'request 1 16384 16384',
    'blockTarget 0 0 16384',
    'block 0 0 16384',
    'blockTarget 5 0 7',
    'blockTarget 0 32768 100',
    'block 0 32768 100',
    'cancel 1 16384 16384',
    'reject 3 0 16384',
    'haveAll',
    `extended ${Buffer.from(bencode.encode({ t: 'claim', p: [1] })).toString('hex')}`,
    'interested false',
    'choke',
  ]);
  assert.ok(piece0.subarray(0, 16384).equals(block0));
  assert.ok(piece0.subarray(32768, 32868).equals(block2));
  assert.equal(wire.peerExtId, SWARMPULL_EXT_ID);
});

test('the same stream split in two at every byte, and fed a byte at a time, parses the same', () => {
  const whole = parseWhole();
  for (let cut = 0; cut <= stream.length; cut++) {
    const w = recordingWire();
    w.wire.push(stream.subarray(0, cut));
    w.wire.push(stream.subarray(cut));
    assert.deepEqual(w.events, whole.events, `split at ${cut}`);
    assert.ok(w.piece0.equals(whole.piece0), `block bytes split at ${cut}`);
  }
  const w = recordingWire();
  for (let i = 0; i < stream.length; i++) w.wire.push(stream.subarray(i, i + 1));
  assert.deepEqual(w.events, whole.events, 'a byte at a time');
  assert.ok(w.piece0.equals(whole.piece0));
});

test('keep-alives count as messages and call nothing', () => {
  const w = recordingWire();
  w.wire.push(handshake(infoHash, peerId));
  w.wire.lastMessageAt = 0;
  w.wire.push(Buffer.concat([keepAlive(), keepAlive()]));
  assert.ok(w.wire.lastMessageAt > 0);
  assert.equal(w.events.length, 1);
});

/** Feed `bytes` after a handshake; returns the events after the handshake's. */
function afterHandshake(bytes: Buffer, opts: { throwOn?: string } = {}): string[] {
  const w = recordingWire(opts);
  w.wire.push(handshake(infoHash, peerId));
  // anything after a refusal is not parsed
  w.wire.push(Buffer.concat([bytes, message(Msg.have, [9])]));
  w.wire.push(message(Msg.have, [9]));
  return w.events.slice(1);
}

test('a message over the limit is refused at its length, before any of it is buffered', () => {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(MAX_MESSAGE + 1);
  assert.deepEqual(afterHandshake(Buffer.concat([len, Buffer.from([Msg.piece])])), [`refused message of ${MAX_MESSAGE + 1} bytes`]);
  len.writeUInt32BE(100 * 1024 * 1024);
  assert.deepEqual(afterHandshake(len), ['refused message of 104857600 bytes']);
  // the largest message allowed passes: a block of 64 KiB minus its header, dropped (not asked for)
  assert.deepEqual(afterHandshake(message(Msg.piece, [1, 0], Buffer.alloc(MAX_MESSAGE - 9))), [`blockTarget 1 0 ${MAX_MESSAGE - 9}`, 'have 9', 'have 9']);
});

test('garbage instead of a handshake is refused', () => {
  for (const first of [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'.padEnd(68, 'x')), Buffer.alloc(68)]) {
    const w = recordingWire();
    w.wire.push(Buffer.concat([first, message(Msg.have, [1])]));
    assert.deepEqual(w.events, ['refused not a BitTorrent handshake']);
  }
});

test('malformed extension handshakes never reach the decoder; a handshake that is not a dict is refused', () => {
  for (const [bad, why] of [
    ['l-3:e', 'string length: expected digits'],
    ['l'.repeat(60_000 / 2) + 'e'.repeat(60_000 / 2), 'nested deeper than 8'],
    ['d9:__proto__d1:pi1eee', 'dict key __proto__'],
    ['d1:pi1e1:pi2ee', 'dict keys not in increasing order'],
  ] as const) {
    assert.deepEqual(afterHandshake(extendedRaw(0, Buffer.from(bad))), [`refused malformed extension handshake: ${why}`], bad.slice(0, 20));
  }
  assert.deepEqual(afterHandshake(extendedRaw(0, Buffer.from('li1ee'))), ['refused extension handshake is not a dict']);
  // a mapping that is not a number gives the peer no id for our extension
  const w = recordingWire();
  w.wire.push(Buffer.concat([handshake(infoHash, peerId), extendedRaw(0, Buffer.from('d1:md9:swarmpulld8:toStringi1eeee'))]));
  assert.equal(w.wire.peerExtId, 0);
  assert.equal(w.wire.extended(Buffer.from('de')), false, 'nothing is sent to a peer without the extension');
});

test('messages of the wrong size, and an empty extended message, are refused', () => {
  assert.deepEqual(afterHandshake(message(Msg.have, [1, 2])), ['refused peer sent what we cannot handle (message 4 of 9 bytes)']);
  assert.deepEqual(afterHandshake(message(Msg.request, [1, 2])), ['refused peer sent what we cannot handle (message 6 of 9 bytes)']);
  assert.deepEqual(afterHandshake(message(Msg.choke, [1])), ['refused peer sent what we cannot handle (message 0 of 5 bytes)']);
  assert.deepEqual(afterHandshake(message(Msg.piece, [1])), ['refused piece message too short']);
  assert.deepEqual(afterHandshake(message(Msg.extended)), ['refused peer sent what we cannot handle (empty extended message)']);
});

test("whatever a handler throws refuses the peer's bytes instead of escaping", () => {
  assert.deepEqual(afterHandshake(message(Msg.have, [3]), { throwOn: 'have' }), ['refused peer sent what we cannot handle (have threw)']);
  const w = recordingWire({ throwOn: 'handshake' });
  assert.doesNotThrow(() => w.wire.push(handshake(infoHash, peerId)));
  assert.deepEqual(w.events, ['refused peer sent what we cannot handle (handshake threw)']);
});

test('random bytes after a handshake never throw out of the wire, and a refusal is reported once', () => {
  for (let i = 0; i < 2000; i++) {
    const w = recordingWire();
    const junk = randomBytes(1 + (i % 300));
    assert.doesNotThrow(() => {
      w.wire.push(handshake(infoHash, peerId));
      w.wire.push(junk);
      w.wire.push(randomBytes(64));
    });
    assert.ok(w.events.filter((e) => e.startsWith('refused')).length <= 1);
  }
});

test('what we send: our handshake, then the extension handshake once both handshakes are out; messages framed', () => {
  const w = recordingWire();
  w.wire.handshake(infoHash, peerId, { p: 7000, v: 'swarmpull' });
  assert.equal(w.written.length, 1, 'no extension handshake before the peer has shaken hands');
  assert.ok(w.written[0]!.equals(handshake(infoHash, peerId)));
  w.wire.push(Buffer.concat([handshake(infoHash, peerId), extended(0, swarmpullExtHandshake(7000))]));
  const ext = Buffer.concat(w.written.slice(1));
  assert.ok(ext.equals(extended(0, { m: { swarmpull: 1 }, p: 7000, v: 'swarmpull' })));
  w.written.length = 0;
  w.wire.have(7);
  w.wire.request(3, [[0, 16384], [16384, 100]]);
  w.wire.cancel(3, [[16384, 100]]);
  w.wire.reject(4, 0, 16384);
  w.wire.bitfield(Buffer.from([0xf0]));
  w.wire.piece(2, 16384, Buffer.from('abc'), () => {});
  assert.ok(w.wire.extended(bencode.encode({ t: 'hashreq' })));
  assert.ok(
    Buffer.concat(w.written).equals(
      Buffer.concat([
        message(Msg.have, [7]),
        message(Msg.request, [3, 0, 16384]),
        message(Msg.request, [3, 16384, 100]),
        message(Msg.cancel, [3, 16384, 100]),
        message(Msg.reject, [4, 0, 16384]),
        message(Msg.bitfield, [], Buffer.from([0xf0])),
        message(Msg.piece, [2, 16384], Buffer.from('abc')),
        extended(SWARMPULL_EXT_ID, { t: 'hashreq' }),
      ]),
    ),
  );
});
