// A small blob known only by its digest (a manifest pulled by digest while the registry is out of reach), fetched
// whole from peers that hold it. Its size is not in the digest, but the swarm id does not need it: every blob up to
// 256 MiB has the same piece length, so the id follows from the digest alone, and a holder tells the size in its
// extension handshake (peer.ts). That told size is not trusted: the digest is the only check. One holder at a time
// sends the whole blob; a holder whose bytes do not match is banned, having cost us at most `maxSize` bytes.
import { createHash } from 'node:crypto';
import { mapLimit } from '../limit.ts';
import { Bitfield } from '../store/bitfield.ts';
import { pieceLayout, pieceLength, pieceRange } from '../store/pieces.ts';
import { swarmId } from './ids.ts';
import type { Peer, PeerContext } from './peer.ts';

/** pieces asked of the holder at once (64 blocks; a manifest is at most a few hundred blocks) */
const PIECES_IN_FLIGHT = 4;
/**
 * A holder has this long to send the whole blob, then the next holder is asked: a manifest is at most 4 MiB, well
 * under a second on a LAN, while a holder answering one block every few seconds is never silent long enough for the
 * wire's timeouts (peer.ts) and kept the search on it for 30 s, twice the time a pull gives the search (15 s).
 */
export const HOLDER_DEADLINE_MS = 5_000;

export interface DigestSearchOptions {
  digest: string;
  /** the largest size a holder may tell; at most 256 MiB, so that the piece length does not depend on it */
  maxSize: number;
  peerContext: Omit<PeerContext, 'infoHash' | 'pieceCount' | 'pieceLength' | 'ourBits' | 'readBlock'>;
  /** peer decisions, for --debug */
  debug: (msg: string) => void;
  /** what the user should see (bans) */
  warn: (msg: string) => void;
}

export class DigestSearch {
  readonly digest: string;
  readonly infoHash: Buffer;
  readonly peers = new Map<string, Peer>();
  readonly bannedPeers = new Set<string>();
  /** we never hold what we search for (Swarm asks, to stop dialling peers of a complete blob) */
  readonly complete = false;
  /** the verified bytes */
  readonly result: Promise<Buffer>;
  private readonly opts: DigestSearchOptions;
  private readonly tried = new Set<Peer>();
  private readonly holders: Peer[] = [];
  private busy = false;
  private done = false;
  private resolve!: (body: Buffer) => void;

  constructor(opts: DigestSearchOptions) {
    if (pieceLength(opts.maxSize) !== pieceLength(1)) throw new RangeError(`DigestSearch: ${opts.maxSize} bytes is too large to find by digest alone`);
    this.opts = opts;
    this.digest = opts.digest;
    this.infoHash = swarmId(opts.digest, pieceLength(opts.maxSize));
    this.result = new Promise((resolve) => (this.resolve = resolve));
  }

  /** A connection's context: no layout until the holder tells the size; we serve nothing. */
  peerContext(): PeerContext {
    const base = { ...this.opts.peerContext, infoHash: this.infoHash };
    const sized = (size: number): PeerContext => {
      const layout = pieceLayout(size);
      const none = new Bitfield(layout.count);
      return {
        ...base,
        pieceCount: layout.count,
        pieceLength: (i) => pieceRange(layout, i).end - pieceRange(layout, i).start,
        ourBits: () => none,
        readBlock: () => Promise.reject(new Error('nothing to serve')),
      };
    };
    return {
      ...sized(0),
      withSize: (size) => (size !== undefined && size > 0 && size <= this.opts.maxSize ? sized(size) : null),
    };
  }

  /** A peer whose handshake named this digest. */
  addPeer(peer: Peer): boolean {
    if (this.done || this.bannedPeers.has(peer.host)) return false;
    const existing = this.peers.get(peer.key);
    if (existing && !existing.isClosed) return false;
    this.peers.set(peer.key, peer);
    // A holder is a peer with every piece that lets us ask (its unchoke follows its bitfield).
    const consider = () => {
      if (this.done || this.tried.has(peer) || !peer.ready || peer.choking || !peer.bits.isComplete()) return;
      this.tried.add(peer);
      this.holders.push(peer);
      this.opts.debug(`${this.short}: peer ${peer.host}:${peer.listenPort} holds it (${peer.toldSize} bytes)`);
      void this.next();
    };
    for (const ev of ['ready', 'bitfield', 'have', 'unchoke'] as const) peer.on(ev, consider);
    peer.on('close', (why) => {
      this.opts.debug(`${this.short}: peer ${peer.host} closed: ${why}`);
      if (this.peers.get(peer.key) === peer) this.peers.delete(peer.key);
    });
    return true;
  }

  /**
   * Fetch the whole blob from the next holder, one holder at a time (each within HOLDER_DEADLINE_MS), until one's
   * bytes match the digest.
   */
  private async next(): Promise<void> {
    if (this.busy || this.done) return;
    const peer = this.holders.shift();
    if (!peer) return;
    this.busy = true;
    // Closing the holder fails its requests, and with them this fetch.
    const deadline = setTimeout(() => peer.close(`sent no whole blob within ${HOLDER_DEADLINE_MS / 1000} s`), HOLDER_DEADLINE_MS);
    try {
      const body = await this.fetchWhole(peer);
      if (this.done) return;
      if ('sha256:' + createHash('sha256').update(body).digest('hex') === this.digest) {
        this.opts.debug(`${this.short}: ${body.length} bytes from peer ${peer.host} match the digest`);
        this.done = true;
        this.resolve(body);
        return;
      }
      this.ban(peer, `sent ${body.length} bytes that do not match ${this.digest}`);
    } catch (err) {
      this.opts.debug(`${this.short}: peer ${peer.host} could not send it: ${(err as Error).message}`);
    } finally {
      clearTimeout(deadline);
      this.busy = false;
    }
    void this.next();
  }

  private async fetchWhole(peer: Peer): Promise<Buffer> {
    const size = peer.toldSize!; // checked by withSize before the peer became ready
    const layout = pieceLayout(size);
    const body = Buffer.alloc(size);
    const pieces = Array.from({ length: layout.count }, (_, piece) => ({ piece, ...pieceRange(layout, piece) }));
    await mapLimit(pieces, PIECES_IN_FLIGHT, async ({ piece, start, end }) => {
      (await peer.requestPiece(piece, end - start)).copy(body, start);
    });
    return body;
  }

  private ban(peer: Peer, why: string): void {
    this.bannedPeers.add(peer.host);
    this.opts.warn(`banning peer ${peer.host}: ${why}`);
    peer.close(`banned: ${why}`);
  }

  private get short(): string {
    return `search ${this.digest.slice(7, 19)}`;
  }

  /** Stop: close every connection of the search. */
  close(): void {
    this.done = true;
    for (const peer of this.peers.values()) peer.close('search over');
  }
}
