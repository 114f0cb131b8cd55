// One TCP connection to one peer about one blob: the BitTorrent handshake, swarmpull's extension handshake
// (listen port, swarm-key proof), bitfields and haves, block requests both ways. Bounded against hostile peers:
// message size and well-formed bencode, requests outstanding and answers unread, time to get ready, time to answer
// each request, silence.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import bencode from 'bencode';
import { paceReads, type RateLimit } from '../rate-limit.ts';
import { Bitfield } from '../store/bitfield.ts';
import { BLOCK_SIZE } from '../store/pieces.ts';
import { takePieceBuffer } from './piece-buffers.ts';
import type { ReusedReads } from './reused-reads.ts';
import { Wire, type WireHandler } from './wire.ts';
import { decodeBencode } from './safe-bencode.ts';
import { dialableFromNetwork } from './candidates.ts';
import { CLAIM_MESSAGE_PIECES } from './fetch-policy.ts';
import { checkProof, isOurNonce, issueNonce, NONCE_BYTES, proof, type Role, type Transcript } from './swarm-key.ts';
import { processUploads, type UploadBudget } from './upload-budget.ts';

/** addresses read from one peer-exchange message: as many as a swarm may have peers (MAX_PEERS_PER_BLOB) */
const MAX_PEX_PER_MESSAGE = 32;
/** requests a peer may have outstanding with us; more is abuse */
const MAX_PEER_REQUESTS = 512;
/**
 * One disk read answers at most this many bytes of requests: the contiguous blocks of a piece asked for together (an
 * honest puller asks for a whole 256 KiB piece at once, and one read per piece instead of one per block matters for
 * throughput, DESIGN.md), and never a byte more than was asked for (a request for one block of a piece read the whole
 * piece: 8 connections asking for blocks of random pieces drove a seeder to 1.2 GB, measured).
 */
const MAX_READ = 16 * BLOCK_SIZE;
/**
 * Bytes of read buffers one connection's answers may hold until its socket takes them; over it, its requests wait
 * unread. An honest puller holds about 1.75 MiB (96 blocks in flight over up to 7 pieces); the process and each
 * address have bounds of their own (upload-budget.ts).
 */
const MAX_UPLOAD_HELD = 4 << 20;
/**
 * Disk reads under way for one connection: the disk answers them a few at a time anyway (libuv's 4 threads), and an
 * honest puller's pipeline needs 6 or 7 at once (96 blocks, read a piece at a time); each waiting read costs heap.
 */
const MAX_READS_PER_CONNECTION = 8;
/** answers queued for the peer and its socket took no byte of them for this long: it asks and does not read */
const UPLOAD_STALL_MS = 30_000;
/** connect + BitTorrent handshake + extension handshake (+ swarm-key proof): a LAN does it in milliseconds */
const READY_TIMEOUT_MS = 10_000;
/** no block at all for this long while we wait for some: the peer stalls or trickles; its pieces go elsewhere */
const REQUEST_TIMEOUT_MS = 8_000;
/** any one request unanswered this long (a peer answering one block now and then evades the timeout above) */
const REQUEST_DEADLINE_MS = 30_000;
/** no message, not even a keep-alive (sent every 55 s), for this long: the peer is gone (a half-open connection) */
const IDLE_TIMEOUT_MS = 150_000;
/** we send a keep-alive after this long without sending anything (BEP 3 peers drop a connection silent for 2 min) */
const KEEP_ALIVE_MS = 55_000;
/** how often the deadlines above are checked */
const WATCHDOG_MS = 1_000;

