// What a host fetches next and from whom, decided from its bookkeeping alone: the pieces to ask one peer for, whether
// the registry may start yet, which units of a blob are ours to fetch from the registry, and the run that starts at
// a picked piece. Pure (time is passed in): BlobSwarm calls it over sockets, the fleet simulator (test/sim) in
// virtual time, so that the simulation measures these very rules.
import type { Bitfield } from '../store/bitfield.ts';
import { unitOwner } from './owner.ts';
import type { PiecePicker } from './picker.ts';

/** blocks in flight per peer: enough to fill a LAN link (measured: 64+ in flight reach 320-390 MiB/s) */
export const PIPELINE = 96;
/** With no peer to share with, a registry run is this long at first and each next one twice as long, up to the
 *  maximum: each request costs the registry and us (measured, 1 GiB alone on loopback: 4 MiB runs 7.0 s, 64 MiB runs
 *  5.6 s), while short first runs leave little fetched twice when peers show up late */
export const REGISTRY_RUN_ALONE_FIRST_BYTES = 4 << 20;
export const REGISTRY_RUN_ALONE_MAX_BYTES = 64 << 20;
/** while peers found are still connecting, the registry waits for them up to this long (a handshake between
 *  CPU-starved hosts took up to 1.9 s, measured in fan-out (d): late joiners meanwhile fetched what seeders had) */
export const MAX_WAIT_FOR_PEERS_MS = 2_000;
/** a peer that claimed nothing from the registry for this long leaves its pieces to others */
export const OWNER_IDLE_MS = 1000;
/** with peers, a registry run starts only while fewer blocks than this (4 MiB) are asked of the blob's peers: a host
 *  busy with peers leaves the registry to hosts that run short. Simulated, 3 GiB: registry egress 3.23x -> 1.86x the
 *  image at 100 hosts (p99 1.48x -> 1.25x the floor), 10.71x -> 7.60x at 1,000; namespace bench (a), 8 hosts at
 *  20 Mbit/s: not worse (docs/performance.md, Fleet scale) */
export const STARVED_BELOW_BLOCKS = 256;
/** how long a peer's claim on a piece (it fetches it from the registry) keeps us from fetching it too */
export const CLAIM_MS = 15_000;
/** a running registry run claims its missing pieces again this often while its bytes arrive: a run may outlast
 *  CLAIM_MS on a shared registry (measured: 16 hosts x 4 requests on a 20 Mbit/s registry, a 1 MiB run ~27 s), and a
 *  claim that lapsed made its honest claimer's claims count no more (the namespace bench at 16 hosts sent 2.05x the
 *  image). A third of CLAIM_MS: a refresh may come a watchdog tick (1 s) late and queue behind piece data. */
export const CLAIM_REFRESH_MS = CLAIM_MS / 3;
/** the longest a peer's claim on one piece holds, renewed or not: three times the longest registry run measured
 *  (~27 s above) would be 81 s, past STALL_MS (60 s, a pull with no byte that long fails); 45 s still lets a run
 *  1.7 times the slowest measured keep its claims */
export const MAX_CLAIM_HOLD_MS = 3 * CLAIM_MS;
/** pieces per claim message: the sender cuts its claims into messages this long, and peer.ts reads no more of one */
export const CLAIM_MESSAGE_PIECES = 64;

/**
 * Ask a peer for pieces while its pipeline has room: rarest first; in the endgame a piece is asked of a second source
 * only by a peer with nothing else to do. `start` requests the piece (and marks it started in the picker, which the
 * next pick must see); `inflight` is the peer's blocks in flight, after the requests started so far.
 */
export function fillPeerPipeline(
  picker: PiecePicker,
  peerBits: Bitfield,
  o: { inflight: () => number; pipeline: number; skip: (i: number) => boolean; start: (piece: number) => void },
): void {
  while (o.inflight() < o.pipeline) {
    const endgame = picker.inEndgame();
    if (o.inflight() > 0 && endgame) return;
    const piece = picker.pickFromPeer(peerBits, o.skip, endgame);
    if (piece === null) return;
    o.start(piece);
  }
}

/**
 * Whether the registry must wait for now: for peers being discovered (`waitForPeersMs` after the blob's swarm was
 * made), for peers still connecting (up to MAX_WAIT_FOR_PEERS_MS), or after the registry's final word (`pausedUntil`).
 */
export function registryWaits(o: { now: number; createdAt: number; waitForPeersMs: number; peersConnecting: number; pausedUntil: number }): boolean {
  const waited = o.now - o.createdAt;
  if (waited < o.waitForPeersMs) return true;
  if (waited < MAX_WAIT_FOR_PEERS_MS && o.peersConnecting > 0) return true;
  return o.now < o.pausedUntil;
}

/** What we know of a peer's registry claims, for the owner test. */
export interface ClaimView {
  /** claims it holds now (pieces it fetches from the registry and has not announced) */
  held: number;
  /** when its last claim message came */
  claimedAt: number;
  /** one of its claims lapsed without the piece: its claims count no more */
  ignored: boolean;
}

/**
 * A peer fetching nothing from the registry for this blob. Its claims may lag behind its piece announcements (they
 * queue behind piece data): a peer that just finished its registry fetches is likely starting the next ones.
 */
export function idleAtRegistry(st: ClaimView | undefined, now: number, idleMs = OWNER_IDLE_MS): boolean {
  return !st || st.ignored || (st.held === 0 && now - st.claimedAt > idleMs);
}

