// One blob's swarm: the peers that share it, the pieces we have and want, and the loop that draws pieces from
// peers (rarest first) and from the registry (pieces no peer has, at random), then verifies the whole blob.
import { open, type FileHandle } from 'node:fs/promises';
import { integrityError, unreachableError } from '../errors.ts';
import type { Descriptor } from '../image/types.ts';
import { Bitfield } from '../store/bitfield.ts';
import type { PartialBlob } from '../store/partial.ts';
import { BLOCK_SIZE, pieceLayout, pieceRange, type PieceLayout } from '../store/pieces.ts';
import type { Peer, PeerContext } from './peer.ts';
import { PiecePicker } from './picker.ts';
import type { Slots } from './semaphore.ts';

/** blocks in flight per peer: enough to fill a LAN link (measured: 64+ in flight reach 320-390 MiB/s) */
const PIPELINE = 96;
/** a registry request covers at most this much, so pieces spread among hosts early */
const REGISTRY_RUN_BYTES = 4 << 20;
/** how long a peer's claim on a piece (it fetches it from the registry) keeps us from fetching it too */
const CLAIM_MS = 15_000;
/** a download that gets no byte from anywhere for this long fails */
const STALL_MS = 60_000;
const UPLOAD_CACHE_PIECES = 8;

export interface RegistrySource {
  readRange(start: number, end: number, onData: (chunk: Buffer, offset: number) => Promise<void>, signal: AbortSignal): Promise<void>;
}

export interface SwarmProgress {
  bytes(n: number, source: 'registry' | 'peer'): void;
  log(msg: string): void;
}

export interface BlobSwarmOptions {
  desc: Pick<Descriptor, 'digest' | 'size'>;
  infoHash: Buffer;
  peerContext: Omit<PeerContext, 'infoHash' | 'pieceCount' | 'pieceLength' | 'ourBits' | 'readBlock'>;
  registrySlots: Slots;
  /** whether to use peers at all: long registry runs when not */
  usePeers: boolean;
  onPeerBanned?: (peer: Peer, why: string) => void;
}

type Source = string; // a peer id, or 'registry'
const REGISTRY: Source = 'registry';

export class BlobSwarm {
  readonly desc: Pick<Descriptor, 'digest' | 'size'>;
  readonly infoHash: Buffer;
  readonly layout: PieceLayout;
  readonly peers = new Map<string, Peer>();
  /** peer ids that delivered at least one block */
  readonly usedPeers = new Set<string>();
  readonly bannedPeers = new Set<string>();
  private readonly opts: BlobSwarmOptions;
  private have: Bitfield;
  private partial: PartialBlob | null = null;
  private reader: FileHandle | null = null;
  private picker: PiecePicker;
  /** pieces each peer has that we have counted in the picker */
  private readonly counted = new Map<Peer, Bitfield>();
  /** which peers are fetching each piece now */
  private readonly fetching = new Map<number, Set<Peer>>();
  private readonly registryActive = new Set<number>();
  /** who supplied each piece in this run, for the trust check */
  private readonly sources = new Map<number, Source>();
  private readonly uploadCache = new Map<number, Promise<Buffer>>();
  private downloading: {
    registry?: RegistrySource;
    progress: SwarmProgress;
    signal: AbortSignal;
    resolve: (path: string) => void;
    reject: (err: unknown) => void;
    lastByteAt: number;
    lastRegistryError?: unknown;
    finishing: boolean;
  } | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private refetchedAll = false;

  constructor(opts: BlobSwarmOptions) {
    this.opts = opts;
    this.desc = opts.desc;
    this.infoHash = opts.infoHash;
    this.layout = pieceLayout(opts.desc.size);
    this.have = new Bitfield(this.layout.count);
    this.picker = new PiecePicker(this.have);
  }

  /** Serve a complete, verified blob. */
  async seedFrom(path: string): Promise<void> {
    this.reader = await open(path, 'r');
    for (let i = 0; i < this.layout.count; i++) this.have.set(i);
  }

  get complete(): boolean {
    return this.have.isComplete();
  }