export interface PeerContext {
  infoHash: Buffer;
  ourId: Buffer;
  listenPort: number;
  swarmKey?: Buffer;
  pieceCount: number;
  pieceLength: (piece: number) => number;
  /** our bitfield now (sent when the peer is ready) */
  ourBits(): Bitfield;
  /**
   * Read bytes of a piece we have, for an upload: one block, or a run of blocks asked for together (at most
   * MAX_READ), into `into` when given (a buffer of the upload budget); resolves with the bytes.
   */
  readBlock(piece: number, offset: number, length: number, into?: Buffer): Promise<Buffer>;
  /** what answers to peers may hold (default: the process's budget) */
  uploads?: UploadBudget;
  /** the blob's size, told in our extension handshake: a peer that knows only the digest (a manifest) learns it */
  size?: number;
  /**
   * For a blob we know only by digest: called when the peer is about to be ready, with the size it told; returns
   * the context to go on with (its piece layout), or null to close the connection.
   */
  withSize?: (size: number | undefined) => PeerContext | null;
}

export interface PeerEvents {
  ready: [];
  choke: [];
  unchoke: [];
  have: [piece: number];
  bitfield: [];
  /** pieces it fetches from the registry; `verified`: it holds the whole blob, verified (it vouches for every piece) */
  claim: [pieces: number[], verified: boolean];
  /** hashes of the pieces it vouches for (see requestHashes) */
  hashes: [hashes: Buffer];
  /** it asks for the hashes of the pieces we vouch for */
  hashRequest: [];
  pex: [peers: { host: string; port: number }[]];
  upload: [bytes: number];
  close: [reason: string];
}

export class Peer extends EventEmitter<PeerEvents> {
  readonly socket: Socket;
  readonly host: string;
  readonly outgoing: boolean;
  /** hex peer id, known after the handshake */
  id = '';
  /** the peer's listening port (from its extension handshake), for PEX and dedupe */
  listenPort = 0;
  /** the blob's size as the peer told it (its extension handshake), unchecked */
  toldSize: number | undefined;
  bits: Bitfield;
  ready = false;
  /** blocks we asked for and have not received */
  inflight = 0;
  /** blocks this peer delivered to us */
  delivered = 0;
  /** closed for breaking a bound or the protocol (stalled, flooded, spoke garbage), not for leaving */
  faulty = false;
  /** the peer speaks BEP 6 (it rejects what it will not answer) */
  private peerFast = false;
  private readonly wire: Wire;
  private readonly nonce = issueNonce();
  private ctx: PeerContext | null = null;
  private peerNonce: Buffer | null = null;
  /** with a swarm key: the peer's proof checked out, and (after ours) it told what it says of the blob */
  private authed = false;
  private gotInfo = false;
  private gotExtHandshake = false;
  private gotBitfield = false;
  /** pieces the peer advertised and then would not give us: never counted from it again */
  private readonly refused = new Set<number>();
  private closed = false;
  private readonly readyTimer: NodeJS.Timeout;
  private readonly watchdog: NodeJS.Timeout;
  /** our requests outstanding, a piece each, in the order sent */
  private readonly asking = new Map<number, PieceAsk>();
  /** the piece whose block is arriving (given as a block target) */
  private receiving: PieceAsk | null = null;
  /** when a block last arrived, or requests began to wait for one */
  private lastBlockAt = 0;
  /** the peer's requests not answered yet */
  private readonly asked = new Set<Asked>();
  /** the peer's requests waiting for their disk read, in the order they came */
  private toRead: Asked[] = [];
  /** the peer chokes us / is interested in us (BitTorrent's state) */
  private peerChoking = true;
  private peerInterested = false;
  private handshakeCallback: ((infoHash: string, peerId: string) => void) | null = null;
  private readsScheduled = false;
  /** read buffers our answers hold (see Held), and their bytes together */
  private readonly held = new Set<Held>();
  private heldBytes = 0;
  /** disk reads under way */
  private reading = 0;
  /** answers written to the socket that it has not taken yet */
  private unsent = 0;
  /** when the socket last took an answer, or answers began to wait for it */
  private lastTakenAt = 0;
  private readonly wakeReads = () => this.scheduleReads();
  private get uploads(): UploadBudget {
    return this.ctx?.uploads ?? processUploads;
  }

