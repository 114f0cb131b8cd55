// The BitTorrent wire on one socket (docs/protocol.md): the BEP 3 handshake and length-prefixed messages, the BEP 6
// fast-extension messages swarmpull uses, BEP 10 extended messages; parsed straight from socket chunks. A block
// goes from the socket chunk into the piece buffer its owner names, copied once; other messages are handed over as
// views of the chunk when they fit in it. Bounded against hostile peers: a message over MAX_MESSAGE is refused
// before any of it is buffered, an extension handshake is checked before the bencode decoder sees it, and whatever
// a peer's bytes make throw (here or in a handler) closes that connection, never the process.
import type { Socket } from 'node:net';
import bencode from 'bencode';
import { bencodeProblem } from './safe-bencode.ts';

/** the largest message we accept: a block plus headers, or an extension message (bitfields are smaller) */
export const MAX_MESSAGE = 64 * 1024;
export const HANDSHAKE_BYTES = 68;
/** the id our extension messages carry when they come to us (BEP 10: each side picks the ids it receives) */
export const LOCAL_EXT_ID = 1;
export const EXT_NAME = 'swarmpull';

const PROTOCOL = Buffer.from('\x13BitTorrent protocol', 'latin1');
const Id = {
  choke: 0,
  unchoke: 1,
  interested: 2,
  uninterested: 3,
  have: 4,
  bitfield: 5,
  request: 6,
  piece: 7,
  cancel: 8,
  port: 9,
  suggest: 0x0d,
  haveAll: 0x0e,
  haveNone: 0x0f,
  reject: 0x10,
  allowedFast: 0x11,
  extended: 20,
} as const;
/** a request, cancel or reject on the wire: length, id, index, begin, length */
const TRIPLE_BYTES = 17;
/** a piece message before its block: length, id, index, begin */
const PIECE_HEADER_BYTES = 13;

/** What the other end's bytes say; called as each message is parsed. */
export interface WireHandler {
  handshake(infoHash: Buffer, peerId: Buffer, peer: { fast: boolean; extended: boolean }): void;
  /** the peer's BEP 10 handshake, checked and decoded (a dict) */
  extendedHandshake(h: Record<string, unknown>): void;
  /** one of our extension's messages (its payload, a view valid during the call only) */
  extended(payload: Uint8Array): void;
  choke(): void;
  unchoke(): void;
  interested(peerInterested: boolean): void;
  have(piece: number): void;
  /** the bitfield (a view valid during the call only) */
  bitfield(bits: Uint8Array): void;
  haveAll(): void;
  request(piece: number, offset: number, length: number): void;
  cancel(piece: number, offset: number, length: number): void;
  reject(piece: number, offset: number, length: number): void;
  /** Where an arriving block goes: a buffer of exactly `length` bytes, or null to drop it (not asked for). */
  blockTarget(piece: number, offset: number, length: number): Buffer | null;
  /** the block last given a target is all there */
  block(piece: number, offset: number, length: number): void;
  /** the peer broke the protocol or a bound: the connection must close */
  refused(why: string): void;
}

/** what the parser waits for */
const S = { handshake: 0, length: 1, id: 2, body: 3, pieceHeader: 4, block: 5, refused: 6 } as const;
type State = (typeof S)[keyof typeof S];

export class Wire {
  /** when the last message (keep-alives included) arrived */
  lastMessageAt = Date.now();
  /** when we last wrote to the socket */
  lastSentAt = Date.now();
  /** the peer's handshake bits */
  peerFast = false;
  peerExtended = false;
  /** the id the peer receives our extension's messages on (its BEP 10 handshake); 0: it has none */
  peerExtId = 0;
  private readonly socket: Socket;
  private readonly handler: WireHandler;
  private state: State = S.handshake;
  /** bytes of a handshake, message length or piece header gathered across chunks */
  private readonly head = Buffer.alloc(HANDSHAKE_BYTES);
  private headHave = 0;
  /** the message being parsed: its length, and its bytes when it spans chunks */
  private length = 0;
  private body: Buffer | null = null;
  private bodyHave = 0;
  /** the block being received: where it goes (null: dropped) and how much of it is here */
  private target: Buffer | null = null;
  private blockPiece = 0;
  private blockOffset = 0;
  private blockHave = 0;
  private sentHandshake = false;
  private gotHandshake = false;
  private gotExtHandshake = false;
  private sentExtHandshake = false;
  private ourExtHandshake: Record<string, unknown> = {};