/**
 * Whether piece i is ours to fetch from the registry. Each unit of `unit` pieces has an owner among us and the
 * synced peers (rendezvous hashing over host keys: every host that knows the same peers computes the same owner
 * without a word exchanged). A unit of another host is ours too while that host is idle at the registry.
 */
export function ownerTest(o: { ourKey: number; peerKeys: readonly number[]; peerIdle: readonly boolean[]; salt: number; unit: number }): (i: number) => boolean {
  const hosts = [o.ourKey, ...o.peerKeys];
  return (i) => {
    const owner = unitOwner(Math.floor(i / o.unit), o.salt, hosts);
    return owner === 0 || o.peerIdle[owner - 1]!;
  };
}

/** Whether a host that shares the blob with peers may start a registry run: its peers leave it short of work. */
export function starvedOfPeers(blocksAskedOfPeers: number, belowBlocks = STARVED_BELOW_BLOCKS): boolean {
  return blocksAskedOfPeers < belowBlocks;
}

/** The longest a next registry run may be, in pieces: a unit with peers, growing runs alone, the blob without peers. */
export function runLimitPieces(o: { usePeers: boolean; alone: boolean; unit: number; aloneRunBytes: number; pieceLength: number }): number {
  if (!o.usePeers) return Infinity;
  return o.alone ? Math.max(1, Math.floor(o.aloneRunBytes / o.pieceLength)) : o.unit;
}

/**
 * The next registry run, or null when there is none to start: with peers a piece picked at random among ours
 * (`mine`) and the pieces after it in its unit that may go to the registry too; alone (or without peers) the first
 * missing pieces in order, so that the running hash sees each byte once.
 */
export function nextRegistryRun(picker: PiecePicker, o: { now: number; usePeers: boolean; alone: boolean; mine?: (i: number) => boolean; maxPieces: number }): number[] | null {
  const first = o.usePeers && !o.alone ? picker.pickForRegistry(o.now, o.mine) : firstMissingIdle(picker, o.now);
  if (first === null) return null;
  const run = [first];
  const end = Math.min(o.alone ? first + o.maxPieces : first - (first % o.maxPieces) + o.maxPieces, picker.count);
  while (first + run.length < end && picker.extendsRegistryRun(first + run.length, o.now)) run.push(first + run.length);
  return run;
}

/** Without peers, the registry takes the missing pieces in order (long sequential requests). */
function firstMissingIdle(picker: PiecePicker, now: number): number | null {
  for (let i = 0; i < picker.count; i++) if (picker.extendsRegistryRun(i, now)) return i;
  return null;
}

/** A claim that lapsed (its time passed) without its piece. */
export function anyLapsed(claims: ReadonlyMap<number, number>, now: number): boolean {
  for (const until of claims.values()) if (until < now) return true;
  return false;
}

/** What the sender knows of one of its running registry runs, for refreshing its claims. */
export interface RunClaims {
  /** when its pieces were last claimed to the peers */
  claimedAt: number;
  /** when its last byte arrived (or the run started) */
  progressedAt: number;
  /** its pieces, those already here too: their announcements may still be on their way to the peers, queued behind
   *  piece data, and a claim must not lapse before its piece's announcement arrives (peers ignore a claim on a piece
   *  they know we have, see claimCounts) */
  pieces: readonly number[];
  /** whether every piece of it is here */
  done: boolean;
}

/**
 * The claim messages to send again for a running registry run, or null: its pieces, in messages of at most
 * CLAIM_MESSAGE_PIECES, once CLAIM_REFRESH_MS passed since its last claim and bytes arrived since. A run whose bytes
 * stopped claims nothing more, so that its claims lapse at the peers (which then fetch its pieces themselves).
 */
export function claimsToRefresh(run: RunClaims, now: number, refreshMs = CLAIM_REFRESH_MS): number[][] | null {
  if (run.done || now - run.claimedAt < refreshMs || run.progressedAt <= run.claimedAt) return null;
  return claimMessages(run.pieces);
}

/**
 * Whether a peer's claim on piece i counts: not when the peer already announced the piece (a renewed claim may name
 * pieces whose announcements went out before it; TCP keeps the order, so such a claim would never be ended by one).
 */
export function claimCounts(peerHas: (i: number) => boolean, i: number): boolean {
  return !peerHas(i);
}

/** Pieces to claim, cut into messages a peer reads whole (CLAIM_MESSAGE_PIECES each). */
export function claimMessages(pieces: readonly number[]): number[][] {
  const out: number[][] = [];
  for (let k = 0; k < pieces.length; k += CLAIM_MESSAGE_PIECES) out.push(pieces.slice(k, k + CLAIM_MESSAGE_PIECES));
  return out;
}

/**
 * Until when a peer's claim on a piece holds, on a claim message naming it: CLAIM_MS from now, and at most
 * MAX_CLAIM_HOLD_MS after the peer first claimed the piece (`since`). Honest claimers renew their claims while their
 * runs deliver (claimsToRefresh); the bound keeps a peer that claims pieces and never fetches them, renewing its
 * claims all the while, from holding them back from the registry for longer than that, once. (`claimMs`: the
 * simulator's what-if; the bound scales with it.)
 */
export function claimUntil(now: number, since: number, claimMs = CLAIM_MS): number {
  return Math.min(now + claimMs, since + (MAX_CLAIM_HOLD_MS / CLAIM_MS) * claimMs);
}
