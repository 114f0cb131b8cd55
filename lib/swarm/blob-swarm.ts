// One blob's swarm: the peers that share it, the pieces we have and want, and the loop that draws pieces from
// peers (rarest first) and from the registry (pieces no peer has, at random), then verifies the whole blob.
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { integrityError, unreachableError } from '../errors.ts';
import type { Descriptor } from '../image/types.ts';
import type { RateLimit } from '../rate-limit.ts';
import { Bitfield } from '../store/bitfield.ts';
import type { PartialBlob } from '../store/partial.ts';
import { pieceLayout, pieceRange, type PieceLayout } from '../store/pieces.ts';
import type { Peer, PeerContext } from './peer.ts';
import { givePieceBuffer } from './piece-buffers.ts';
import {
  anyLapsed,
  claimCounts,
  claimMessages,
  claimsToRefresh,
  claimUntil,
  fillPeerPipeline,
  idleAtRegistry,
  MAX_WAIT_FOR_PEERS_MS,
  nextRegistryRun,
  ownerTest,
  PIPELINE,
  REGISTRY_RUN_ALONE_FIRST_BYTES,
  REGISTRY_RUN_ALONE_MAX_BYTES,
  registryWaits,
  runLimitPieces,
  starvedOfPeers,
  type RunClaims,
} from './fetch-policy.ts';
import { blobSalt, hostKey, unitPieces } from './owner.ts';
import { PiecePicker } from './picker.ts';
import type { Slots } from './semaphore.ts';

/**
 * a download that gets no byte from anywhere for this long fails; while the registry is a source, it counts only
 * once the whole pull gets no byte (its blobs share the registry's slots and link: with 64 hosts on one slow
 * registry link, blobs waiting their turn failed while the pull's other blobs trickled in, bench:mdns)
 */
const STALL_MS = 60_000;
/** ... and sooner while the registry is unreachable: then only peers can help, and they answer within a second */
const STALL_REGISTRY_DOWN_MS = 30_000;
/** how long a repair waits for peers' piece hashes (a peer hashes what it vouches for from disk: ~1 s a GiB) */
const HASHES_WAIT_MS = 3_000;
/** hash lists we send one connection: a repair asks once a round; each answer is up to 32 KiB for a ~20-byte ask */
const MAX_HASH_ANSWERS = 4;
/** pieces compared with the registry in one request during a repair (memory: a run is held whole) */
const REPAIR_RUN_PIECES = 8;
/** verifications that fail without a registry to tell which peer lied, before the blob fails (exit 5) */
const MAX_UNVERIFIED_ROUNDS = 5;
/** after the registry's final word on a blob (the client's own retries are spent), leave it alone this long while
 *  peers may still serve: never a storm of requests the registry already refused */
const REGISTRY_PAUSE_MS = 5_000;

export interface RegistrySource {
  readRange(start: number, end: number, onData: (chunk: Buffer, offset: number) => Promise<void>, signal: AbortSignal): Promise<void>;
  /** false while the registry is known to be unreachable and not due for another try (pieces then wait for peers) */
  usable?(): boolean;
  /** the registry is known to be unreachable */
  isDown?(): boolean;
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
  /**
   * Hold the registry back this long after discovery for the blob began (the swarm was made), while it finds the
   * peers: the pull makes every blob's swarm when it plans the image, so the waits overlap. Whatever a host
   * fetches before it knows its peers may be fetched by all of them: a fleet starting together would make the
   * registry send the first pieces once per host, and a host joining a swarm under way would fetch pieces its
   * peers already hold. Discovery and the handshake take ~50-300 ms on a LAN; the peers found first do not end
   * the wait, as hosts that know different subsets of the swarm would pick the same pieces as their own.
   */
  waitForPeersMs?: number;
  /** peers of this blob we dial that are not ready yet (connecting, handshaking) */
  peersConnecting?: () => number;
  /** a peer (by address) shown to have lied about what it vouched for: every blob of the process leaves it alone */
  onPeerBanned?: (host: string, why: string) => void;
  /** peer and scheduling decisions, for --debug */
  debug?: (msg: string) => void;
  /** bytes sent to peers, every blob of the process together (--max-upload-rate) */
  uploadLimit?: RateLimit;
  /** blocks in flight per peer, when fewer than PIPELINE (a download limit: see Swarm) */
  pipeline?: number;
}

/**
 * Who wrote a piece in this run: the registry, or a peer by address. `vouched`: the peer vouched for the piece first
 * hand (it claimed it from the registry before announcing it, or holds the verified blob); a peer that merely
 * forwards what another peer sent it does not (pieces go on to peers before their blob is verified).
 */
type Source = 'registry' | { host: string; vouched: boolean };
const REGISTRY = 'registry';