  /** What a Peer needs to speak for this blob. */
  peerContext(): PeerContext {
    return {
      ...this.opts.peerContext,
      infoHash: this.infoHash,
      pieceCount: this.layout.count,
      pieceLength: (i) => pieceRange(this.layout, i).end - pieceRange(this.layout, i).start,
      ourBits: () => this.have,
      readBlock: (piece, offset, length) => this.readBlock(piece, offset, length),
    };
  }

  /** A peer whose handshake named this blob. Returns false if it is a duplicate or banned. */
  addPeer(peer: Peer): boolean {
    if (this.bannedPeers.has(peer.id) || this.bannedPeers.has(peer.host)) return false;
    const existing = this.peers.get(peer.id);
    if (existing && !existing.isClosed) return false;
    this.peers.set(peer.id, peer);
    const counted = new Bitfield(this.layout.count);
    this.counted.set(peer, counted);
    const count = () => {
      for (let i = 0; i < this.layout.count; i++) {
        if (peer.bits.get(i) && !counted.get(i)) {
          counted.set(i);
          this.picker.peerHas(i);
        }
      }
      this.schedule();
    };
    peer.on('ready', () => this.schedule());
    peer.on('bitfield', count);
    peer.on('have', (i) => {
      if (!counted.get(i)) {
        counted.set(i);
        this.picker.peerHas(i);
      }
      this.schedule();
    });
    peer.on('claim', (pieces) => {
      const until = Date.now() + CLAIM_MS;
      for (const p of pieces) this.picker.claimedByPeer(p, until);
    });
    peer.on('close', () => {
      this.picker.removePeer(counted);
      this.counted.delete(peer);
      if (this.peers.get(peer.id) === peer) this.peers.delete(peer.id);
      this.schedule();
    });
    return true;
  }

  /**
   * Fill `partial` from peers and the registry until every piece is there and the blob verifies; resolves with
   * the blob's path in the store. Pieces already in the partial (a resumed pull) are kept.
   */
  async download(partial: PartialBlob, opts: { registry?: RegistrySource; progress: SwarmProgress; signal: AbortSignal }): Promise<string> {
    this.partial = partial;
    this.have = partial.bitfield;
    this.picker = new PiecePicker(this.have);
    for (const [peer, counted] of this.counted) {
      counted.buffer.fill(0);
      for (let i = 0; i < this.layout.count; i++) if (peer.bits.get(i)) counted.set(i);
      this.picker.addPeer(counted);
    }
    this.reader = await open(partial.path, 'r');
    partial.onPiece = (i) => {
      this.uploadCache.delete(i);
      for (const peer of this.peers.values()) peer.have(i);
    };
    const result = new Promise<string>((resolve, reject) => {
      this.downloading = { ...opts, resolve, reject, lastByteAt: Date.now(), finishing: false };
    });
    const onAbort = () => this.downloading?.reject(opts.signal.reason);
    opts.signal.addEventListener('abort', onAbort, { once: true });
    this.watchdog = setInterval(() => this.checkStall(), 1000);
    this.schedule();
    try {
      return await result;
    } finally {
      opts.signal.removeEventListener('abort', onAbort);
      clearInterval(this.watchdog);
      this.downloading = null;
    }
  }

  /** Start whatever can start now. Called on every event that could change what to fetch. */
  private schedule(): void {
    const d = this.downloading;
    if (!d || d.finishing || d.signal.aborted) return;
    if (this.have.isComplete()) {
      if (!this.anyFetchRunning()) void this.finish();
      return;
    }
    for (const peer of this.peers.values()) this.fillPeer(peer);
    this.fillRegistry();
  }

  private anyFetchRunning(): boolean {
    return this.fetching.size > 0 || this.registryActive.size > 0;
  }

  private fillPeer(peer: Peer): void {
    if (!peer.ready || peer.choking || peer.isClosed) return;
    while (peer.inflight < PIPELINE) {
      const piece = this.picker.pickFromPeer(peer.bits, (i) => !!this.fetching.get(i)?.has(peer) || this.registryActive.has(i));
      if (piece === null) return;
      this.fetchFromPeer(peer, piece);
    }
  }

