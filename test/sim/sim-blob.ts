// One host's view of one blob, as BlobSwarm keeps it: the pieces it has, the peers it knows with their pieces and
// registry claims, the fetches running. Every decision goes through the real code (PiecePicker, fetch-policy.ts,
// owner.ts); this file only does the bookkeeping BlobSwarm does around it, with the network simulated.
import { Bitfield } from '../../lib/store/bitfield.ts';
import { BLOCK_SIZE, pieceLayout, pieceRange, type PieceLayout } from '../../lib/store/pieces.ts';
import {
  anyLapsed,
  claimCounts,
  claimMessages,
  CLAIM_MS,
  claimsToRefresh,
  claimUntil,
  fillPeerPipeline,
  idleAtRegistry,
  OWNER_IDLE_MS,
  MAX_WAIT_FOR_PEERS_MS,
  nextRegistryRun,
  ownerTest,
  PIPELINE,
  REGISTRY_RUN_ALONE_FIRST_BYTES,
  REGISTRY_RUN_ALONE_MAX_BYTES,
  registryWaits,
  runLimitPieces,
  STARVED_BELOW_BLOCKS,
  starvedOfPeers,
} from '../../lib/swarm/fetch-policy.ts';
import { blobSalt, unitPieces, unitScore } from '../../lib/swarm/owner.ts';
import { PiecePicker } from '../../lib/swarm/picker.ts';
import type { Slots } from '../../lib/swarm/semaphore.ts';
import { Flow, type Network, type Transfer } from './network.ts';
import type { Random } from '../support/random.ts';

/** What the fleet gives a blob: time, the network, messages to other hosts, and its host's registry slots. */
export interface BlobEnv {
  now(): number;
  net: Network;
  random: Random;
  registryNode: number;
  registryLatencyMs: number;
  /** a registry request's share of the registry's link, relative to the others' (1: all equal) */
  registryWeight(): number;
  /** run `f` when a message sent now arrives */
  post(f: () => void): void;
  /** run `f(peer)` when a message we send each of `peers` now arrives there: behind the piece data queued to it */
  postTo(from: SimBlob, peers: readonly number[], f: (peer: number) => void): void;
  /** run this blob's fill once the current event is done (BlobSwarm's setImmediate) */
  schedule(blob: SimBlob): void;
  /** the same blob at another host */
  blobAt(host: number): SimBlob;
  done(blob: SimBlob): void;
}

/** A peer of this blob, as we know it. */
export interface PeerLink {
  host: number;
  key: number;
  /** pieces it announced (its bitfield, then its haves) */
  bits: Bitfield;
  /** its first claim message came (BlobSwarm's `synced`) */
  synced: boolean;
  claims: Map<number, number>;
  /** when it first claimed each piece it holds a claim on */
  claimedSince: Map<number, number>;
  claimedAt: number;
  claimsIgnored: boolean;
  /** blocks we asked of it and did not get yet */
  inflight: number;
  /** its connection's bytes to us */
  flow: Flow;
}

export class SimBlob {
  readonly host: number;
  readonly key: number;
  readonly index: number;
  readonly layout: PieceLayout;
  readonly have: Bitfield;
  /** pieces that came to us from the registry */
  readonly registryPieces: Bitfield;
  readonly picker: PiecePicker;
  readonly peers = new Map<number, PeerLink>();
  /** hosts we dialled for this blob, connecting or connected (Swarm's `dialed`) */
  readonly dialed = new Set<number>();
  connecting = 0;
  createdAt = 0;
  doneAt = -1;
  fromRegistry = 0;
  fromPeers = 0;
  duplicateBytes = 0;
  /** registry bytes by why the unit was ours: we own it among the hosts we know, its owner looked idle, or we are alone */
  readonly registryBy = { own: 0, idleOwner: 0, alone: 0 };
  /** peers whose claims we stopped counting (one lapsed without its piece) */
  lapsedPeers = 0;
  /** a what-if: how long a peer without claims must be quiet to look idle at the registry (OWNER_IDLE_MS) */
  ownerIdleMs = OWNER_IDLE_MS;
  /** a what-if: with peers, start a registry run only while fewer than this many blocks are asked of peers */
  starvedBelowBlocks = STARVED_BELOW_BLOCKS;
  /** a what-if: how long a claim holds (CLAIM_MS in the code) */
  claimMs = CLAIM_MS;
  /** a what-if: false for the code before registry runs renewed their claims */
  refreshClaims = true;
  /**
   * A what-if (not in lib/): for this long after the start, a unit is ours only if our score for it is among the
   * top `strictOwners` of `fleetSize` hosts (the fleet's rendezvous owner or close to it), not merely the highest
   * among the hosts we know; units without such an owner go to their local owners after that.
   */
  strict: { ms: number; fleetSize: number; owners: number } | null = null;
  private readonly env: BlobEnv;
  private readonly slots: Slots;
  private readonly salt: number;
  private readonly unit: number;
  private readonly fetching = new Map<number, Map<number, Transfer>>();
  private readonly registryActive = new Set<number>();
  /** registry runs under way, for renewing their claims (BlobSwarm.refreshClaims) */
  private readonly runs = new Set<RegistryRun>();
  private syncedCount = 0;
  private aloneRunBytes = REGISTRY_RUN_ALONE_FIRST_BYTES;
  private downloading = false;
  private fillAll = false;
  private readonly toFill = new Set<PeerLink>();
  private scheduled = false;

