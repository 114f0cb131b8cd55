// A fleet of hosts pulling one image at once, in virtual time: each host runs SimBlob (the real decision code) per
// layer, finds peers (random ones within a short delay, as mDNS answers come, then peer exchange), connects to at
// most MAX_PEERS_PER_BLOB per blob, and fetches over simulated links (network.ts) from peers and a registry.
import { DialBudget } from '../../lib/swarm/candidates.ts';
import { Slots } from '../../lib/swarm/semaphore.ts';
import { Cpu, type CpuConfig } from './cpu.ts';
import { EventQueue } from './event-queue.ts';
import { Flow, Network } from './network.ts';
import { hex8, sample, seeded, type Random } from '../support/random.ts';
import { SimBlob, type BlobEnv } from './sim-blob.ts';

/** lib/swarm/swarm.ts: ready peers per blob, and dials of it under way */
const MAX_PEERS_PER_BLOB = 32;
/** lib/swarm/swarm.ts: how long a blob's registry waits for a first peer */
const WAIT_FOR_PEERS_MS = 300;
/** lib/swarm/swarm.ts: new peers are told to the others in batches this long */
const PEX_BATCH_MS = 100;
/** lib/pull.ts: registry requests at once per process */
const REGISTRY_CONCURRENCY = 4;
/** BlobSwarm's watchdog period */
const WATCHDOG_MS = 1000;

export interface SimConfig {
  hosts: number;
  /** bytes of each layer */
  layers: number[];
  /** every host's uplink and downlink, Mbit/s */
  rateMbit: number;
  /** the registry's egress, Mbit/s */
  registryMbit: number;
  /**
   * bytes on the wire per byte of payload (default 1): TCP/IP and Ethernet headers make full segments 1514 / 1448 =
   * 1.046, so a shaped link carries payload at its rate / 1.046, and a veth counter sees the registry send 1.046x
   */
  framing?: number;
  /** from a registry request to its first byte */
  registryLatencyMs: number;
  /** registry requests' shares of its link spread over [1 - s, 1 + s] of a fair one (0: TCP exactly fair) */
  registryShareSpread?: number;
  /**
   * one registry request in (hosts x REGISTRY_CONCURRENCY) gets this share of the registry's link relative to the
   * others': TCP downloads through one tbf-shaped link share it so, one connection at 13-21x the others' share
   * and the rest alike (test/bench/registry-shares.ts, 32 and 64 downloads at 20 Mbit/s; median 15)
   */
  registryHogWeight?: number;
  /** a what-if: with peers, the registry only while fewer blocks than this are asked of peers (see SimBlob) */
  starvedBelowBlocks?: number;
  /** a what-if: how long a peer must hold no claim to look idle at the registry (default OWNER_IDLE_MS) */
  ownerIdleMs?: number;
  /** a what-if: how long a registry claim holds (default: CLAIM_MS, lib/swarm/fetch-policy.ts) */
  claimMs?: number;
  /** false: registry runs do not renew their claims (the code before claimsToRefresh) */
  refreshClaims?: boolean;
  /** a what-if: strict owners first (see SimBlob.strict): for `ms`, the top `owners` of the fleet's scores */
  strictOwners?: { ms: number; owners: number };
  /** piece size instead of the real layout's (fewer, longer pieces: a big fleet of small pieces is slow to simulate) */
  pieceBytes?: number;
  /** from a dial to a ready connection (TCP, handshake, key proof) */
  connectMs: number;
  /** peers each host learns from discovery (mDNS answers) */
  learnPeers: number;
  /** discovery answers come within [min, max] ms of a host's start */
  discoveryMs: [number, number];
  /** hosts start within this long of each other */
  startSpreadMs: number;
  /** the network's time step (and a message's latency) */
  stepMs: number;
  seed: number;
  /** give up after this much virtual time */
  limitMs?: number;
  /** the hosts and the registry share this many cores (cpu.ts); without it every process has cores of its own */
  cpu?: CpuConfig;
}

export interface HostResult {
  startAt: number;
  doneAt: number;
}

