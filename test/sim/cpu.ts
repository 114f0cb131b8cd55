// CPU, for fleets whose processes share one machine (the namespace benchmark: N swarmpull processes and the registry
// on 2 cores). Every process asks for CPU in proportion to the bytes it moves (a host per byte received and per byte
// sent, the registry per byte sent), a host also for a fixed amount at the start of its pull (before its first
// request) and, optionally, for a constant share while it pulls (timers, collections). When the processes together ask
// for more than the machine's cores, each gets a max-min fair share (processor sharing), and a flow moves bytes in
// proportion to the smaller of its two ends' shares of what they asked for. Off by default: a fleet's hosts have
// cores of their own.
import type { Flow } from './network.ts';

export interface CpuConfig {
  /** cores all the processes share */
  cores: number;
  /** CPU-s a host spends per GiB it receives (from peers or the registry) */
  receiveCpuSPerGiB: number;
  /** CPU-s a host spends per GiB it sends to its peers */
  sendCpuSPerGiB: number;
  /** CPU-s the registry spends per GiB it sends */
  registryCpuSPerGiB: number;
  /** CPU-s a host spends after its start before its pull begins (resolve, TLS, manifest); one core at most */
  startCpuS: number;
  /** CPU-s per second a host spends while it pulls, however many bytes it moves */
  busyCpuSPerS?: number;
}

/**
 * The namespace benchmark's costs at 20 Mbit/s (scenario (a): 128 MiB, 8 hosts, the binary), each from a measurement:
 * - receive 5.3 and send 1.6 CPU-s per GiB: a puller and its seeder at full speed, where time-bound costs vanish
 *   (docs/performance.md "One peer to one peer", 1 GiB, the binary, median of 3);
 * - registry 16 CPU-s per GiB sent: docker-registry's utime+stime (/proc/PID/stat) over each of three 8-host runs at
 *   20 Mbit/s: 2.4-2.9 CPU-s for 0.165-0.171 GiB (14.7-16.7);
 * - start 0.3 CPU-s: a 4 MiB pull of the binary costs ~0.3 CPU-s whatever its source (docs/performance.md "Fixed
 *   cost per pull"; the binary's `--version` alone 0.17);
 * - busy 0.084 CPU-s per s: what is left of a host's 7.5 CPU-s (median of 24 hosts in 3 runs, GNU time) over its
 *   76 s pull once start-up and bytes (0.125 GiB in at 5.3, 0.115 GiB out at 1.6) are taken off: timers, wake-ups
 *   and V8's collections of a slow transfer (docs/performance.md: a paced transfer costs ~3x per byte).
 */
export const CPU_20MBIT = {
  receiveCpuSPerGiB: 5.3,
  sendCpuSPerGiB: 1.6,
  registryCpuSPerGiB: 16,
  startCpuS: 0.3,
  busyCpuSPerS: 0.084,
} as const satisfies Omit<CpuConfig, 'cores'>;

const GiB = 2 ** 30;
/** CPU-s per GiB → CPU-ms per byte (rates are bytes per ms, so demand comes out in cores) */
const perByte = (cpuSPerGiB: number) => (cpuSPerGiB * 1000) / GiB;

export class Cpu {
  readonly config: CpuConfig;
  /** CPU-ms each process used (hosts, then the registry) */
  readonly used: Float64Array;
  /** ms of virtual time during which the processes asked for more than the cores */
  saturatedMs = 0;
  private readonly receiveCost: Float64Array;
  private readonly sendCost: Float64Array;
  private readonly demand: Float64Array;
  private readonly share: Float64Array;
  /** per host: CPU-ms of start-up still to do, or -1 when not starting */
  private readonly startLeft: Float64Array;
  private readonly onStarted: ((() => void) | null)[];
  private readonly pulling: Uint8Array;