  /** `pieceLength`: a what-if, to keep big fleets tractable (default: the real layout, lib/store/pieces.ts) */
  constructor(o: { host: number; key: number; index: number; size: number; digest: string; slots: Slots; env: BlobEnv; pieceLength?: number }) {
    this.host = o.host;
    this.key = o.key;
    this.index = o.index;
    this.layout = o.pieceLength ? { size: o.size, pieceLength: o.pieceLength, count: Math.max(1, Math.ceil(o.size / o.pieceLength)) } : pieceLayout(o.size);
    this.have = new Bitfield(this.layout.count);
    this.registryPieces = new Bitfield(this.layout.count);
    this.picker = new PiecePicker(this.have, o.env.random);
    this.salt = blobSalt(o.digest);
    this.unit = unitPieces(this.layout);
    this.slots = o.slots;
    this.env = o.env;
  }

  get complete(): boolean {
    return this.have.isComplete();
  }

  get readyPeers(): number {
    return this.peers.size;
  }

  /** The pull starts on this blob: its waits for peers count from now. */
  start(waitForPeersMs: number, at: (time: number, f: () => void) => void): void {
    this.createdAt = this.env.now();
    this.downloading = true;
    for (const until of [waitForPeersMs, MAX_WAIT_FOR_PEERS_MS]) at(this.createdAt + until, () => this.schedule());
    this.schedule();
  }

  /** A connection became ready: we know the peer, its bitfield and claims come next. */
  addPeer(host: number, key: number, flow: Flow): void {
    this.peers.set(host, { host, key, bits: new Bitfield(this.layout.count), synced: false, claims: new Map(), claimedSince: new Map(), claimedAt: 0, claimsIgnored: false, inflight: 0, flow });
  }

  /** What we tell a peer right after the handshake: our bitfield, then the pieces we fetch from the registry. */
  hello(): { bits: Uint8Array; claims: number[] } {
    return { bits: this.have.buffer.slice(), claims: [...this.registryActive] };
  }

  onHello(from: number, hello: { bits: Uint8Array; claims: number[] }): void {
    const link = this.peers.get(from);
    if (!link) return;
    const theirs = new Bitfield(this.layout.count, hello.bits);
    for (let i = 0; i < this.layout.count; i++) {
      if (theirs.get(i) && !link.bits.get(i)) {
        link.bits.set(i);
        this.picker.peerHas(i);
      }
    }
    this.onClaim(from, hello.claims);
  }

  onHave(from: number, piece: number): void {
    const link = this.peers.get(from);
    if (!link) return;
    const until = link.claims.get(piece);
    if (until !== undefined) {
      link.claims.delete(piece);
      link.claimedSince.delete(piece);
      this.picker.dropClaim(piece);
    }
    if (!link.bits.get(piece)) {
      link.bits.set(piece);
      this.picker.peerHas(piece);
    }
    this.schedule(link);
  }

  onClaim(from: number, pieces: readonly number[]): void {
    const link = this.peers.get(from);
    if (!link) return;
    if (!link.claimsIgnored) {
      const now = this.env.now();
      for (const p of pieces) {
        if (!claimCounts((i) => link.bits.get(i), p)) continue;
        const since = link.claimedSince.get(p) ?? now;
        const until = claimUntil(now, since, this.claimMs);
        link.claimedSince.set(p, since);
        this.picker.claimedByPeer(p, until);
        link.claims.set(p, until);
      }
    }
    link.claimedAt = this.env.now();
    if (!link.synced) {
      link.synced = true;
      this.syncedCount++;
    }
    this.schedule();
  }