export interface SimResult {
  config: SimConfig;
  imageBytes: number;
  /** per host: start and end of its pull (virtual ms) */
  hosts: HostResult[];
  registryBytes: number;
  peerBytes: number;
  /** bytes every host kept, from the registry and from peers (each host's copy of the image, once) */
  keptBytes: number[];
  duplicateBytes: number;
  /** registry bytes asked for, by why the unit was the host's (see SimBlob.registryBy) */
  registryBy: { own: number; idleOwner: number; alone: number };
  /** (host, blob, peer) claim views dropped because a claim lapsed without its piece */
  lapsedClaimViews: number;
  /** pieces of every blob fetched from the registry at least once, by somebody */
  registryPiecesCovered: number;
  pieces: number;
  /** peers per blob at the end: mean and min */
  meanPeers: number;
  minPeers: number;
  /** with a CPU model: CPU-s each host used, the registry's, and how long the processes wanted more than the cores */
  cpu?: { hostS: number[]; registryS: number; saturatedS: number };
  wallMs: number;
}

interface SimHost {
  id: number;
  key: number;
  blobs: SimBlob[];
  startAt: number;
  doneAt: number;
  blobsLeft: number;
  dialBudget: DialBudget;
  /** per blob, peers that became ready and are to be told to the others */
  pexNews: (number[] | null)[];
}