  private fetchFromPeer(peer: Peer, piece: number): void {
    const d = this.downloading!;
    const partial = this.partial!;
    this.picker.start(piece);
    let set = this.fetching.get(piece);
    if (!set) this.fetching.set(piece, (set = new Set()));
    set.add(peer);
    const { start, end } = pieceRange(this.layout, piece);
    const blocks: Promise<void>[] = [];
    for (let off = 0; off < end - start; off += BLOCK_SIZE) {
      const len = Math.min(BLOCK_SIZE, end - start - off);
      blocks.push(
        peer.request(piece, off, len).then(async (block) => {
          if (this.have.get(piece)) return; // another peer was faster (endgame)
          await partial.write(block, start + off);
          d.lastByteAt = Date.now();
          this.usedPeers.add(peer.id);
          d.progress.bytes(block.length, 'peer');
        }),
      );
    }
    Promise.all(blocks).then(
      () => {
        if (this.have.get(piece) && !this.sources.has(piece)) this.sources.set(piece, peer.id);
      },
      (err: Error) => {
        if (!this.have.get(piece) && set.size === 1) partial.abandon(piece);
        if (!peer.isClosed) d.progress.log(`peer ${peer.host}: piece ${piece} of ${this.desc.digest.slice(7, 19)} failed (${err.message})`);
      },
    ).finally(() => {
      set.delete(peer);
      if (set.size === 0) this.fetching.delete(piece);
      this.picker.finish(piece);
      this.schedule();
    });
  }

  private fillRegistry(): void {
    const d = this.downloading!;
    if (!d.registry) return;
    const maxPieces = this.opts.usePeers ? Math.max(1, Math.floor(REGISTRY_RUN_BYTES / this.layout.pieceLength)) : Infinity;
    while (this.opts.registrySlots.tryTake()) {
      const first = this.opts.usePeers ? this.picker.pickForRegistry() : this.firstMissingIdle();
      if (first === null) {
        this.opts.registrySlots.give();
        return;
      }
      const run = [first];
      while (run.length < maxPieces && this.picker.extendsRegistryRun(first + run.length)) run.push(first + run.length);
      this.fetchFromRegistry(run, d.registry);
    }
  }

  /** Without peers, the registry takes the missing pieces in order (long sequential requests). */
  private firstMissingIdle(): number | null {
    for (let i = 0; i < this.layout.count; i++) if (!this.have.get(i) && !this.picker.isActive(i)) return i;
    return null;
  }

  private fetchFromRegistry(run: number[], registry: RegistrySource): void {
    const d = this.downloading!;
    const partial = this.partial!;
    for (const p of run) {
      this.picker.start(p);
      this.registryActive.add(p);
    }
    for (const peer of this.peers.values()) peer.claim(run);
    const start = pieceRange(this.layout, run[0]!).start;
    const end = pieceRange(this.layout, run.at(-1)!).end;
    registry
      .readRange(start, end, async (chunk, offset) => {
        await partial.write(chunk, offset);
        d.lastByteAt = Date.now();
        d.progress.bytes(chunk.length, 'registry');
      }, d.signal)
      .then(
        () => {
          for (const p of run) this.sources.set(p, REGISTRY);
        },
        (err: unknown) => {
          d.lastRegistryError = err;
          for (const p of run) if (!this.have.get(p)) partial.abandon(p);
          if (!d.signal.aborted) d.progress.log(`registry: ${(err as Error).message}`);
        },
      )
      .finally(() => {
        this.opts.registrySlots.give();
        for (const p of run) {
          this.picker.finish(p);
          this.registryActive.delete(p);
        }
        this.schedule();
      });
  }

  private checkStall(): void {
    const d = this.downloading;
    if (!d || d.finishing) return;
    this.schedule();
    if (Date.now() - d.lastByteAt < STALL_MS) return;
    const why = d.registry
      ? d.lastRegistryError ?? unreachableError(`blob ${this.desc.digest}: no byte arrived for ${STALL_MS / 1000} s`)
      : unreachableError(`blob ${this.desc.digest}: no peer could serve it for ${STALL_MS / 1000} s and the registry is not used`);
    d.reject(why);
  }

