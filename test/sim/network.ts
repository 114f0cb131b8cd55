// The links, as fluid flows: every node has an uplink and a downlink (bytes/ms), each TCP connection is a flow that
// carries its queued transfers one after the other (a connection answers requests in order), and the active flows
// share the links about fairly (weighted max-min, approximated by a few rounds of handing a link's unused share to the flows
// that can still take it). Time advances in steps of `dt`: a transfer done within a step completes at its end.
export interface Transfer {
  bytes: number;
  /** bytes still to go */
  left: number;
  cancelled: boolean;
  done: () => void;
}

export class Flow {
  readonly src: number;
  readonly dst: number;
  /** no byte moves before this time (a request's latency) */
  startAt: number;
  readonly queue: Transfer[] = [];
  /** index in Network.active, or -1 */
  slot = -1;
  rate = 0;
  /** its share of a link relative to the others' (TCP connections through one bottleneck get unequal shares) */
  readonly weight: number;
  constructor(src: number, dst: number, startAt = 0, weight = 1) {
    this.src = src;
    this.dst = dst;
    this.startAt = startAt;
    this.weight = weight;
  }
}

/** rounds of handing unused shares on: 3 get within a few per cent of max-min for these flow graphs */
const FAIRNESS_ROUNDS = 3;

export class Network {
  readonly up: Float64Array;
  readonly down: Float64Array;
  /** bytes each node sent */
  readonly sent: Float64Array;
  private readonly active: Flow[] = [];
  private readonly upShare: Float64Array;
  private readonly downShare: Float64Array;
  private readonly used: Float64Array;
  private readonly count: Float64Array;
  /** called with the flows and their link shares before bytes move: may lower rates (a CPU model, cpu.ts) */
  limit: ((flows: readonly Flow[], dt: number) => void) | null = null;

  constructor(up: Float64Array, down: Float64Array) {
    this.up = up;
    this.down = down;
    const n = up.length;
    this.sent = new Float64Array(n);
    this.upShare = new Float64Array(n);
    this.downShare = new Float64Array(n);
    this.used = new Float64Array(n);
    this.count = new Float64Array(n);
  }

  get activeFlows(): number {
    return this.active.length;
  }

  send(flow: Flow, t: Transfer): void {
    flow.queue.push(t);
    if (flow.slot < 0) {
      flow.slot = this.active.length;
      this.active.push(flow);
    }
  }

  /** Move `dt` ms of bytes; returns the transfers that completed, in order. */
  advance(now: number, dt: number): Transfer[] {
    const flows = this.active.filter((f) => f.startAt <= now);
    this.share(flows);
    this.limit?.(flows, dt);
    const done: Transfer[] = [];
    for (const f of flows) {
      let budget = f.rate * dt;
      while (budget > 0 && f.queue.length > 0) {
        const t = f.queue[0]!;
        if (t.cancelled) {
          f.queue.shift();
          continue;
        }
        const n = Math.min(budget, t.left);
        t.left -= n;
        budget -= n;
        this.sent[f.src]! += n;
        if (t.left <= 1e-6) {
          f.queue.shift();
          done.push(t);
        }
      }
      while (f.queue.length > 0 && f.queue[0]!.cancelled) f.queue.shift();
      if (f.queue.length === 0) this.deactivate(f);
    }
    return done;
  }

  /** Drop a flow's cancelled transfers at its head (a cancelled transfer in the middle is skipped when reached). */
  tidy(f: Flow): void {
    while (f.queue.length > 0 && f.queue[0]!.cancelled && f.queue[0]!.left === f.queue[0]!.bytes) f.queue.shift();
    if (f.queue.length === 0 && f.slot >= 0) this.deactivate(f);
  }

  private deactivate(f: Flow): void {
    const last = this.active.pop()!;
    if (last !== f) {
      this.active[f.slot] = last;
      last.slot = f.slot;
    }
    f.slot = -1;
  }

  /** Rates: each link's capacity split among its flows, and what a flow cannot use handed to the others. */
  private share(flows: Flow[]): void {
    const { up, down, upShare, downShare, used, count } = this;
    upShare.fill(0);
    for (const f of flows) upShare[f.src]! += f.weight;
    downShare.fill(0);
    for (const f of flows) downShare[f.dst]! += f.weight;
    for (let i = 0; i < up.length; i++) {
      upShare[i] = upShare[i]! > 0 ? up[i]! / upShare[i]! : 0;
      downShare[i] = downShare[i]! > 0 ? down[i]! / downShare[i]! : 0;
    }
    for (const f of flows) f.rate = f.weight * Math.min(upShare[f.src]!, downShare[f.dst]!);
    for (let round = 1; round < FAIRNESS_ROUNDS; round++) {
      // uplinks: flows held back by their receiver keep their rate; the rest share what is left
      used.fill(0);
      count.fill(0);
      for (const f of flows) {
        if (f.rate < f.weight * upShare[f.src]! - 1e-12) used[f.src]! += f.rate;
        else count[f.src]! += f.weight;
      }
      for (let i = 0; i < up.length; i++) if (count[i]! > 0) upShare[i] = Math.max(0, up[i]! - used[i]!) / count[i]!;
      used.fill(0);
      count.fill(0);
      for (const f of flows) {
        if (f.rate < f.weight * downShare[f.dst]! - 1e-12) used[f.dst]! += f.rate;
        else count[f.dst]! += f.weight;
      }
      for (let i = 0; i < down.length; i++) if (count[i]! > 0) downShare[i] = Math.max(0, down[i]! - used[i]!) / count[i]!;
      for (const f of flows) f.rate = f.weight * Math.min(upShare[f.src]!, downShare[f.dst]!);
    }
    // the rounds may hand out a little more than a link has: scale such a link's flows down to it
    for (const [cap, end] of [[up, 'src'], [down, 'dst']] as const) {
      used.fill(0);
      for (const f of flows) used[f[end]]! += f.rate;
      for (const f of flows) if (used[f[end]]! > cap[f[end]]!) f.rate *= cap[f[end]]! / used[f[end]]!;
    }
  }
}
