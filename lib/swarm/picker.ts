// Which piece to ask for next, and from whom: rarest-first among peers, random among pieces nobody has for
// the registry, duplicates only in the endgame. Pure bookkeeping: no I/O, so it is unit-tested directly.
import type { Bitfield } from '../store/bitfield.ts';

export class PiecePicker {
  readonly count: number;
  private readonly have: Bitfield;
  /** how many connected peers have each piece */
  private readonly availability: Uint16Array;
  /** pieces being fetched now, with how many fetches are running */
  private readonly active = new Map<number, number>();
  /** pieces a peer said it is fetching from the registry, with when that claim lapses */
  private readonly claims = new Map<number, number>();
  private readonly random: () => number;

  constructor(have: Bitfield, random: () => number = Math.random) {
    this.have = have;
    this.count = have.length;
    this.availability = new Uint16Array(have.length);
    this.random = random;
  }

  addPeer(bits: Bitfield): void {
    for (let i = 0; i < this.count; i++) if (bits.get(i)) this.availability[i]!++;
  }

  removePeer(bits: Bitfield): void {
    for (let i = 0; i < this.count; i++) if (bits.get(i) && this.availability[i]! > 0) this.availability[i]!--;
  }

  peerHas(i: number): void {
    if (i >= 0 && i < this.count) this.availability[i]!++;
  }

  /** A peer that had piece i no longer counts for it (it refused the piece, or choked us). */
  peerLost(i: number): void {
    if (i >= 0 && i < this.count && this.availability[i]! > 0) this.availability[i]!--;
  }

  /** A peer announced it is fetching piece i from the registry: leave it to that peer for a while. */
  claimedByPeer(i: number, untilMs: number): void {
    if (i >= 0 && i < this.count) this.claims.set(i, untilMs);
  }

  /** The peer that claimed piece i left (or has it now): the piece is free for the registry again. */
  dropClaim(i: number): void {
    this.claims.delete(i);
  }

  available(i: number): number {
    return this.availability[i]!;
  }

  isMissing(i: number): boolean {
    return !this.have.get(i);
  }

  get remaining(): number {
    return this.count - this.have.count();
  }

  start(i: number): void {
    this.active.set(i, (this.active.get(i) ?? 0) + 1);
  }

  /** A fetch of piece i ended (done or failed); a done piece is marked in `have` by the store. */
  finish(i: number): void {
    const n = (this.active.get(i) ?? 1) - 1;
    if (n <= 0) this.active.delete(i);
    else this.active.set(i, n);
  }

  isActive(i: number): boolean {
    return this.active.has(i);
  }

  /** Every missing piece is already being fetched: time to duplicate requests for the last ones. */
  inEndgame(): boolean {
    let endgame = true;
    this.eachMissing(undefined, (i) => (endgame = this.active.has(i)));
    return endgame;
  }

  /**
   * The rarest missing piece this peer has and nobody is fetching, ties broken at random; in the endgame,
   * a piece already being fetched elsewhere (but not from this peer: `skip`). `endgame`: inEndgame(), when the
   * caller asked already (a byte scan of the bitfield).
   */
  pickFromPeer(peer: Bitfield, skip?: (i: number) => boolean, endgame = this.inEndgame()): number | null {
    let best = -1;
    let bestAvail = Infinity;
    let ties = 0;
    this.eachMissing(peer, (i) => {
      if (skip?.(i) || (this.active.has(i) && !endgame)) return true;
      const a = this.availability[i]!;
      if (a < bestAvail) {
        best = i;
        bestAvail = a;
        ties = 1;
      } else if (a === bestAvail && this.random() * ++ties < 1) {
        best = i; // reservoir sampling: each tied piece equally likely
      }
      return true;
    });
    return best < 0 ? null : best;
  }

  /**
   * A piece for the registry: missing, that no connected peer has, nobody here is fetching and no peer claimed.
   * Picked at random so hosts that start together fetch different pieces and then swap them. `mine` narrows the
   * choice to the pieces this host owns, so that hosts picking at the same moment (before each other's claims
   * arrive, which under load queue behind piece data) pick from disjoint sets.
   */
  pickForRegistry(now = Date.now(), mine?: (i: number) => boolean): number | null {
    const candidates: number[] = [];
    this.eachMissing(undefined, (i) => {
      if (this.extendsRegistryRun(i, now) && (!mine || mine(i))) candidates.push(i);
      return true;
    });
    if (candidates.length === 0) return null;
    return candidates[Math.floor(this.random() * candidates.length)]!;
  }

  /**
   * Call f for each piece we lack (and `from` has, if given), in order, until f returns false. Eight pieces at a time:
   * the pickers run on every wire event, and a piece-by-piece scan of every blob was a fan-out host's largest cost.
   */
  private eachMissing(from: Bitfield | undefined, f: (i: number) => boolean): void {
    const ours = this.have.buffer;
    const theirs = from?.buffer;
    for (let b = 0; b < ours.length; b++) {
      let bits = ~ours[b]! & (theirs ? theirs[b]! : 0xff) & 0xff;
      while (bits !== 0) {
        const k = Math.clz32(bits) - 24; // the highest set bit is the lowest piece number
        bits &= ~(0x80 >> k);
        const i = b * 8 + k;
        if (i >= this.count) return;
        if (!f(i)) return;
      }
    }
  }

  /** Whether piece i may go to the registry: also the test for extending a run (keeps Range requests long). */
  extendsRegistryRun(i: number, now = Date.now()): boolean {
    if (i >= this.count || this.have.get(i) || this.active.has(i) || this.availability[i]! > 0) return false;
    const claim = this.claims.get(i);
    return claim === undefined || claim <= now;
  }
}