export function simulate(config: SimConfig): SimResult {
  const wallStart = performance.now();
  const random: Random = seeded(config.seed);
  const q = new EventQueue();
  const n = config.hosts;
  const registryNode = n;
  const bytesPerMs = (mbit: number) => (mbit * 1e6) / 8 / 1000;
  const framing = config.framing ?? 1;
  const up = new Float64Array(n + 1).fill(bytesPerMs(config.rateMbit) / framing);
  const down = new Float64Array(n + 1).fill(bytesPerMs(config.rateMbit) / framing);
  up[registryNode] = bytesPerMs(config.registryMbit) / framing;
  down[registryNode] = 0;
  const net = new Network(up, down);
  const cpu = config.cpu ? new Cpu(config.cpu, n, registryNode) : null;
  /** hosts whose start-up CPU ran out during the current step: they begin once its bytes have moved */
  let begun: (() => void)[] = [];
  if (cpu) net.limit = (flows, dt) => void begun.push(...cpu.limit(flows, dt));
  const digests = config.layers.map(() => `sha256:${hex8(random)}${'0'.repeat(56)}`);

  let outbox: (() => void)[] = [];
  /** per connection, when its last message arrives (messages keep their order on it) */
  const lastMessageAt = new WeakMap<Flow, number>();
  const dirty: SimBlob[] = [];
  let hostsLeft = n;
  const hosts: SimHost[] = [];
  const env: BlobEnv = {
    now: () => q.now,
    net,
    random,
    registryNode,
    registryLatencyMs: config.registryLatencyMs,
    registryWeight: registryWeights(config, random),
    post: (f) => outbox.push(f),
    postTo: (from, peers, f) => {
      // A message goes on the connection after the piece data already queued on it: delayed by that backlog.
      // Nor does it overtake the messages sent on the connection before it (TCP keeps them in order): a have
      // overtaken by a later claim let the claim on its piece lapse.
      const groups = new Map<number, number[]>();
      for (const h of peers) {
        const flow = hosts[h]!.blobs[from.index]!.peers.get(from.host)?.flow;
        const delay = flow ? backlogMs(flow, up[from.host]!) : 0;
        let k = Math.max(1, Math.ceil(delay / config.stepMs));
        if (flow) {
          const last = lastMessageAt.get(flow);
          if (last !== undefined && last > q.now + k * config.stepMs) k = Math.round((last - q.now) / config.stepMs);
          lastMessageAt.set(flow, q.now + k * config.stepMs);
        }
        let g = groups.get(k);
        if (!g) groups.set(k, (g = []));
        g.push(h);
      }
      for (const [k, hs] of groups) {
        if (k <= 1) outbox.push(() => hs.forEach(f));
        else q.after(k * config.stepMs, () => (hs.forEach(f), flush()));
      }
    },
    schedule: (blob) => dirty.push(blob),
    blobAt: () => {
      throw new Error('set below');
    },
    done: (blob) => {
      const h = hosts[blob.host]!;
      if (--h.blobsLeft === 0) {
        h.doneAt = q.now;
        hostsLeft--;
        cpu?.done(h.id);
      }
    },
  };
  const envFor = (index: number): BlobEnv => ({ ...env, blobAt: (host) => hosts[host]!.blobs[index]! });
  const envs = config.layers.map((_, i) => envFor(i));
  for (let id = 0; id < n; id++) {
    const key = Math.floor(random() * 0x100000000);
    const slots = new Slots(REGISTRY_CONCURRENCY);
    const blobs = config.layers.map((size, i) => new SimBlob({ host: id, key, index: i, size, digest: digests[i]!, slots, env: envs[i]!, ...(config.pieceBytes ? { pieceLength: config.pieceBytes } : {}) }));
    for (const b of blobs) {
      b.waitForPeersMs = WAIT_FOR_PEERS_MS;
      if (config.claimMs !== undefined) b.claimMs = config.claimMs;
      if (config.refreshClaims === false) b.refreshClaims = false;
      if (config.ownerIdleMs !== undefined) b.ownerIdleMs = config.ownerIdleMs;
      if (config.starvedBelowBlocks !== undefined) b.starvedBelowBlocks = config.starvedBelowBlocks;
      if (config.strictOwners) b.strict = { ...config.strictOwners, fleetSize: n };
      slots.onFree(() => b.schedule());
    }
    hosts.push({ id, key, blobs, startAt: random() * config.startSpreadMs, doneAt: -1, blobsLeft: blobs.length, dialBudget: new DialBudget(), pexNews: blobs.map(() => null) });
  }
  const flush = () => {
    while (dirty.length > 0) dirty.shift()!.fill();
  };

  /** Swarm.dial: connect host a to host t for blob i, unless the rules say no. */
  const dial = (a: SimHost, i: number, t: number, pexFrom?: number) => {
    const blob = a.blobs[i]!;
    if (blob.readyPeers >= MAX_PEERS_PER_BLOB || blob.dialed.has(t) || blob.dialed.size >= MAX_PEERS_PER_BLOB || blob.peers.has(t)) return;
    if (pexFrom !== undefined && !a.dialBudget.allow(`pex ${pexFrom}`, String(i), `h${t}`, q.now)) return;
    blob.dialed.add(t);
    blob.connecting++;
    q.after(config.connectMs, () => {
      blob.connecting--;
      const other = hosts[t]!.blobs[i]!;
      // refused when either side has its peers already (Swarm.accept, and the ready check of Swarm.admit)
      if (blob.peers.has(t) || other.readyPeers >= MAX_PEERS_PER_BLOB || blob.readyPeers >= MAX_PEERS_PER_BLOB) {
        blob.dialed.delete(t);
        blob.schedule();
        return;
      }
      connect(a, hosts[t]!, i);
      flush();
    });
  };

  const connect = (a: SimHost, b: SimHost, i: number) => {
    const ba = a.blobs[i]!;
    const bb = b.blobs[i]!;
    ba.addPeer(b.id, b.key, new Flow(b.id, a.id));
    bb.addPeer(a.id, a.key, new Flow(a.id, b.id));
    const helloA = ba.hello();
    const helloB = bb.hello();
    outbox.push(() => {
      bb.onHello(a.id, helloA);
      ba.onHello(b.id, helloB);
    });
    ba.schedule();
    bb.schedule();
    // peer exchange: each side tells the new peer its other peers, and its other peers of the new one (batched)
    for (const [self, peer] of [[a, b], [b, a]] as const) {
      const others = [...self.blobs[i]!.peers.keys()].filter((h) => h !== peer.id);
      outbox.push(() => pexArrives(peer, i, others, self.id));
      tellOthers(self, i, peer.id);
    }
  };

  const pexArrives = (h: SimHost, i: number, addrs: number[], from: number) => {
    // a complete blob needs no more peers
    if (h.blobs[i]!.complete) return;
    for (const t of addrs) if (t !== h.id) dial(h, i, t, from);
  };

  const tellOthers = (self: SimHost, i: number, peer: number) => {
    const pending = self.pexNews[i];
    if (pending) return void pending.push(peer);
    const news = [peer];
    self.pexNews[i] = news;
    q.after(PEX_BATCH_MS, () => {
      self.pexNews[i] = null;
      for (const p of self.blobs[i]!.peers.keys()) {
        const fresh = news.filter((x) => x !== p);
        if (fresh.length) outbox.push(() => pexArrives(hosts[p]!, i, fresh, self.id));
      }
      flush();
    });
  };

  for (const h of hosts) {
    const begin = () => {
      for (const b of h.blobs) b.start(WAIT_FOR_PEERS_MS, (t, f) => q.at(t, () => (f(), flush())));
      const [lo, hi] = config.discoveryMs;
      q.after(lo + random() * (hi - lo), () => {
        const learned = sample(random, n, config.learnPeers, h.id);
        for (let i = 0; i < h.blobs.length; i++) for (const t of learned) dial(h, i, t);
        flush();
      });
      const watchdog = () => {
        if (h.doneAt >= 0) return;
        for (const b of h.blobs) b.watchdog();
        flush();
        q.after(WATCHDOG_MS, watchdog);
      };
      q.after(WATCHDOG_MS, watchdog);
      flush();
    };
    // with a CPU model the pull begins once the process has had its start-up CPU, shared with the others
    q.at(h.startAt, () => (cpu ? cpu.start(h.id, begin) : begin()));
  }

  // the network's clock: messages sent during the last step arrive, then bytes move
  const step = config.stepMs;
  const tick = () => {
    const mail = outbox;
    outbox = [];
    for (const f of mail) f();
    flush();
    for (const t of net.advance(q.now, step)) t.done();
    const starting = begun;
    begun = [];
    for (const f of starting) f();
    flush();
    if (hostsLeft > 0) q.after(step, tick);
  };
  q.at(0, tick);
  const limit = config.limitMs ?? Infinity;
  while (hostsLeft > 0 && q.now <= limit && q.step());

  const pieces = hosts[0]!.blobs.reduce((s, b) => s + b.layout.count, 0);
  let covered = 0;
  let peerBytes = 0;
  let dup = 0;
  for (let i = 0; i < config.layers.length; i++) {
    const count = hosts[0]!.blobs[i]!.layout.count;
    for (let p = 0; p < count; p++) if (hosts.some((h) => registryHad(h.blobs[i]!, p))) covered++;
  }
  for (const h of hosts) for (const b of h.blobs) {
    peerBytes += b.fromPeers;
    dup += b.duplicateBytes;
  }
  const peerCounts = hosts.flatMap((h) => h.blobs.map((b) => b.readyPeers));
  return {
    config,
    imageBytes: config.layers.reduce((a, b) => a + b, 0),
    hosts: hosts.map((h) => ({ startAt: h.startAt, doneAt: h.doneAt })),
    registryBytes: net.sent[registryNode]!,
    keptBytes: hosts.map((h) => h.blobs.reduce((s, b) => s + b.fromRegistry + b.fromPeers, 0)),
    peerBytes,
    duplicateBytes: dup,
    registryBy: hosts.reduce(
      (acc, h) => {
        for (const b of h.blobs) for (const k of ['own', 'idleOwner', 'alone'] as const) acc[k] += b.registryBy[k];
        return acc;
      },
      { own: 0, idleOwner: 0, alone: 0 },
    ),
    lapsedClaimViews: hosts.reduce((s, h) => s + h.blobs.reduce((t, b) => t + b.lapsedPeers, 0), 0),
    registryPiecesCovered: covered,
    pieces,
    meanPeers: peerCounts.reduce((a, b) => a + b, 0) / peerCounts.length,
    minPeers: Math.min(...peerCounts),
    ...(cpu ? { cpu: { hostS: [...cpu.used.subarray(0, n)].map((ms) => ms / 1000), registryS: cpu.used[registryNode]! / 1000, saturatedS: cpu.saturatedMs / 1000 } } : {}),
    wallMs: performance.now() - wallStart,
  };
}

/** Each registry request's share of the registry's link, relative to a fair one (see SimConfig). */
export function registryWeights(config: Pick<SimConfig, 'hosts' | 'registryHogWeight' | 'registryShareSpread'>, random: Random): () => number {
  const hog = config.registryHogWeight;
  const spread = config.registryShareSpread ?? 0;
  // one request in all the fleet's at once is the hog (at random, so it lands on hosts and runs as it happens)
  const hogChance = 1 / (config.hosts * REGISTRY_CONCURRENCY);
  return () => (hog !== undefined && random() < hogChance ? hog : 1 + spread * (2 * random() - 1));
}

/** How long the bytes queued on a flow take at its current rate (a new flow: a share of the uplink). */
function backlogMs(flow: Flow, uplink: number): number {
  let bytes = 0;
  for (const t of flow.queue) if (!t.cancelled) bytes += t.left;
  if (bytes === 0) return 0;
  return Math.min(10_000, bytes / (flow.rate > 0 ? flow.rate : uplink / MAX_PEERS_PER_BLOB));
}

function registryHad(b: SimBlob, piece: number): boolean {
  return b.registryPieces.get(piece);
}