/** What we know of one peer of this blob. */
interface PeerState {
  /** its pieces we have counted in the picker */
  counted: Bitfield;
  /** pieces it said it fetches from the registry and has not announced yet → when that claim lapses */
  claims: Map<number, number>;
  /** ... → when it first claimed them (a claim renewed holds at most MAX_CLAIM_HOLD_MS from then) */
  claimedSince: Map<number, number>;
  /** when its last claim message came */
  claimedAt: number;
  /** one of its claims lapsed without the piece: its claims count no more */
  claimsIgnored: boolean;
  /** pieces it announced while its claim on them held: it vouches for them first hand */
  firstHand: Set<number>;
  /** it holds the verified blob: it vouches for every piece */
  verifiedHolder: boolean;
}

type Blame = { host: string; why: string; scope: 'blob' | 'process' };

export class BlobSwarm {
  readonly desc: Pick<Descriptor, 'digest' | 'size'>;
  readonly infoHash: Buffer;
  readonly layout: PieceLayout;
  readonly peers = new Map<string, Peer>();
  /** peers (Peer.key) that delivered at least one block */
  readonly usedPeers = new Set<string>();
  /** addresses left alone for this blob (see ban) */
  readonly bannedPeers = new Set<string>();
  private readonly opts: BlobSwarmOptions;
  private have: Bitfield;
  private partial: PartialBlob | null = null;
  private reader: FileHandle | null = null;
  private picker: PiecePicker;
  private readonly state = new Map<Peer, PeerState>();
  /** which peers are fetching each piece now */
  private readonly fetching = new Map<number, Set<Peer>>();
  private readonly registryActive = new Set<number>();
  /** our registry runs under way, for renewing their claims (see refreshClaims) */
  private readonly runs = new Set<Omit<RunClaims, 'done'>>();
  /** Who wrote each piece in this run, for the trust check (a piece comes whole from one source). */
  private readonly sources = new Map<number, Source>();
  /** we hold the blob, verified: we vouch for every piece */
  private verified = false;
  /** sha256 of pieces we vouch for, computed when a peer first asks (see vouchedHashes) */
  private readonly pieceHashes: Buffer;
  private readonly hashed: Bitfield;
  private hashing: Promise<Buffer> | null = null;
  /** pieces from peers on their way to the disk */
  private readonly writing = new Set<number>();
  /** peers whose bitfield and registry claims we know (their first claim message came, even an empty one) */
  private readonly synced = new Set<Peer>();
  private scheduled = false;
  private fillAll = false;
  private readonly peersToFill = new Set<Peer>();
  private downloading: {
    registry?: RegistrySource;
    progress: SwarmProgress;
    pullLastByteAt?: () => number;
    signal: AbortSignal;
    resolve: (path: string) => void;
    reject: (err: unknown) => void;
    lastByteAt: number;
    lastRegistryError?: unknown;
    registryPausedUntil: number;
    finishing: boolean;
  } | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private readonly waitTimers: NodeJS.Timeout[] = [];
  /** when discovery for this blob began (its swarm was made): the wait for peers counts from here */
  private readonly createdAt = Date.now();
  private refetchedAll = false;
  /** the next registry run's length while we know no peer (it grows with each run) */
  private aloneRunBytes = REGISTRY_RUN_ALONE_FIRST_BYTES;
  /** pieces per unit of registry ownership (see ownerTest) */
  private readonly unit: number;
  private unverifiedRounds = 0;
  /** repairs of this run: the first trusts pieces every voucher agrees with, later ones check every suspect */
  private repairs = 0;
  /** the last repair took some pieces on their vouchers' word (a full one may still find what they hid) */
  private trustedVouchers = false;

  constructor(opts: BlobSwarmOptions) {
    this.opts = opts;
    this.desc = opts.desc;
    this.infoHash = opts.infoHash;
    this.layout = pieceLayout(opts.desc.size);
    this.unit = unitPieces(this.layout);
    this.have = new Bitfield(this.layout.count);
    this.picker = new PiecePicker(this.have);
    this.pieceHashes = Buffer.alloc(this.layout.count * 32);
    this.hashed = new Bitfield(this.layout.count);
  }