  /** BlobSwarm's watchdog, each second: lapsed claims count no more, and a fill. */
  watchdog(): void {
    if (!this.downloading) return;
    const now = this.env.now();
    for (const link of this.peers.values()) {
      if (!anyLapsed(link.claims, now)) continue;
      link.claimsIgnored = true;
      this.lapsedPeers++;
      for (const p of link.claims.keys()) this.picker.dropClaim(p);
      link.claims.clear();
      link.claimedSince.clear();
    }
    if (this.refreshClaims) this.refresh(now);
    this.schedule();
  }

  /** BlobSwarm.refreshClaims: runs whose bytes moved since their last claim claim their missing pieces again. */
  private refresh(now: number): void {
    for (const run of this.runs) {
      let left = 0;
      for (const t of run.transfers) left += t.left;
      if (left < run.left) {
        run.left = left;
        run.progressedAt = now;
      }
      const messages = claimsToRefresh({ ...run, done: run.pieces.every((p) => this.have.get(p)) }, now, this.claimMs / 3);
      if (!messages) continue;
      run.claimedAt = now;
      const me = this.host;
      for (const pieces of messages) this.env.postTo(this, [...this.peers.keys()], (h) => this.env.blobAt(h).onClaim(me, pieces));
    }
  }

  schedule(link?: PeerLink): void {
    if (link) this.toFill.add(link);
    else this.fillAll = true;
    if (this.scheduled) return;
    this.scheduled = true;
    this.env.schedule(this);
  }

  /** BlobSwarm.fill: run by the fleet once the event that scheduled it is done. */
  fill(): void {
    this.scheduled = false;
    const all = this.fillAll;
    const links = all ? [...this.peers.values()] : [...this.toFill];
    this.fillAll = false;
    this.toFill.clear();
    if (!this.downloading) return;
    if (this.have.isComplete()) {
      if (this.fetching.size === 0 && this.registryActive.size === 0) {
        this.downloading = false;
        this.doneAt = this.env.now();
        this.env.done(this);
      }
      return;
    }
    for (const link of links) this.fillPeer(link);
    if (all) this.fillRegistry();
  }

  private fillPeer(link: PeerLink): void {
    fillPeerPipeline(this.picker, link.bits, {
      inflight: () => link.inflight,
      pipeline: PIPELINE,
      skip: (i) => !!this.fetching.get(i)?.has(link.host) || this.registryActive.has(i),
      start: (piece) => this.fetchFromPeer(link, piece),
    });
  }

  private pieceBytes(i: number): number {
    const { start, end } = pieceRange(this.layout, i);
    return end - start;
  }

  private fetchFromPeer(link: PeerLink, piece: number): void {
    this.picker.start(piece);
    const bytes = this.pieceBytes(piece);
    const blocks = Math.ceil(bytes / BLOCK_SIZE);
    link.inflight += blocks;
    const t: Transfer = {
      bytes,
      left: bytes,
      cancelled: false,
      done: () => {
        link.inflight -= blocks;
        this.endPeerFetch(link, piece);
        if (this.have.get(piece)) {
          this.duplicateBytes += bytes;
        } else {
          this.fromPeers += bytes;
          this.gotPiece(piece);
        }
        this.schedule(link);
      },
    };
    let set = this.fetching.get(piece);
    if (!set) this.fetching.set(piece, (set = new Map()));
    set.set(link.host, t);
    this.env.net.send(link.flow, t);
  }

  private endPeerFetch(link: PeerLink, piece: number): void {
    const set = this.fetching.get(piece);
    set?.delete(link.host);
    if (set?.size === 0) this.fetching.delete(piece);
    this.picker.finish(piece);
  }

  /** A piece is here (BlobSwarm's partial.onPiece): tell every peer, cancel endgame duplicates. */
  private gotPiece(piece: number): void {
    this.have.set(piece);
    const me = this.host;
    this.env.postTo(this, [...this.peers.keys()], (h) => this.env.blobAt(h).onHave(me, piece));
    for (const [host, t] of this.fetching.get(piece) ?? []) {
      const link = this.peers.get(host)!;
      t.cancelled = true;
      const blocks = Math.ceil(t.bytes / BLOCK_SIZE);
      link.inflight -= blocks;
      this.duplicateBytes += t.bytes - t.left;
      this.endPeerFetch(link, piece);
      this.env.net.tidy(link.flow);
      this.schedule(link);
    }
    if (this.have.isComplete()) this.schedule();
  }