  constructor(socket: Socket, handler: WireHandler) {
    this.socket = socket;
    this.handler = handler;
  }

  /** Parse bytes read from the socket. */
  push(chunk: Buffer): void {
    try {
      this.parse(chunk);
    } catch (err) {
      this.refuse(`peer sent what we cannot handle (${(err as Error).message})`);
    }
  }

  /** Stop parsing: what else arrives is dropped. */
  stop(): void {
    this.state = S.refused;
  }

  private refuse(why: string): void {
    if (this.state === S.refused) return;
    this.state = S.refused;
    this.handler.refused(why);
  }

  /** Gather bytes of `chunk` from `pos` into `head` until it holds `need`; returns the new position. */
  private gather(chunk: Buffer, pos: number, need: number): number {
    const take = Math.min(need - this.headHave, chunk.length - pos);
    chunk.copy(this.head, this.headHave, pos, pos + take);
    this.headHave += take;
    return pos + take;
  }

  private parse(chunk: Buffer): void {
    const n = chunk.length;
    let pos = 0;
    while (pos < n) {
      switch (this.state) {
        case S.refused:
          return;
        case S.handshake: {
          pos = this.gather(chunk, pos, HANDSHAKE_BYTES);
          if (this.headHave < HANDSHAKE_BYTES) return;
          this.headHave = 0;
          this.onHandshake(this.head);
          if (this.state === S.handshake) this.state = S.length;
          break;
        }
        case S.length: {
          let length: number;
          if (this.headHave === 0 && n - pos >= 4) {
            length = chunk.readUInt32BE(pos);
            pos += 4;
          } else {
            pos = this.gather(chunk, pos, 4);
            if (this.headHave < 4) return;
            this.headHave = 0;
            length = this.head.readUInt32BE(0);
          }
          this.lastMessageAt = Date.now();
          if (length === 0) break; // keep-alive
          if (length > MAX_MESSAGE) return this.refuse(`message of ${length} bytes`);
          this.length = length;
          this.state = S.id;
          break;
        }
        case S.id: {
          const id = chunk[pos]!;
          if (id === Id.piece) {
            if (this.length < 9) return this.refuse('piece message too short');
            this.state = S.pieceHeader;
          } else if (n - pos >= this.length) {
            // the whole message is in this chunk: handed over as a view of it
            const at = pos;
            pos += this.length;
            this.state = S.length;
            this.onMessage(id, chunk.subarray(at + 1, at + this.length));
          } else {
            this.body = Buffer.allocUnsafe(this.length);
            this.bodyHave = 0;
            this.state = S.body;
          }
          break;
        }
        case S.body: {
          const body = this.body!;
          const take = Math.min(body.length - this.bodyHave, n - pos);
          chunk.copy(body, this.bodyHave, pos, pos + take);
          this.bodyHave += take;
          pos += take;
          if (this.bodyHave < body.length) return;
          this.body = null;
          this.state = S.length;
          this.onMessage(body[0]!, body.subarray(1));
          break;
        }
        case S.pieceHeader: {
          pos = this.gather(chunk, pos, 9); // id, index, begin
          if (this.headHave < 9) return;
          this.headHave = 0;
          this.blockPiece = this.head.readUInt32BE(1);
          this.blockOffset = this.head.readUInt32BE(5);
          this.blockHave = 0;
          this.state = S.block;
          this.target = this.handler.blockTarget(this.blockPiece, this.blockOffset, this.length - 9);
          if (this.target && this.target.length !== this.length - 9) throw new Error('block target of the wrong size');
          if (this.length === 9) this.blockDone();
          break;
        }
        case S.block: {
          const blockLength = this.length - 9;
          const take = Math.min(blockLength - this.blockHave, n - pos);
          if (this.target) chunk.copy(this.target, this.blockHave, pos, pos + take);
          this.blockHave += take;
          pos += take;
          if (this.blockHave === blockLength) this.blockDone();
          break;
        }
      }
    }
  }