  /** `host`: the address dialled, for an outgoing socket (its remoteAddress is unset until it connects) */
  /** `download`: the process's limit on bytes read from peers and the registry (--max-download-rate) */
  /** `reads`: the socket reads into a buffer of ours (a socket we dialled with its onread) */
  constructor(socket: Socket, outgoing: boolean, host?: string, download?: RateLimit, reads?: ReusedReads) {
    super();
    this.socket = socket;
    this.outgoing = outgoing;
    this.host = host ?? (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    this.bits = new Bitfield(0);
    this.wire = new Wire(socket, this.wireHandler());
    socket.setNoDelay(true);
    // Reading pauses while the limit holds bytes back; TCP then slows the peer down.
    const pace = download ? paceReads(socket, download) : null;
    const read = (chunk: Buffer) => {
      pace?.(chunk.length);
      this.wire.push(chunk);
    };
    if (reads) reads.deliver = read;
    else socket.on('data', read);
    this.readyTimer = setTimeout(() => this.fault('not ready in time'), READY_TIMEOUT_MS);
    this.readyTimer.unref();
    this.watchdog = setInterval(() => this.checkDeadlines(), WATCHDOG_MS);
    this.watchdog.unref();
    socket.on('error', (e) => this.close(`socket: ${e.message}`));
    socket.on('close', () => this.close('socket closed'));
  }

  /** What the peer's messages do; the wire calls these as it parses them. */
  private wireHandler(): WireHandler {
    return {
      handshake: (infoHash, peerId, peer) => {
        this.id = peerId.toString('hex');
        if (!peer.extended) return this.close('peer lacks the extension protocol');
        this.peerFast = peer.fast;
        this.handshakeCallback?.(infoHash.toString('hex'), this.id);
      },
      extendedHandshake: (h) => this.ctx && this.onExtHandshake(h, this.ctx),
      extended: (payload) => this.onExtended(payload),
      choke: () => {
        this.peerChoking = true;
        // Without the fast extension a choke drops our requests (with it, the peer rejects each one).
        if (!this.peerFast) for (const ask of [...this.asking.values()]) this.failAsk(ask, new Error('peer is choking'));
        if (this.ready) this.emit('choke');
      },
      unchoke: () => {
        this.peerChoking = false;
        if (this.ready) this.emit('unchoke');
      },
      interested: (interested) => (this.peerInterested = interested),
      have: (i) => this.onHave(i),
      bitfield: (bits) => this.onBitfield(new Bitfield(bits.length * 8, bits)),
      haveAll: () => this.onHaveAll(),
      request: (piece, offset, length) => this.onRequest(piece, offset, length),
      cancel: (piece, offset, length) => this.onCancel(piece, offset, length),
      reject: (piece, offset) => {
        const ask = this.asking.get(piece);
        if (ask && offset % BLOCK_SIZE === 0 && ask.got[offset / BLOCK_SIZE] === 0) this.failAsk(ask, new Error('request was rejected'));
      },
      blockTarget: (piece, offset, length) => this.blockTarget(piece, offset, length),
      block: () => this.blockArrived(),
      refused: (why) => this.fault(`protocol: ${why}`),
    };
  }

  /** Who the peer is for bans and duplicates: its address and the id it chose (an id alone is the peer's to forge). */
  get key(): string {
    return `${this.host}/${this.id}`;
  }

  /** The handshake's info hash, for an incoming connection to pick its blob. */
  onHandshake(cb: (infoHash: string, peerId: string) => void): void {
    this.handshakeCallback = cb;
  }

  /** Start (outgoing) or answer (incoming) the handshake for a blob. */
  attach(ctx: PeerContext): void {
    this.ctx = ctx;
    this.bits = new Bitfield(ctx.pieceCount);
    // With a key, nothing about the blob (its size) goes out before the peer's proof checks out: see 'info'.
    const size = ctx.size === undefined || ctx.swarmKey ? {} : { s: ctx.size };
    this.wire.handshake(ctx.infoHash, ctx.ourId, { p: ctx.listenPort, v: 'swarmpull', nonce: this.nonce, key: ctx.swarmKey ? 1 : 0, ...size });
  }

  private onExtended(payload: Uint8Array): void {
    const ctx = this.ctx;
    if (!ctx) return;
    let msg: Record<string, unknown>;
    try {
      msg = decodeBencode(payload) as Record<string, unknown>;
    } catch {
      return this.fault('undecodable extension message');
    }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg) || msg instanceof Uint8Array) return this.fault('bad extension message');
    const type = asString(msg.t);
    if (type === 'auth') {
      const peerRole: Role = this.outgoing ? 'responder' : 'initiator';
      if (this.authed || !ctx.swarmKey || !this.peerNonce || !checkProof(ctx.swarmKey, peerRole, this.transcript(ctx), msg.mac)) {
        return this.fault('swarm key proof failed');
      }
      this.authed = true;
      this.send({ t: 'info', ...(ctx.size === undefined ? {} : { s: ctx.size }) });
      return;
    }
    if (type === 'info') {
      if (!this.authed || this.gotInfo) return this.fault('info before the swarm key proof');
      this.gotInfo = true;
      if (Number.isSafeInteger(msg.s) && (msg.s as number) >= 0) this.toldSize = msg.s as number;
      return this.maybeReady();
    }
    if (!this.ready) return;
    if (type === 'claim' && Array.isArray(msg.p)) {
      const pieces = msg.p.slice(0, CLAIM_MESSAGE_PIECES).filter((p): p is number => Number.isInteger(p) && p >= 0 && p < ctx.pieceCount);
      this.emit('claim', pieces, msg.v === 1);
    } else if (type === 'hashreq') {
      this.emit('hashRequest');
    } else if (type === 'hashes' && msg.h instanceof Uint8Array && msg.h.length === ctx.pieceCount * 32) {
      this.emit('hashes', Buffer.from(msg.h));
    } else if (type === 'pex' && Array.isArray(msg.peers)) {
      const peers = msg.peers.slice(0, MAX_PEX_PER_MESSAGE).map(asString).map(parseHostPort).filter((p) => p !== null);
      this.emit('pex', peers);
    }
  }

  private onExtHandshake(h: Record<string, unknown>, ctx: PeerContext): void {
    if (this.gotExtHandshake) return;
    this.gotExtHandshake = true;
    const port = h.p;
    if (Number.isInteger(port) && (port as number) > 0 && (port as number) < 65536) this.listenPort = port as number;
    const nonce = h.nonce;
    if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_BYTES) return this.fault('not a swarmpull peer');
    this.peerNonce = Buffer.from(nonce);
    const peerHasKey = h.key === 1;
    if (!!ctx.swarmKey !== peerHasKey) return this.close(ctx.swarmKey ? 'peer has no swarm key' : 'peer wants a swarm key');
    if (ctx.swarmKey) {
      // Our own nonce handed back (from this connection or another of ours) would make us prove for the peer.
      if (isOurNonce(nonce)) return this.fault('swarm key proof failed: the peer sent a nonce of ours');
      const ourRole: Role = this.outgoing ? 'initiator' : 'responder';
      this.send({ t: 'auth', mac: proof(ctx.swarmKey, ourRole, this.transcript(ctx)) });
      return;
    }
    if (Number.isSafeInteger(h.s) && (h.s as number) >= 0) this.toldSize = h.s as number;
    this.maybeReady();
  }

  /** What both proofs cover: the blob, both ids and both nonces, each in the initiator-then-responder order. */
  private transcript(ctx: PeerContext): Transcript {
    const ours = { id: ctx.ourId, nonce: this.nonce };
    const theirs = { id: Buffer.from(this.id, 'hex'), nonce: this.peerNonce! };
    const [initiator, responder] = this.outgoing ? [ours, theirs] : [theirs, ours];
    return { infoHash: ctx.infoHash, initiatorId: initiator.id, responderId: responder.id, initiatorNonce: initiator.nonce, responderNonce: responder.nonce };
  }

  private maybeReady(): void {
    let ctx = this.ctx;
    if (this.ready || !ctx || !this.gotExtHandshake || (ctx.swarmKey && !(this.authed && this.gotInfo))) return;
    if (ctx.withSize) {
      // Before our bitfield goes out and theirs comes in: both have the layout of the size the peer told.
      const sized = ctx.withSize(this.toldSize);
      if (!sized) return this.close(`no usable blob size (told ${this.toldSize ?? 'none'})`);
      this.ctx = ctx = sized;
      this.bits = new Bitfield(ctx.pieceCount);
    }
    this.ready = true;
    clearTimeout(this.readyTimer);
    this.socket.cork();
    this.wire.bitfield(ctx.ourBits().buffer);
    // A LAN has no free riders to punish: everyone is unchoked.
    this.wire.unchoke();
    this.wire.interested();
    this.socket.uncork();
    this.emit('ready');
  }

  // What a peer says it has counts only once it is ready (handshakes done, key proven): an honest peer sends its
  // bitfield after ours, and one bitfield (or have-all) per connection, as BEP 3 and BEP 6 have it.
  private onBitfield(bits: { get(i: number): boolean }): void {
    if (!this.ready || this.gotBitfield) return;
    this.gotBitfield = true;
    for (let i = 0; i < this.bits.length; i++) this.bits.set(i, bits.get(i) && !this.refused.has(i));
    this.emit('bitfield');
  }

  private onHaveAll(): void {
    if (!this.ready || this.gotBitfield) return;
    this.gotBitfield = true;
    for (let i = 0; i < this.bits.length; i++) if (!this.refused.has(i)) this.bits.set(i);
    this.emit('bitfield');
  }

  private onHave(i: number): void {
    if (!this.ready || i < 0 || i >= this.bits.length || this.bits.get(i) || this.refused.has(i)) return;
    this.bits.set(i);
    this.emit('have', i);
  }

  /**
   * The peer advertised a piece and then rejected, stalled or dropped our request: it no longer counts as having it
   * (whatever it says again), so that the piece goes to other peers or the registry.
   */
  distrust(piece: number): void {
    this.refused.add(piece);
    this.bits.set(piece, false);
  }

  private onRequest(piece: number, offset: number, length: number): void {
    const ctx = this.ctx;
    if (!ctx || !this.ready) return this.refuseRequest(piece, offset, length);
    if (this.asked.size >= MAX_PEER_REQUESTS) {
      // Its answers waiting on its socket hold its share of memory and its requests wait unread: it does not read.
      return this.fault(this.unsent > 0 ? `asks faster than it reads (${MAX_PEER_REQUESTS} requests waiting)` : 'too many outstanding requests');
    }
    const bad =
      piece < 0 || piece >= ctx.pieceCount || length <= 0 || length > BLOCK_SIZE || offset < 0 || offset + length > ctx.pieceLength(piece);
    if (bad || !ctx.ourBits().get(piece)) return this.refuseRequest(piece, offset, length);
    // Read at the end of the tick: the other blocks of a piece asked for together (the same socket read) join it.
    const asked: Asked = { piece, offset, length };
    this.asked.add(asked);
    this.toRead.push(asked);
    this.scheduleReads();
  }

  /** A request we will not answer: BEP 6 has us say so (without it, the peer's timeout does). */
  private refuseRequest(piece: number, offset: number, length: number): void {
    if (this.peerFast) this.wire.reject(piece, offset, length);
  }

  /** The peer withdrew a request: the first of its requests for that block goes unanswered. */
  private onCancel(piece: number, offset: number, length: number): void {
    for (const r of this.asked) {
      if (r.piece !== piece || r.offset !== offset || r.length !== length) continue;
      this.asked.delete(r);
      const waiting = this.toRead.indexOf(r);
      if (waiting >= 0) this.toRead.splice(waiting, 1);
      return;
    }
  }

  private scheduleReads(): void {
    if (this.readsScheduled || this.closed) return;
    this.readsScheduled = true;
    setImmediate(() => {
      this.readsScheduled = false;
      this.startReads();
    });
  }

  /**
   * Read what the waiting requests need, contiguous blocks of a piece in one read, while this connection, its
   * address and the process have memory to spare; the rest waits for the socket to take answers.
   */
  private startReads(): void {
    const ctx = this.ctx;
    if (this.closed || !ctx || this.toRead.length === 0) return;
    const byPiece = new Map<number, Asked[]>();
    for (const r of this.toRead) {
      const list = byPiece.get(r.piece);
      if (list) list.push(r);
      else byPiece.set(r.piece, [r]);
    }
    const started = new Set<Asked>();
    reads: for (const list of byPiece.values()) {
      list.sort((a, b) => a.offset - b.offset);
      for (let i = 0; i < list.length; ) {
        let end = list[i]!.offset + list[i]!.length;
        let j = i + 1;
        while (j < list.length && list[j]!.offset === end && end + list[j]!.length - list[i]!.offset <= MAX_READ) end += list[j++]!.length;
        const run = list.slice(i, j);
        const bytes = end - run[0]!.offset;
        if (this.reading >= MAX_READS_PER_CONNECTION || (this.heldBytes > 0 && this.heldBytes + bytes > MAX_UPLOAD_HELD)) break reads;
        const buf = this.uploads.take(this.host, bytes, this.wakeReads);
        if (!buf) break reads;
        for (const r of run) started.add(r);
        this.read(ctx, run, buf);
        i = j;
      }
    }
    if (started.size > 0) this.toRead = this.toRead.filter((r) => !started.has(r));
  }

  /** One disk read for a run of contiguous blocks; each answer holds the buffer until the socket has taken it. */
  private read(ctx: PeerContext, run: Asked[], into: Buffer): void {
    const held: Held = { buf: into, answers: run.length, reading: true };
    this.held.add(held);
    this.heldBytes += into.length;
    this.reading++;
    const first = run[0]!.offset;
    ctx.readBlock(run[0]!.piece, first, into.length, into).then(
      (buf) => {
        this.readDone(held);
        if (this.closed) return this.release(held, held.answers);
        const taken = () => this.taken(held);
        // The run's answers leave in one writev.
        this.socket.cork();
        for (const r of run) {
          // A request the peer cancelled meanwhile gets no answer, and holds nothing.
          if (!this.asked.delete(r)) {
            this.release(held, 1);
            continue;
          }
          const block = buf.subarray(r.offset - first, r.offset - first + r.length);
          if (this.unsent === 0) this.lastTakenAt = Date.now();
          this.unsent++;
          this.wire.piece(r.piece, r.offset, block, taken);
          this.emit('upload', block.length);
        }
        this.socket.uncork();
      },
      () => {
        this.readDone(held);
        for (const r of run) if (this.asked.delete(r) && !this.closed) this.refuseRequest(r.piece, r.offset, r.length);
        this.release(held, held.answers);
      },
    );
  }

  private readDone(held: Held): void {
    held.reading = false;
    this.reading--;
    if (this.toRead.length > 0) this.scheduleReads();
  }

  /** `count` answers of a read no longer need its buffer; the last one gives its bytes back. */
  private release(held: Held, count: number): void {
    if (!this.held.has(held)) return;
    held.answers -= count;
    if (held.answers > 0) return;
    this.held.delete(held);
    this.heldBytes -= held.buf.length;
    // Nothing reads the buffer any more (the socket took every answer, or was destroyed with them): use it again.
    this.uploads.give(this.host, held.buf, true);
    if (this.toRead.length > 0) this.scheduleReads();
  }

  /** The socket took an answer (or failed to, closing): its buffer may go. */
  private taken(held: Held): void {
    if (this.closed) return;
    this.unsent--;
    this.lastTakenAt = Date.now();
    this.release(held, 1);
  }

  /**
   * Ask for every block of a piece (`length` bytes); resolves with the piece, its blocks copied into it straight
   * from the socket's reads, or rejects at the first block that fails (timeout, reject, cancel, close). One promise
   * and one buffer per piece, not per 16 KiB block: a block request can wait a second behind the pipeline on a busy
   * link, and each object it held lived long enough to reach V8's old generation (measured, 1 GiB from one peer on
   * loopback: 62 -> 26 MB promoted). The caller may give the buffer back (givePieceBuffer) once done with it.
   */
  requestPiece(piece: number, length: number): Promise<Buffer> {
    if (this.closed) return Promise.reject(new Error('peer closed'));
    if (this.asking.has(piece)) return Promise.reject(new Error('piece already requested from this peer'));
    const count = Math.ceil(length / BLOCK_SIZE);
    if (count === 0) return Promise.resolve(Buffer.alloc(0)); // (the one piece of an empty blob: nothing to ask)
    return new Promise((resolve, reject) => {
      const ask: PieceAsk = { piece, buf: takePieceBuffer(length), got: new Uint8Array(count), missing: count, sentAt: Date.now(), resolve, reject };
      if (this.asking.size === 0) this.lastBlockAt = ask.sentAt;
      this.asking.set(piece, ask);
      this.inflight += count;
      this.wire.request(piece, blocksOf(ask, () => true));
    });
  }

  /** Where a block the peer sends goes: into the piece we asked for, once per block, or nowhere. */
  private blockTarget(piece: number, offset: number, length: number): Buffer | null {
    const ask = this.asking.get(piece);
    if (!ask || offset % BLOCK_SIZE !== 0 || offset >= ask.buf.length) return null;
    const k = offset / BLOCK_SIZE;
    if (ask.got[k] !== 0 || length !== Math.min(BLOCK_SIZE, ask.buf.length - offset)) return null;
    ask.got[k] = 1;
    this.receiving = ask;
    return ask.buf.subarray(offset, offset + length);
  }

  private blockArrived(): void {
    const ask = this.receiving;
    this.receiving = null;
    // (the piece may have been given up, cancelled or failed, while its block arrived)
    if (!ask || this.asking.get(ask.piece) !== ask) return;
    this.lastBlockAt = Date.now();
    this.delivered++;
    this.inflight--;
    if (--ask.missing > 0) return;
    this.asking.delete(ask.piece);
    ask.resolve(ask.buf);
  }

  private failAsk(ask: PieceAsk, err: Error): void {
    if (this.asking.get(ask.piece) !== ask) return;
    this.asking.delete(ask.piece);
    this.inflight -= ask.missing;
    ask.reject(err);
  }

  /** Withdraw our requests for a piece (it arrived from elsewhere); they fail with 'request was cancelled'. */
  cancelPiece(piece: number): void {
    const ask = this.asking.get(piece);
    if (!this.ready || !ask) return;
    this.wire.cancel(piece, blocksOf(ask, (k) => ask.got[k] === 0));
    this.failAsk(ask, new Error('request was cancelled'));
  }

  have(piece: number): void {
    if (this.ready) this.wire.have(piece);
  }

  claim(pieces: number[], verified = false): void {
    if (this.ready) this.send({ t: 'claim', p: pieces, ...(verified ? { v: 1 } : {}) });
  }

  /** Ask for the hashes of the pieces the peer vouches for (a blob that failed its digest: see BlobSwarm.repair). */
  requestHashes(): void {
    if (this.ready) this.send({ t: 'hashreq' });
  }

  /** `hashes`: 32 bytes a piece, zeros for the pieces we do not vouch for. */
  sendHashes(hashes: Buffer): void {
    if (this.ready) this.send({ t: 'hashes', h: hashes });
  }

  pex(peers: string[]): void {
    if (this.ready && peers.length) this.send({ t: 'pex', peers });
  }

  get choking(): boolean {
    return this.peerChoking;
  }

  /** The peer is interested in us and still misses pieces: it may want more from us. */
  get wantsFromUs(): boolean {
    return this.peerInterested && this.asked.size > 0;
  }

  /** A request unanswered past its deadline, or a silent connection, closes the peer (its pieces go elsewhere). */
  private checkDeadlines(): void {
    const now = Date.now();
    // Requests are settled in any order but sent in order: the first entry is the oldest outstanding.
    const oldest = this.asking.values().next().value;
    if (oldest && now - oldest.sentAt > REQUEST_DEADLINE_MS) return this.fault(`a request took over ${REQUEST_DEADLINE_MS / 1000} s`);
    if (oldest && now - this.lastBlockAt > REQUEST_TIMEOUT_MS) return this.fault('a request timed out');
    if (now - this.wire.lastMessageAt > IDLE_TIMEOUT_MS) return this.close(`silent for ${IDLE_TIMEOUT_MS / 1000} s`);
    if (this.unsent > 0 && now - this.lastTakenAt > UPLOAD_STALL_MS) return this.fault(`took none of our answers for ${UPLOAD_STALL_MS / 1000} s`);
    if (this.ctx && now - this.wire.lastSentAt >= KEEP_ALIVE_MS) this.wire.keepAlive();
  }

  /** Close for breaking a bound or the protocol: the swarm then leaves this peer alone for a while. */
  private fault(reason: string): void {
    if (!this.closed) this.faulty = true;
    this.close(reason);
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.ready = false;
    clearTimeout(this.readyTimer);
    clearInterval(this.watchdog);
    this.wire.stop();
    this.socket.destroy();
    for (const ask of [...this.asking.values()]) this.failAsk(ask, new Error(`peer closed: ${reason}`));
    // What our answers held goes back now; a read still under way gives its bytes back when it ends.
    this.toRead = [];
    this.asked.clear();
    this.unsent = 0;
    this.uploads.forget(this.wakeReads);
    for (const held of [...this.held]) if (!held.reading) this.release(held, held.answers);
    this.emit('close', reason);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private send(msg: Record<string, unknown>): void {
    if (!this.wire.extended(bencode.encode(msg))) this.close('peer lacks the swarmpull extension');
  }
}