  /** Serve a complete, verified blob. */
  async seedFrom(path: string): Promise<void> {
    this.reader = await open(path, 'r');
    for (let i = 0; i < this.layout.count; i++) this.have.set(i);
    this.verified = true;
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
      // told to peers: one that knows only the digest (a manifest pulled by digest) learns the size from us
      size: this.desc.size,
      ourBits: () => this.have,
      readBlock: (piece, offset, length, into) => this.readBlock(piece, offset, length, into),
    };
  }

  /** A peer whose handshake named this blob. Returns false if it is a duplicate or banned. */
  addPeer(peer: Peer): boolean {
    if (this.bannedPeers.has(peer.host)) return false;
    const existing = this.peers.get(peer.key);
    if (existing && !existing.isClosed) return false;
    this.peers.set(peer.key, peer);
    const st: PeerState = { counted: new Bitfield(this.layout.count), claims: new Map(), claimedSince: new Map(), claimedAt: 0, claimsIgnored: false, firstHand: new Set(), verifiedHolder: false };
    this.state.set(peer, st);
    const { counted, claims } = st;
    const count = () => {
      for (let i = 0; i < this.layout.count; i++) {
        if (peer.bits.get(i) && !counted.get(i)) {
          counted.set(i);
          this.picker.peerHas(i);
        }
      }
      this.schedule(peer);
    };
    peer.on('ready', () => {
      this.debug(`peer ${peer.host}:${peer.listenPort} ready`);
      // Right after our bitfield: the pieces we are fetching from the registry, even none, so that the peer knows
      // all it needs before it picks pieces for the registry.
      const active = claimMessages([...this.registryActive]);
      if (active.length === 0) peer.claim([], this.verified);
      for (const pieces of active) peer.claim(pieces, this.verified);
      this.schedule(); // the registry too: it may have waited for this peer
    });
    // A choking peer serves nothing: its pieces count again when it unchokes.
    peer.on('choke', () => {
      this.picker.removePeer(counted);
      counted.clear();
      this.schedule();
    });
    peer.on('unchoke', count);
    peer.on('bitfield', () => {
      this.debug(`peer ${peer.host}:${peer.listenPort} has ${peer.bits.count()} of ${this.layout.count} pieces`);
      if (!peer.choking) count();
    });
    peer.on('have', (i) => {
      // A claim ends when its piece arrives: should the peer leave before we have the piece, nobody fetches it.
      const until = claims.get(i);
      if (until !== undefined) {
        claims.delete(i);
        st.claimedSince.delete(i);
        this.picker.dropClaim(i);
        if (until >= Date.now()) st.firstHand.add(i);
      }
      if (!counted.get(i) && !peer.choking) {
        counted.set(i);
        this.picker.peerHas(i);
      }
      this.schedule(peer);
    });
    peer.on('claim', (pieces, verified) => {
      if (verified) st.verifiedHolder = true;
      if (!st.claimsIgnored) {
        const now = Date.now();
        for (const p of pieces) {
          if (!claimCounts((i) => peer.bits.get(i), p)) continue;
          const since = st.claimedSince.get(p) ?? now;
          const until = claimUntil(now, since);
          st.claimedSince.set(p, since);
          this.picker.claimedByPeer(p, until);
          claims.set(p, until);
        }
      }
      st.claimedAt = Date.now();
      this.synced.add(peer);
      this.schedule();
    });
    let hashAnswers = 0;
    peer.on('hashRequest', () => {
      if (++hashAnswers <= MAX_HASH_ANSWERS) void this.answerHashes(peer);
    });
    let uploaded = 0;
    peer.on('upload', (n) => (uploaded += n));
    peer.on('close', (why) => {
      this.debug(`peer ${peer.host} closed: ${why} (it sent us ${peer.delivered} blocks, we sent it ${uploaded} bytes)`);
      // Its registry fetches died with it: do not wait for their claims to lapse.
      for (const p of claims.keys()) this.picker.dropClaim(p);
      this.synced.delete(peer);
      this.picker.removePeer(counted);
      this.state.delete(peer);
      if (this.peers.get(peer.key) === peer) this.peers.delete(peer.key);
      this.schedule();
    });
    return true;
  }

  /** The peer advertised the piece and would not give it: it goes to other peers or the registry. */
  private refusedBy(peer: Peer, piece: number): void {
    peer.distrust(piece);
    const counted = this.state.get(peer)?.counted;
    if (!counted?.get(piece)) return;
    counted.set(piece, false);
    this.picker.peerLost(piece);
  }

  /**
   * A claim that lapsed without its piece: the peer's claims count no more for this blob, so that a peer claiming
   * pieces it never fetches holds them back from the registry once, for CLAIM_MS, and not again.
   */
  private dropLapsedClaims(): void {
    const now = Date.now();
    for (const [peer, st] of this.state) {
      if (!anyLapsed(st.claims, now)) continue;
      this.debug(`peer ${peer.host}: a registry claim lapsed without its piece; its claims count no more`);
      st.claimsIgnored = true;
      for (const p of st.claims.keys()) this.picker.dropClaim(p);
      st.claims.clear();
      st.claimedSince.clear();
    }
  }

  /**
   * Claim again the pieces of our registry runs whose bytes keep arriving (see claimsToRefresh): a run slower than
   * CLAIM_MS would otherwise see its claims lapse at the peers, which would then count none of our claims for this
   * blob and fetch our units too. A run that stalls claims nothing more, and its claims lapse as they should.
   */
  private refreshClaims(): void {
    const now = Date.now();
    for (const run of this.runs) {
      const messages = claimsToRefresh({ ...run, done: run.pieces.every((p) => this.have.get(p)) }, now);
      if (!messages) continue;
      run.claimedAt = now;
      for (const peer of this.peers.values()) for (const pieces of messages) peer.claim(pieces);
    }
  }

  /**
   * Fill `partial` from peers and the registry until every piece is there and the blob verifies; resolves with
   * the blob's path in the store. Pieces already in the partial (a resumed pull) are kept.
   */
  /** `pullLastByteAt`: when the pull this blob is part of last received a byte of any blob (see STALL_MS) */
  async download(partial: PartialBlob, opts: { registry?: RegistrySource; progress: SwarmProgress; pullLastByteAt?: () => number; signal: AbortSignal }): Promise<string> {
    this.partial = partial;
    this.have = partial.bitfield;
    this.picker = new PiecePicker(this.have);
    for (const [peer, { counted }] of this.state) {
      counted.clear();
      if (!peer.choking) for (let i = 0; i < this.layout.count; i++) if (peer.bits.get(i)) counted.set(i);
      this.picker.addPeer(counted);
    }
    this.reader = await open(partial.path, 'r');
    partial.onPiece = (i) => {
      for (const peer of this.peers.values()) peer.have(i);
      // Endgame duplicates still under way are no longer needed.
      for (const peer of this.fetching.get(i) ?? []) peer.cancelPiece(i);
    };
    const result = new Promise<string>((resolve, reject) => {
      this.downloading = { ...opts, resolve, reject, lastByteAt: Date.now(), registryPausedUntil: 0, finishing: false };
    });
    const onAbort = () => this.downloading?.reject(opts.signal.reason);
    opts.signal.addEventListener('abort', onAbort, { once: true });
    this.watchdog = setInterval(() => this.checkStall(), 1000);
    const unsubscribe = this.opts.registrySlots.onFree(() => this.schedule());
    for (const until of [this.opts.waitForPeersMs ?? 0, MAX_WAIT_FOR_PEERS_MS]) {
      const left = this.createdAt + until - Date.now();
      if (left > 0) this.waitTimers.push(setTimeout(() => this.schedule(), left));
    }
    this.schedule();
    try {
      return await result;
    } finally {
      opts.signal.removeEventListener('abort', onAbort);
      clearInterval(this.watchdog);
      unsubscribe();
      for (const t of this.waitTimers.splice(0)) clearTimeout(t);
      this.downloading = null;
    }
  }

  /**
   * Start whatever can start now: for one peer after an event of that peer (its pieces, its pipeline), for every
   * peer and the registry otherwise. Called on every event that could change what to fetch; runs once at the end
   * of the tick, so that a burst of wire messages (a bitfield, then claims, then haves) is all counted first.
   * (A fan-out host gets ~1,000 events a second: a full fill for each was its largest CPU cost, measured.)
   */
  private schedule(peer?: Peer): void {
    if (peer) this.peersToFill.add(peer);
    else this.fillAll = true;
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const all = this.fillAll;
      const peers = all ? [...this.peers.values()] : [...this.peersToFill];
      this.fillAll = false;
      this.peersToFill.clear();
      this.fill(peers, all);
    });
  }

  private fill(peers: Peer[], withRegistry: boolean): void {
    const d = this.downloading;
    if (!d || d.finishing || d.signal.aborted) return;
    if (this.have.isComplete()) {
      if (!this.anyFetchRunning()) void this.finish();
      return;
    }
    for (const peer of peers) this.fillPeer(peer);
    if (withRegistry) this.fillRegistry();
  }

  private anyFetchRunning(): boolean {
    return this.fetching.size > 0 || this.registryActive.size > 0;
  }

  private fillPeer(peer: Peer): void {
    if (!peer.ready || peer.choking || peer.isClosed) return;
    fillPeerPipeline(this.picker, peer.bits, {
      inflight: () => peer.inflight,
      pipeline: this.opts.pipeline ?? PIPELINE,
      skip: (i) => !!this.fetching.get(i)?.has(peer) || this.registryActive.has(i),
      start: (piece) => this.fetchFromPeer(peer, piece),
    });
  }

  private fetchFromPeer(peer: Peer, piece: number): void {
    const d = this.downloading!;
    const partial = this.partial!;
    this.picker.start(piece);
    let set = this.fetching.get(piece);
    if (!set) this.fetching.set(piece, (set = new Set()));
    set.add(peer);
    const { start, end } = pieceRange(this.layout, piece);
    // The piece's blocks are written together once all are here: one write per piece instead of one per 16 KiB
    // block (measured: the per-block writes were the largest cost of a peer transfer).
    peer.requestPiece(piece, end - start).then(
      async (bytes) => {
        d.lastByteAt = Date.now();
        // Another peer was faster (endgame): its copy is here or being written; one copy per piece reaches the disk.
        if (this.have.get(piece) || this.writing.has(piece)) return;
        this.writing.add(piece);
        const st = this.state.get(peer);
        this.sources.set(piece, { host: peer.host, vouched: !!st && (st.verifiedHolder || st.firstHand.has(piece)) });
        try {
          await this.save(d, bytes, start);
        } finally {
          this.writing.delete(piece);
          givePieceBuffer(bytes);
        }
        this.usedPeers.add(peer.key);
        d.progress.bytes(end - start, 'peer');
      },
    ).catch(
      (err: Error) => {
        if (!this.have.get(piece) && set.size === 1) {
          partial.abandon(piece);
          this.sources.delete(piece);
        }
        // Rejected, timed out, a bad block: not our own cancel of an endgame duplicate, nor the peer leaving.
        if (!peer.isClosed && err.message !== 'request was cancelled') this.refusedBy(peer, piece);
        // (a piece that is here had its duplicate requests cancelled)
        if (!peer.isClosed && !this.have.get(piece)) d.progress.log(`peer ${peer.host}: piece ${piece} of ${this.desc.digest.slice(7, 19)} failed (${err.message})`);
      },
    ).finally(() => {
      set.delete(peer);
      if (set.size === 0) this.fetching.delete(piece);
      this.picker.finish(piece);
      // a failed piece may be the registry's to fetch now
      this.schedule(this.have.get(piece) ? peer : undefined);
    });
  }

  private fillRegistry(): void {
    const d = this.downloading!;
    // An unreachable registry is left alone (but for a probe now and then): peers may have what it would hold up.
    if (!d.registry || d.registry.usable?.() === false) return;
    const now = Date.now();
    const { waitForPeersMs = 0 } = this.opts;
    const peersConnecting = this.opts.peersConnecting?.() ?? 0;
    if (registryWaits({ now, createdAt: this.createdAt, waitForPeersMs, peersConnecting, pausedUntil: d.registryPausedUntil })) return;
    const alone = this.synced.size === 0;
    // With peers, runs stay inside one unit, each unit with an owner among us and them.
    const maxPieces = runLimitPieces({ usePeers: this.opts.usePeers, alone, unit: this.unit, aloneRunBytes: this.aloneRunBytes, pieceLength: this.layout.pieceLength });
    const mine = alone ? undefined : this.ownerTest();
    // With nobody to share with, one run at a time from the first missing piece: the bytes then arrive in order and
    // the running hash sees each once (pieces out of order would be read back from disk to verify the blob).
    if (alone && this.opts.usePeers && this.registryActive.size > 0) return;
    if (!alone && this.opts.usePeers && !starvedOfPeers(this.blocksAskedOfPeers())) return;
    // (A slot is taken only for a run: taking one and giving it back would wake every blob, which would do the
    // same, a loop that kept fan-out hosts busy while they waited for peers.)
    while (d.registry.usable?.() !== false && this.opts.registrySlots.available) {
      const run = nextRegistryRun(this.picker, { now: Date.now(), usePeers: this.opts.usePeers, alone, ...(mine ? { mine } : {}), maxPieces });
      if (run === null) return;
      this.opts.registrySlots.take();
      this.fetchFromRegistry(run, d.registry);
      if (alone && this.opts.usePeers) {
        this.aloneRunBytes = Math.min(2 * this.aloneRunBytes, REGISTRY_RUN_ALONE_MAX_BYTES);
        return;
      }
    }
  }

  private blocksAskedOfPeers(): number {
    let n = 0;
    for (const peer of this.peers.values()) n += peer.inflight;
    return n;
  }

  /**
   * Whether piece i is ours to fetch from the registry. Each unit of `unit` pieces has an owner among us and the
   * synced peers (rendezvous hashing over peer ids: every host that knows the same peers computes the same owner
   * without a word exchanged). A unit of another host is ours too while that host fetches nothing from the
   * registry for this blob (it may have no registry, or be busy with other blobs); otherwise we leave it to its
   * owner, which is about to fetch it.
   */
  private ownerTest(): (i: number) => boolean {
    const now = Date.now();
    const synced = [...this.synced];
    return ownerTest({
      ourKey: this.opts.peerContext.ourId.readUInt32BE(0),
      peerKeys: synced.map((p) => hostKey(p.id)),
      peerIdle: synced.map((p) => {
        const st = this.state.get(p);
        return idleAtRegistry(st && { held: st.claims.size, claimedAt: st.claimedAt, ignored: st.claimsIgnored }, now);
      }),
      salt: blobSalt(this.desc.digest),
      unit: this.unit,
    });
  }

  private fetchFromRegistry(run: number[], registry: RegistrySource): void {
    const d = this.downloading!;
    const partial = this.partial!;
    for (const p of run) {
      this.picker.start(p);
      this.registryActive.add(p);
    }
    const claims = { pieces: run, claimedAt: Date.now(), progressedAt: Date.now() };
    this.runs.add(claims);
    for (const peer of this.peers.values()) for (const pieces of claimMessages(run)) peer.claim(pieces);
    this.debug(`registry: pieces ${formatRanges(run)}`);
    const start = pieceRange(this.layout, run[0]!).start;
    const end = pieceRange(this.layout, run.at(-1)!).end;
    registry
      .readRange(start, end, async (chunk, offset) => {
        await this.save(d, chunk, offset);
        d.lastByteAt = claims.progressedAt = Date.now();
        d.progress.bytes(chunk.length, 'registry');
      }, d.signal)
      .then(
        () => {},
        (err: unknown) => {
          d.lastRegistryError = err;
          for (const p of run) if (!this.have.get(p)) partial.abandon(p);
          if (d.signal.aborted) return;
          // The client retried what was worth retrying: this is the registry's answer for now. With no peer to turn
          // to, the blob fails with it (a 404, a refusal, a registry gone); with peers, they may still serve it.
          if (this.peers.size === 0) {
            const down = registry.isDown?.() === true;
            return d.reject(down ? unreachableError(`blob ${this.desc.digest}: the registry is unreachable and no peer has it (${(err as Error).message})`, err) : err);
          }
          d.registryPausedUntil = Date.now() + REGISTRY_PAUSE_MS;
          d.progress.log(`registry: ${(err as Error).message}`);
        },
      )
      .finally(() => {
        this.runs.delete(claims);
        this.opts.registrySlots.give();
        // No peer fetches a piece the registry is fetching: its bytes are the registry's.
        for (const p of run) if (this.have.get(p)) this.sources.set(p, REGISTRY);
        for (const p of run) {
          this.picker.finish(p);
          this.registryActive.delete(p);
        }
        this.schedule();
      });
  }

  /** Write arriving bytes. A failed write (a full disk) is ours, not the source's: it ends the download at once. */
  private async save(d: NonNullable<BlobSwarm['downloading']>, data: Buffer | readonly Buffer[], offset: number): Promise<void> {
    try {
      await this.partial!.write(data, offset);
    } catch (err) {
      d.reject(err);
      throw err;
    }
  }

  private checkStall(): void {
    const d = this.downloading;
    if (!d || d.finishing) return;
    this.dropLapsedClaims();
    this.refreshClaims();
    this.schedule();
    const registryDown = d.registry?.isDown?.() === true;
    const stallMs = registryDown ? STALL_REGISTRY_DOWN_MS : STALL_MS;
    const lastByteAt = d.registry && !registryDown ? Math.max(d.lastByteAt, d.pullLastByteAt?.() ?? 0) : d.lastByteAt;
    if (Date.now() - lastByteAt < stallMs) return;
    const missing = `${this.layout.count - this.have.count()} of ${this.layout.count} pieces missing`;
    const why = registryDown
      ? unreachableError(`blob ${this.desc.digest}: the registry is unreachable and no peer sent a byte for ${stallMs / 1000} s (${missing})`, d.lastRegistryError)
      : d.registry
        ? d.lastRegistryError ?? unreachableError(`blob ${this.desc.digest}: no byte arrived for ${stallMs / 1000} s`)
        : unreachableError(`blob ${this.desc.digest}: no peer could serve it for ${stallMs / 1000} s and the registry is not used (${missing})`);
    d.reject(why);
  }

  /** Every piece is here: verify; on a mismatch find and ban the peers that lied, repair, verify again. */
  private async finish(): Promise<void> {
    const d = this.downloading!;
    const partial = this.partial!;
    d.finishing = true;
    if (this.opts.debug) {
      // Which pieces came from where.
      const bySource = new Map<string, number[]>();
      for (const [piece, src] of [...this.sources].sort(([a], [b]) => a - b)) {
        const name = src === REGISTRY ? src : `peer ${src.host}`;
        let pieces = bySource.get(name);
        if (!pieces) bySource.set(name, (pieces = []));
        pieces.push(piece);
      }
      const from = [...bySource].map(([k, v]) => `${k}: ${v.length} (${formatRanges(v)})`).join('; ');
      this.debug(`all ${this.layout.count} pieces here; from ${from || 'the store'}`);
    }
    try {
      // A first repair may trust pieces its vouchers agree with; if the blob still fails, the next checks them all.
      for (let round = 0; !(await partial.verify()); round++) {
        if (round > 0 && !this.trustedVouchers) throw integrityError(`blob ${this.desc.digest} failed verification from every source`);
        await this.repair(d);
        if (!this.have.isComplete()) {
          d.finishing = false;
          this.schedule();
          return;
        }
      }
      const path = await partial.commit();
      this.verified = true;
      // From now on we vouch for every piece (see Source): peers that fail their digest may check with us.
      for (const peer of this.peers.values()) peer.claim([], true);
      d.resolve(path);
    } catch (err) {
      d.reject(err);
    }
  }

  /**
   * The blob failed its digest. Pieces from the registry are trusted (the registry vouched for the digest); the
   * others are suspects. Peers that vouch for pieces first hand (see Source) tell their hashes: a suspect that every
   * voucher agrees with is taken as good on the first repair, the rest are compared with the registry's bytes, so
   * that a repair costs the registry about the bad pieces rather than the blob. Whoever sent a bad piece is banned:
   * for every blob if it vouched for that piece, for this blob if it may only have forwarded it; a voucher whose
   * hash the registry's bytes do not have lied first hand and is banned for every blob. Without a registry (or with
   * one out of reach), see repairWithoutRegistry.
   */
  private async repair(d: NonNullable<BlobSwarm['downloading']>): Promise<void> {
    const partial = this.partial!;
    this.trustedVouchers = false;
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
    const vouches = await this.collectVouches();
    const ours = new Map<number, Buffer>();
    for (const i of suspect) ours.set(i, sha256(await partial.readPiece(i)));
    const disputed = (i: number) => vouches.some(({ hashes }) => isVouched(hashes, i) && !pieceHash(hashes, i).equals(ours.get(i)!));
    const agreed = (i: number) => vouches.some(({ hashes }) => isVouched(hashes, i)) && !disputed(i);
    const firstRepair = this.repairs++ === 0;
    if (!d.registry || d.registry.usable?.() === false) return this.repairWithoutRegistry(d, suspect, disputed);
    const check = firstRepair ? suspect.filter((i) => !agreed(i)) : suspect;
    this.trustedVouchers = check.length < suspect.length;
    d.progress.log(
      `blob ${this.desc.digest.slice(7, 19)} failed verification; checking ${check.length} of ${suspect.length} pieces from peers against the registry` +
        (vouches.length ? ` (${suspect.length - check.length} agree with what ${vouches.length} peers vouch for)` : ''),
    );
    for (let k = 0; k < check.length; ) {
      const run = [check[k]!];
      while (run.length < REPAIR_RUN_PIECES && check[k + run.length] === run.at(-1)! + 1) run.push(check[k + run.length]!);
      const start = pieceRange(this.layout, run[0]!).start;
      const end = pieceRange(this.layout, run.at(-1)!).end;
      const fromRegistry = Buffer.alloc(end - start);
      try {
        await d.registry.readRange(start, end, async (chunk, offset) => {
          chunk.copy(fromRegistry, offset - start);
        }, d.signal);
      } catch (err) {
        if (d.signal.aborted) throw err;
        d.progress.log(`registry: ${(err as Error).message}`);
        return this.repairWithoutRegistry(d, check.slice(k), disputed);
      }
      d.progress.bytes(fromRegistry.length, 'registry');
      for (const i of run) {
        const { start: s, end: e } = pieceRange(this.layout, i);
        const good = fromRegistry.subarray(s - start, e - start);
        const goodHash = sha256(good);
        for (const { host, hashes } of vouches) {
          if (isVouched(hashes, i) && !pieceHash(hashes, i).equals(goodHash)) {
            this.ban({ host, why: `vouched for piece ${i} of ${this.short} with a hash the registry's bytes do not have`, scope: 'process' }, d);
          }
        }
        if (!ours.get(i)!.equals(goodHash)) {
          const src = this.sources.get(i);
          if (src && src !== REGISTRY) this.ban(blameFor(src, `sent a corrupt piece ${i} of ${this.short}`), d);
          partial.resetPieces([i]);
          await partial.write(good, s);
        }
        this.sources.set(i, REGISTRY);
      }
      k += run.length;
    }
  }

  /**
   * Nothing to compare the suspect pieces with. Pieces a voucher disputes are dropped, and their senders left out for
   * this blob (there is no telling for sure who lied, and a banned address cannot come back under a fresh id); with
   * no dispute, a peer that sent every suspect piece is the liar. The dropped pieces are fetched again from the other
   * peers, a bounded number of times.
   */
  private repairWithoutRegistry(d: NonNullable<BlobSwarm['downloading']>, suspect: number[], disputed: (i: number) => boolean): void {
    if (++this.unverifiedRounds > MAX_UNVERIFIED_ROUNDS) {
      throw integrityError(`blob ${this.desc.digest} failed verification ${MAX_UNVERIFIED_ROUNDS} times, and without the registry there is no telling which peer sent bad pieces`);
    }
    const inDispute = suspect.filter(disputed);
    const drop = inDispute.length > 0 ? inDispute : suspect;
    const senders = new Set(drop.map((i) => this.sources.get(i)).map((src) => (src && src !== REGISTRY ? src.host : undefined)));
    d.progress.log(`blob ${this.short} failed verification; fetching ${drop.length} pieces from peers again (no registry to compare with)`);
    if (inDispute.length > 0 || senders.size === 1) {
      for (const host of senders) if (host) this.ban({ host, why: `sent pieces of ${this.short} that fail its digest`, scope: 'blob' }, d);
    }
    this.partial!.resetPieces(drop);
    for (const i of drop) this.sources.delete(i);
  }

  /** Ask every ready peer for the hashes of the pieces it vouches for; wait for them a bounded time. */
  private collectVouches(): Promise<{ host: string; hashes: Buffer }[]> {
    const asked = [...this.peers.values()].filter((p) => p.ready);
    if (asked.length === 0) return Promise.resolve([]);
    return new Promise((resolve) => {
      const got = new Map<Peer, Buffer>();
      const listeners = asked.map((peer) => {
        const onHashes = (hashes: Buffer) => {
          got.set(peer, hashes);
          if (got.size === asked.length) done();
        };
        peer.on('hashes', onHashes);
        return () => peer.off('hashes', onHashes);
      });
      const done = () => {
        clearTimeout(timer);
        for (const off of listeners) off();
        // one answer per address: a host's processes vouch alike
        const byHost = new Map<string, Buffer>();
        for (const [peer, hashes] of got) byHost.set(peer.host, hashes);
        resolve([...byHost].map(([host, hashes]) => ({ host, hashes })));
      };
      const timer = setTimeout(done, HASHES_WAIT_MS);
      for (const peer of asked) peer.requestHashes();
    });
  }

  /** A peer asks what we vouch for: the hashes of every piece once verified, else of the pieces the registry sent us. */
  private async answerHashes(peer: Peer): Promise<void> {
    try {
      peer.sendHashes(await this.vouchedHashes());
    } catch (err) {
      this.debug(`cannot hash pieces for peer ${peer.host}: ${(err as Error).message}`);
    }
  }

  /** Pieces are read and hashed once, one at a time, when a peer first asks; zeros for pieces we do not vouch for. */
  private vouchedHashes(): Promise<Buffer> {
    const run = async (): Promise<Buffer> => {
      const out = Buffer.alloc(this.pieceHashes.length);
      for (let i = 0; i < this.layout.count; i++) {
        if (!this.have.get(i) || !(this.verified || this.sources.get(i) === REGISTRY)) continue;
        if (!this.hashed.get(i)) {
          const { start, end } = pieceRange(this.layout, i);
          sha256(await this.readFromDisk(i, 0, end - start)).copy(this.pieceHashes, i * 32);
          this.hashed.set(i);
        }
        this.pieceHashes.copy(out, i * 32, i * 32, i * 32 + 32);
      }
      return out;
    };
    // One hashing at a time: requests from many peers share it (and the disk reads stay bounded).
    const next = (this.hashing ?? Promise.resolve(Buffer.alloc(0))).catch(() => Buffer.alloc(0)).then(run);
    this.hashing = next;
    return next;
  }

  private debug(msg: string): void {
    this.opts.debug?.(`+${Date.now() - this.createdAt}ms ${this.desc.digest.slice(7, 19)}: ${msg}`);
  }

  private get short(): string {
    return this.desc.digest.slice(7, 19);
  }

  /** Leave a peer's address alone for this blob (and for every blob, when it lied first hand). Once per address. */
  private ban(blame: Blame, d: { progress: SwarmProgress }): void {
    if (this.bannedPeers.has(blame.host)) return;
    this.bannedPeers.add(blame.host);
    const scope = blame.scope === 'process' ? 'every blob' : 'this blob';
    d.progress.log(`banning peer ${blame.host}: ${blame.why} (${scope})`);
    for (const peer of this.peers.values()) if (peer.host === blame.host) peer.close(`banned: ${blame.why}`);
    if (blame.scope === 'process') this.opts.onPeerBanned?.(blame.host, blame.why);
  }

  /**
   * Read bytes of a piece for an upload: what the peer asked for (a block, or the blocks of a piece asked for
   * together), into the buffer the peer took for it (peer.ts, upload-budget.ts). No cache: a buffer kept for others
   * pins memory no answer accounts for, and the page cache already holds what peers ask for again.
   */
  private readBlock(piece: number, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    // (A read waiting for upload tokens holds its buffer, counted in the upload budget: the connection's bound keeps
    // that to a few MiB.)
    const limit = this.opts.uploadLimit;
    if (limit) return limit.take(length).then(() => this.readFromDisk(piece, offset, length, into));
    return this.readFromDisk(piece, offset, length, into);
  }

  private async readFromDisk(piece: number, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const reader = this.reader;
    if (!reader) throw new Error('nothing to serve');
    const buf = into?.length === length ? into : Buffer.allocUnsafe(length);
    const { bytesRead } = await reader.read(buf, 0, length, pieceRange(this.layout, piece).start + offset);
    if (bytesRead !== length) throw new Error('short read');
    return buf;
  }

  async close(): Promise<void> {
    for (const peer of this.peers.values()) peer.close('done');
    await this.reader?.close().catch(() => {});
    this.reader = null;
  }
}

/** The blame for a bad piece: every blob's ban if its sender vouched for it first hand, else this blob's. */
function blameFor(src: Exclude<Source, 'registry'>, why: string): Blame {
  return { host: src.host, why, scope: src.vouched ? 'process' : 'blob' };
}

const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();
const pieceHash = (hashes: Buffer, i: number): Buffer => hashes.subarray(i * 32, i * 32 + 32);
/** zeros: the peer does not vouch for piece i */
const isVouched = (hashes: Buffer, i: number): boolean => pieceHash(hashes, i).some((b) => b !== 0);

/** [0, 1, 2, 5, 7, 8] → "0-2,5,7-8" */
export function formatRanges(pieces: readonly number[]): string {
  const out: string[] = [];
  for (let i = 0; i < pieces.length; ) {
    let j = i;
    while (j + 1 < pieces.length && pieces[j + 1] === pieces[j]! + 1) j++;
    out.push(j === i ? String(pieces[i]) : `${pieces[i]}-${pieces[j]}`);
    i = j + 1;
  }
  return out.join(',');
}