  private blockDone(): void {
    const had = this.target;
    this.target = null;
    this.state = S.length;
    if (had) this.handler.block(this.blockPiece, this.blockOffset, had.length);
  }

  private onHandshake(h: Buffer): void {
    if (!h.subarray(0, PROTOCOL.length).equals(PROTOCOL)) return this.refuse('not a BitTorrent handshake');
    this.gotHandshake = true;
    this.peerExtended = (h[20 + 5]! & 0x10) !== 0;
    this.peerFast = (h[20 + 7]! & 0x04) !== 0;
    // copies: `head` is used again for the next message
    this.handler.handshake(Buffer.from(h.subarray(28, 48)), Buffer.from(h.subarray(48, 68)), { fast: this.peerFast, extended: this.peerExtended });
    this.maybeSendExtHandshake();
  }

  /** One whole message other than a piece; `body` is what follows the id. */
  private onMessage(id: number, body: Uint8Array): void {
    const h = this.handler;
    const size = (bytes: number) => {
      if (body.length !== bytes) throw new Error(`message ${id} of ${body.length + 1} bytes`);
    };
    const u32 = (at: number) => ((body[at]! << 24) >>> 0) + (body[at + 1]! << 16) + (body[at + 2]! << 8) + body[at + 3]!;
    switch (id) {
      case Id.choke:
        return size(0), h.choke();
      case Id.unchoke:
        return size(0), h.unchoke();
      case Id.interested:
        return size(0), h.interested(true);
      case Id.uninterested:
        return size(0), h.interested(false);
      case Id.have:
        return size(4), h.have(u32(0));
      case Id.bitfield:
        return h.bitfield(body);
      case Id.request:
        return size(12), h.request(u32(0), u32(4), u32(8));
      case Id.cancel:
        return size(12), h.cancel(u32(0), u32(4), u32(8));
      case Id.haveAll:
        return size(0), h.haveAll();
      case Id.reject:
        return size(12), h.reject(u32(0), u32(4), u32(8));
      case Id.extended:
        return this.onExtended(body);
      // port (DHT), suggest, have-none (the bitfield we start with says as much), allowed-fast: nothing to do
      default:
        return;
    }
  }

  private onExtended(body: Uint8Array): void {
    if (body.length < 1) throw new Error('empty extended message');
    const payload = body.subarray(1);
    if (body[0] === 0) {
      // A decoder that hangs or crashes on some inputs must never see one (safe-bencode.ts).
      const problem = bencodeProblem(payload);
      if (problem) return this.refuse(`malformed extension handshake: ${problem}`);
      const h = bencode.decode(payload) as unknown;
      if (typeof h !== 'object' || h === null || Array.isArray(h) || h instanceof Uint8Array) return this.refuse('extension handshake is not a dict');
      if (this.gotExtHandshake) return;
      this.gotExtHandshake = true;
      const m = (h as Record<string, unknown>).m;
      const id = m && typeof m === 'object' ? (m as Record<string, unknown>)[EXT_NAME] : undefined;
      if (Number.isInteger(id) && (id as number) > 0 && (id as number) < 256) this.peerExtId = id as number;
      return this.handler.extendedHandshake(h as Record<string, unknown>);
    }
    if (body[0] === LOCAL_EXT_ID) this.handler.extended(payload);
  }

  // ---- sending ---------------------------------------------------------------------------------------------

  private write(bytes: Uint8Array, done?: () => void): void {
    if (this.socket.destroyed) return;
    this.lastSentAt = Date.now();
    if (done) this.socket.write(bytes, done);
    else this.socket.write(bytes);
  }