/** A block request of the peer's, not answered yet. */
interface Asked {
  piece: number;
  offset: number;
  length: number;
}

/** A piece we asked the peer for: the buffer its blocks arrive in, and which have. */
interface PieceAsk {
  piece: number;
  buf: Buffer;
  /** 1 for each block here (or arriving) */
  got: Uint8Array;
  /** blocks not here yet */
  missing: number;
  sentAt: number;
  resolve: (piece: Buffer) => void;
  reject: (err: Error) => void;
}

/** [offset, length] of the blocks of a piece asked for that `pick` (by block number) selects */
function blocksOf(ask: PieceAsk, pick: (k: number) => boolean): [number, number][] {
  const blocks: [number, number][] = [];
  for (let k = 0; k < ask.got.length; k++) {
    const offset = k * BLOCK_SIZE;
    if (pick(k)) blocks.push([offset, Math.min(BLOCK_SIZE, ask.buf.length - offset)]);
  }
  return blocks;
}

/** A buffer read for the peer: the answers cut from it that the socket has not taken yet. */
interface Held {
  /** the buffer taken from the upload budget and read into */
  buf: Buffer;
  answers: number;
  /** the disk read is under way */
  reading: boolean;
}

function asString(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
  return '';
}

/** `a.b.c.d:port` of a peer another peer told us of, or null: not loopback, broadcast, multicast (candidates.ts) */
function parseHostPort(s: string): { host: string; port: number } | null {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(s);
  if (!m || !dialableFromNetwork(m[1]!)) return null;
  const port = Number(m[2]);
  return port > 0 && port < 65536 ? { host: m[1]!, port } : null;
}