  constructor(config: CpuConfig, hosts: number, registryNode: number) {
    this.config = config;
    const n = hosts + 1;
    this.used = new Float64Array(n);
    this.receiveCost = new Float64Array(n).fill(perByte(config.receiveCpuSPerGiB));
    this.sendCost = new Float64Array(n).fill(perByte(config.sendCpuSPerGiB));
    this.receiveCost[registryNode] = 0;
    this.sendCost[registryNode] = perByte(config.registryCpuSPerGiB);
    this.demand = new Float64Array(n);
    this.share = new Float64Array(n);
    this.startLeft = new Float64Array(n).fill(-1);
    this.onStarted = Array(n).fill(null);
    this.pulling = new Uint8Array(n);
  }

  /** Host `h` starts: `begin` runs once it has had its start-up CPU (at the end of the step that gave it). */
  start(h: number, begin: () => void): void {
    if (this.config.startCpuS <= 0) {
      this.pulling[h] = 1;
      return begin();
    }
    this.startLeft[h] = this.config.startCpuS * 1000;
    this.onStarted[h] = begin;
  }

  /** Host `h` has its image: from now on it costs only what it sends. */
  done(h: number): void {
    this.pulling[h] = 0;
  }

  /**
   * Scale the flows' rates (set by the links) to the CPU their ends get over the next `dt` ms, and do `dt` ms of
   * start-up work; returns the hosts whose start-up ended, for the caller to begin (after the bytes of this step).
   */
  limit(flows: readonly Flow[], dt: number): (() => void)[] {
    const { demand, share, receiveCost, sendCost, startLeft, pulling } = this;
    const busy = this.config.busyCpuSPerS ?? 0;
    demand.fill(0);
    for (const f of flows) {
      demand[f.dst]! += f.rate * receiveCost[f.dst]!;
      demand[f.src]! += f.rate * sendCost[f.src]!;
    }
    for (let i = 0; i < demand.length; i++) {
      if (startLeft[i]! >= 0) demand[i]! += 1; // start-up runs on one core when it can
      if (pulling[i]) demand[i]! += busy;
    }
    if (fairShares(demand, this.config.cores, share) < sum(demand) - 1e-12) this.saturatedMs += dt;
    // a process's byte work gets the same fraction of what it asked for as its other work; a flow goes at the pace
    // of its slower end (the CPU the faster end does not get to use is lost for this step)
    const used = this.used;
    for (const f of flows) {
      const s = Math.min(ratio(share[f.src]!, demand[f.src]!), ratio(share[f.dst]!, demand[f.dst]!));
      if (s < 1) f.rate *= s;
      used[f.dst]! += f.rate * receiveCost[f.dst]! * dt;
      used[f.src]! += f.rate * sendCost[f.src]! * dt;
    }
    const begun: (() => void)[] = [];
    for (let i = 0; i < demand.length; i++) {
      const got = ratio(share[i]!, demand[i]!);
      if (pulling[i]) used[i]! += busy * got * dt;
      if (startLeft[i]! < 0) continue;
      used[i]! += got * dt;
      startLeft[i]! -= got * dt;
      if (startLeft[i]! <= 0) {
        startLeft[i] = -1;
        pulling[i] = 1;
        begun.push(this.onStarted[i]!);
        this.onStarted[i] = null;
      }
    }
    return begun;
  }
}

const ratio = (got: number, asked: number) => (asked > 0 ? Math.min(1, got / asked) : 1);

function sum(a: Float64Array): number {
  let s = 0;
  for (const x of a) s += x;
  return s;
}

/**
 * Max-min fair shares of `cores` among processes asking `demand` (water-filling: everyone gets what it asks up to a
 * common level, the level set so the shares add up to the cores); writes them to `out`, returns their total.
 */
export function fairShares(demand: Float64Array, cores: number, out: Float64Array): number {
  const asked = sum(demand);
  if (asked <= cores) {
    out.set(demand);
    return asked;
  }
  const sorted = [...demand].filter((d) => d > 0).sort((a, b) => a - b);
  let left = cores;
  let level = 0;
  for (let k = 0; k < sorted.length; k++) {
    const even = left / (sorted.length - k);
    if (sorted[k]! >= even) {
      level = even;
      break;
    }
    left -= sorted[k]!;
    level = sorted[k]!;
  }
  for (let i = 0; i < demand.length; i++) out[i] = Math.min(demand[i]!, level);
  return cores;
}