  private fillRegistry(): void {
    const now = this.env.now();
    if (registryWaits({ now, createdAt: this.createdAt, waitForPeersMs: this.waitForPeersMs, peersConnecting: this.connecting, pausedUntil: 0 })) return;
    const alone = this.syncedCount === 0;
    const maxPieces = runLimitPieces({ usePeers: true, alone, unit: this.unit, aloneRunBytes: this.aloneRunBytes, pieceLength: this.layout.pieceLength });
    const mine = alone ? undefined : this.ownerTest(now);
    if (alone && this.registryActive.size > 0) return;
    if (!alone) {
      let asked = 0;
      for (const l of this.peers.values()) asked += l.inflight;
      if (!starvedOfPeers(asked, this.starvedBelowBlocks)) return;
    }
    while (this.slots.available) {
      const run = nextRegistryRun(this.picker, { now, usePeers: true, alone, ...(mine ? { mine } : {}), maxPieces });
      if (run === null) return;
      this.slots.take();
      const why = alone ? 'alone' : this.ownsUnit(run[0]!) ? 'own' : 'idleOwner';
      for (const p of run) this.registryBy[why] += this.pieceBytes(p);
      this.fetchFromRegistry(run);
      if (alone) {
        this.aloneRunBytes = Math.min(2 * this.aloneRunBytes, REGISTRY_RUN_ALONE_MAX_BYTES);
        return;
      }
    }
  }

  waitForPeersMs = 0;

  private ownerTest(now: number): (i: number) => boolean {
    const synced = [...this.peers.values()].filter((l) => l.synced);
    const local = ownerTest({
      ourKey: this.key,
      peerKeys: synced.map((l) => l.key),
      peerIdle: synced.map((l) => idleAtRegistry({ held: l.claims.size, claimedAt: l.claimedAt, ignored: l.claimsIgnored }, now, this.ownerIdleMs)),
      salt: this.salt,
      unit: this.unit,
    });
    const strict = this.strict;
    if (!strict || now - this.createdAt >= strict.ms) return local;
    const threshold = 1 - strict.owners / strict.fleetSize;
    return (i) => local(i) && unitScore(Math.floor(i / this.unit), this.salt, this.key) >= threshold;
  }

  /** we are the owner of piece i's unit among the hosts we know (idle or not) */
  private ownsUnit(i: number): boolean {
    const synced = [...this.peers.values()].filter((l) => l.synced);
    return ownerTest({ ourKey: this.key, peerKeys: synced.map((l) => l.key), peerIdle: synced.map(() => false), salt: this.salt, unit: this.unit })(i);
  }

  private fetchFromRegistry(run: number[]): void {
    for (const p of run) {
      this.picker.start(p);
      this.registryActive.add(p);
    }
    const me = this.host;
    for (const pieces of claimMessages(run)) this.env.postTo(this, [...this.peers.keys()], (h) => this.env.blobAt(h).onClaim(me, pieces));
    const flow = new Flow(this.env.registryNode, this.host, this.env.now() + this.env.registryLatencyMs, this.env.registryWeight());
    const claims: RegistryRun = { pieces: run, claimedAt: this.env.now(), progressedAt: this.env.now(), transfers: [], left: 0 };
    this.runs.add(claims);
    run.forEach((piece, k) => {
      const bytes = this.pieceBytes(piece);
      const transfer: Transfer = {
        bytes,
        left: bytes,
        cancelled: false,
        done: () => {
          if (!this.have.get(piece)) {
            this.fromRegistry += bytes;
            this.registryPieces.set(piece);
            this.gotPiece(piece);
          } else this.duplicateBytes += bytes;
          if (k < run.length - 1) return;
          // the run is over: its slot goes back (every blob of the host may want it), its pieces are no longer active
          for (const p of run) {
            this.picker.finish(p);
            this.registryActive.delete(p);
          }
          this.runs.delete(claims);
          this.slots.give();
          this.schedule();
        },
      };
      claims.transfers.push(transfer);
      claims.left += bytes;
      this.env.net.send(flow, transfer);
    });
  }
}

/** A registry run under way: what BlobSwarm keeps to renew its claims, and its transfers to see its bytes move. */
interface RegistryRun {
  pieces: readonly number[];
  claimedAt: number;
  progressedAt: number;
  transfers: Transfer[];
  /** bytes of the run still to come at the last look */
  left: number;
}
