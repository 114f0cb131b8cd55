// Raw BitTorrent wire bytes (BEP 3, BEP 6, BEP 10) for scripted hostile peers and wire fuzzing: every byte under
// the test's control, unlike a real Wire. Speaks swarmpull's extension ("swarmpull", id 1 on both sides).
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import bencode from 'bencode';

/** the id swarmpull's Peer maps its extension to (lib/swarm/peer.ts): what it expects to receive */
export const SWARMPULL_EXT_ID = 1;
export const HANDSHAKE_LENGTH = 68;

export const Msg = {
  choke: 0,
  unchoke: 1,
  interested: 2,
  uninterested: 3,
  have: 4,
  bitfield: 5,
  request: 6,
  piece: 7,
  cancel: 8,
  haveAll: 0x0e,
  haveNone: 0x0f,
  reject: 0x10,
  extended: 20,
} as const;

/** The 68-byte handshake, with the extension-protocol (BEP 10) and fast (BEP 6) bits. */
export function handshake(infoHash: Uint8Array, peerId: Uint8Array = randomBytes(20)): Buffer {
  const reserved = Buffer.alloc(8);
  reserved[5] = 0x10;
  reserved[7] = 0x04;
  return Buffer.concat([Buffer.from([19]), Buffer.from('BitTorrent protocol'), reserved, infoHash, peerId]);
}

/** One length-prefixed message: id, then 32-bit integers, then a payload. */
export function message(id: number, ints: number[] = [], payload: Uint8Array = new Uint8Array()): Buffer {
  const body = Buffer.alloc(1 + 4 * ints.length);
  body[0] = id;
  ints.forEach((v, i) => body.writeUInt32BE(v >>> 0, 1 + 4 * i));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length + payload.length);
  return Buffer.concat([len, body, payload]);
}

export const keepAlive = (): Buffer => Buffer.alloc(4);

/** An extended message whose payload is already encoded (or deliberately malformed). */
export function extendedRaw(extId: number, payload: Uint8Array): Buffer {
  return message(Msg.extended, [], Buffer.concat([Buffer.from([extId]), payload]));
}

export function extended(extId: number, value: unknown): Buffer {
  return extendedRaw(extId, bencode.encode(value));
}

/** What a swarmpull peer without a swarm key says in its extension handshake. */
export function swarmpullExtHandshake(listenPort: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { m: { swarmpull: SWARMPULL_EXT_ID }, p: listenPort, v: 'swarmpull', nonce: randomBytes(16), key: 0, ...extra };
}

export interface WireMessage {
  id: number;
  /** the bytes after the id */
  body: Buffer;
}

/**
 * Reads a peer's bytes: its handshake, then length-prefixed messages (keep-alives skipped). Buffers at most
 * one message plus what one read brings, and gives up on a length over `maxMessage`.
 */
export class WireReader {
  handshake: Buffer | null = null;
  private buf: Buffer = Buffer.alloc(0);
  private readonly onMessage: (m: WireMessage) => void;
  private readonly maxMessage: number;
  constructor(onMessage: (m: WireMessage) => void, maxMessage = 1 << 20) {
    this.onMessage = onMessage;
    this.maxMessage = maxMessage;
  }

  push(data: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, data]) : data;
    if (!this.handshake) {
      if (this.buf.length < HANDSHAKE_LENGTH) return;
      this.handshake = this.buf.subarray(0, HANDSHAKE_LENGTH);
      this.buf = this.buf.subarray(HANDSHAKE_LENGTH);
    }
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (len > this.maxMessage) throw new Error(`message of ${len} bytes`);
      if (this.buf.length < 4 + len) return;
      const msg = this.buf.subarray(4, 4 + len);
      this.buf = this.buf.subarray(4 + len);
      if (len > 0) this.onMessage({ id: msg[0]!, body: msg.subarray(1) });
    }
  }

  /** Attach to a socket; errors of the parser destroy the socket. */
  static attach(socket: Socket, onMessage: (m: WireMessage) => void): WireReader {
    const r = new WireReader(onMessage);
    socket.on('data', (d: Buffer) => {
      try {
        r.push(d);
      } catch (err) {
        socket.destroy(err as Error);
      }
    });
    return r;
  }
}