  /** Our handshake (extension protocol and fast extension); `ext`: what our BEP 10 handshake says besides `m`. */
  handshake(infoHash: Uint8Array, peerId: Uint8Array, ext: Record<string, unknown>): void {
    if (this.sentHandshake) return;
    this.sentHandshake = true;
    this.ourExtHandshake = ext;
    const reserved = Buffer.alloc(8);
    reserved[5] = 0x10; // BEP 10
    reserved[7] = 0x04; // BEP 6
    this.write(Buffer.concat([PROTOCOL, reserved, infoHash, peerId]));
    this.maybeSendExtHandshake();
  }

  private maybeSendExtHandshake(): void {
    if (!this.sentHandshake || !this.gotHandshake || !this.peerExtended || this.sentExtHandshake) return;
    this.sentExtHandshake = true;
    this.writeExtended(0, bencode.encode({ ...this.ourExtHandshake, m: { [EXT_NAME]: LOCAL_EXT_ID } }));
  }

  /** One of our extension's messages, already encoded; false if the peer has no id for it. */
  extended(payload: Uint8Array): boolean {
    if (!this.peerExtId) return false;
    this.writeExtended(this.peerExtId, payload);
    return true;
  }

  private writeExtended(extId: number, payload: Uint8Array): void {
    const head = Buffer.allocUnsafe(6);
    head.writeUInt32BE(2 + payload.length, 0);
    head[4] = Id.extended;
    head[5] = extId;
    this.socket.cork();
    this.write(head);
    this.write(payload);
    this.socket.uncork();
  }

  private simple(id: number): void {
    this.write(Buffer.from([0, 0, 0, 1, id]));
  }

  choke(): void {
    this.simple(Id.choke);
  }
  unchoke(): void {
    this.simple(Id.unchoke);
  }
  interested(): void {
    this.simple(Id.interested);
  }
  keepAlive(): void {
    this.write(Buffer.alloc(4));
  }

  have(piece: number): void {
    const m = Buffer.allocUnsafe(9);
    m.writeUInt32BE(5, 0);
    m[4] = Id.have;
    m.writeUInt32BE(piece, 5);
    this.write(m);
  }

  bitfield(bits: Uint8Array): void {
    const m = Buffer.allocUnsafe(5 + bits.length);
    m.writeUInt32BE(1 + bits.length, 0);
    m[4] = Id.bitfield;
    m.set(bits, 5);
    this.write(m);
  }

  /** Requests, cancels or rejects of `blocks` ([offset, length] pairs) of one piece, in one write. */
  private triples(id: number, piece: number, blocks: readonly (readonly [number, number])[]): void {
    if (blocks.length === 0) return;
    const m = Buffer.allocUnsafe(TRIPLE_BYTES * blocks.length);
    let at = 0;
    for (const [offset, length] of blocks) {
      m.writeUInt32BE(13, at);
      m[at + 4] = id;
      m.writeUInt32BE(piece, at + 5);
      m.writeUInt32BE(offset, at + 9);
      m.writeUInt32BE(length, at + 13);
      at += TRIPLE_BYTES;
    }
    this.write(m);
  }

  request(piece: number, blocks: readonly (readonly [number, number])[]): void {
    this.triples(Id.request, piece, blocks);
  }
  cancel(piece: number, blocks: readonly (readonly [number, number])[]): void {
    this.triples(Id.cancel, piece, blocks);
  }
  reject(piece: number, offset: number, length: number): void {
    this.triples(Id.reject, piece, [[offset, length]]);
  }

  /**
   * A block for the peer: its header and the block as two writes (no copy into one buffer; the caller corks the
   * socket around a run of them so they leave in one writev). `taken`: the socket has taken the block.
   */
  piece(piece: number, offset: number, block: Uint8Array, taken: () => void): void {
    const head = Buffer.allocUnsafe(PIECE_HEADER_BYTES);
    head.writeUInt32BE(9 + block.length, 0);
    head[4] = Id.piece;
    head.writeUInt32BE(piece, 5);
    head.writeUInt32BE(offset, 9);
    this.write(head);
    this.write(block, taken);
  }
}