  /** Every piece is here: verify; on a mismatch find and ban the peers that lied, repair, verify again. */
  private async finish(): Promise<void> {
    const d = this.downloading!;
    const partial = this.partial!;
    d.finishing = true;
    try {
      if (!(await partial.verify())) {
        await this.repair(d);
        if (!this.have.isComplete()) {
          d.finishing = false;
          this.schedule();
          return;
        }
        if (!(await partial.verify())) throw integrityError(`blob ${this.desc.digest} failed verification from every source`);
      }
      d.resolve(await partial.commit());
    } catch (err) {
      d.reject(err);
    }
  }

  /**
   * The blob failed its digest. Pieces from the registry are trusted (the registry vouched for the digest);
   * every other piece is compared with the registry's bytes, and a peer whose piece differs is banned.
   * Without a registry, the pieces peers gave are dropped and fetched again.
   */
  private async repair(d: NonNullable<BlobSwarm['downloading']>): Promise<void> {
    const partial = this.partial!;
    const suspect: number[] = [];
    for (let i = 0; i < this.layout.count; i++) if (this.sources.get(i) !== REGISTRY) suspect.push(i);
    if (suspect.length === 0 && !this.refetchedAll) {
      // Every piece came from the registry: a glitch there or on disk; fetch it all once more.
      this.refetchedAll = true;
      d.progress.log(`blob ${this.desc.digest.slice(7, 19)} failed verification; fetching it again`);
      partial.resetPieces();
      this.sources.clear();
      return;
    }
    d.progress.log(`blob ${this.desc.digest.slice(7, 19)} failed verification; checking ${suspect.length} pieces from peers against the registry`);
    if (!d.registry) {
      partial.resetPieces(suspect);
      for (const i of suspect) this.sources.delete(i);
      return;
    }
    for (const i of suspect) {
      const { start, end } = pieceRange(this.layout, i);
      const fromRegistry = Buffer.alloc(end - start);
      await d.registry.readRange(start, end, async (chunk, offset) => {
        chunk.copy(fromRegistry, offset - start);
      }, d.signal);
      d.progress.bytes(fromRegistry.length, 'registry');
      const onDisk = await partial.readPiece(i);
      if (!onDisk.equals(fromRegistry)) {
        const liar = this.sources.get(i);
        if (liar) this.ban(liar, `sent a corrupt piece ${i} of ${this.desc.digest.slice(7, 19)}`, d);
        partial.resetPieces([i]);
        await partial.write(fromRegistry, start);
      }
      this.sources.set(i, REGISTRY);
    }
  }

  private ban(peerId: string, why: string, d: { progress: SwarmProgress }): void {
    this.bannedPeers.add(peerId);
    const peer = this.peers.get(peerId);
    d.progress.log(`banning peer ${peer?.host ?? peerId.slice(0, 8)}: ${why}`);
    if (peer) {
      this.bannedPeers.add(peer.host);
      this.opts.onPeerBanned?.(peer, why);
      peer.close(`banned: ${why}`);
    }
  }

  /** Read a block for an upload; a whole piece is read once and its blocks answered from memory. */
  private readBlock(piece: number, offset: number, length: number): Promise<Buffer> {
    let cached = this.uploadCache.get(piece);
    if (!cached) {
      const reader = this.reader;
      if (!reader) return Promise.reject(new Error('nothing to serve'));
      const { start, end } = pieceRange(this.layout, piece);
      const buf = Buffer.allocUnsafe(end - start);
      cached = reader.read(buf, 0, buf.length, start).then(({ bytesRead }) => {
        if (bytesRead !== buf.length) throw new Error('short read');
        return buf;
      });
      cached.catch(() => this.uploadCache.delete(piece));
      this.uploadCache.set(piece, cached);
      if (this.uploadCache.size > UPLOAD_CACHE_PIECES) this.uploadCache.delete(this.uploadCache.keys().next().value!);
    } else {
      // keep recently used pieces at the end (LRU)
      this.uploadCache.delete(piece);
      this.uploadCache.set(piece, cached);
    }
    return cached.then((buf) => buf.subarray(offset, offset + length));
  }

  async close(): Promise<void> {
    for (const peer of this.peers.values()) peer.close('done');
    await this.reader?.close().catch(() => {});
    this.reader = null;
  }
}
