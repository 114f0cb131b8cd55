// The process's place in the LAN swarm: one TCP listener for every blob (the handshake's info hash picks the
// blob), discovery (mDNS, static peers, peer exchange), and the blobs being fetched or seeded.
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { failure } from '../errors.ts';
import type { Descriptor } from '../image/types.ts';
import type { RateLimit } from '../rate-limit.ts';
import { BLOCK_SIZE, pieceLength } from '../store/pieces.ts';
import { BlobSwarm } from './blob-swarm.ts';
import { CappedSet } from './capped-set.ts';
import { DialBudget, dialableFromNetwork } from './candidates.ts';
import { DigestSearch } from './digest-search.ts';
import { swarmId } from './ids.ts';
import { MdnsDiscovery } from './mdns.ts';
import { Peer } from './peer.ts';
import { reusedReads } from './reused-reads.ts';
import { Slots } from './semaphore.ts';
import type { StaticPeer } from './static-peers.ts';

export const DEFAULT_PORT = 7881;
/** ready peers per blob (and our dials of it): plenty to fill a link, few enough to keep requests spread */
const MAX_PEERS_PER_BLOB = 32;
/** sockets per process, every blob together: file descriptors and memory stay bounded whatever the LAN does */
const MAX_CONNECTIONS = 512;
/**
 * Incoming connections from one address that are not ready yet (handshakes unfinished, key unproven). A pull dials
 * one per blob it fetches at once (8) and a host may run a pull and a serve: more is a flood of connections that
 * never finish (each closed after the peer's ready timeout), which must not take every slot from other hosts.
 */
const MAX_HANDSHAKING_PER_HOST = 32;
const CONNECT_TIMEOUT_MS = 5_000;
/**
 * A peer closed for breaking a bound (it stalled, trickled, flooded us or spoke garbage) is not dialled or kept, for
 * any blob, for this long: it costs a pull one timeout, not one per blob, and an honest but overloaded peer is
 * tried again later. Keyed by address: a peer chooses its id and port, not its address on the LAN.
 */
const PENALTY_MS = 30_000;
/**
 * Peer ids remembered as seen: a `serve` runs for months and every connection may bring a fresh id. Far above what a
 * pull sees (a fleet's hosts, each with one id per process), so a pull's `--json` count is exact.
 */
const MAX_PEERS_SEEN = 4096;
/** how long a blob's download waits for a first peer before it starts on the registry (see BlobSwarm) */
const WAIT_FOR_PEERS_MS = 300;
/** peers that became ready within this long are told to the blob's other peers in one message each */
const PEX_BATCH_MS = 100;

export interface SwarmOptions {
  /** TCP port to listen on; 0 picks a free one; unset: DEFAULT_PORT, or a free one if that is taken */
  port?: number;
  mdns: boolean;
  staticPeers: StaticPeer[];
  swarmKey?: Buffer;
  /** registry requests at once, for all blobs of this process */
  registryConcurrency: number;
  /** IPv4 address of the interface for mDNS (default: the first non-internal one) */
  interfaceAddress?: string;
  /** bytes sent to peers, every peer together (--max-upload-rate) */
  uploadLimit?: RateLimit;
  /** bytes read from peers (--max-download-rate; the pull shares it with its registry reads) */
  downloadLimit?: RateLimit;
  log: (msg: string) => void;
}

/** What one connection is about: a blob we fetch or seed, or a digest we search for. */
type Topic = Pick<BlobSwarm, 'infoHash' | 'peers' | 'bannedPeers' | 'complete' | 'peerContext' | 'addPeer'>;

function readyPeers(topic: Topic): number {
  let n = 0;
  for (const p of topic.peers.values()) if (p.ready) n++;
  return n;
}

export class Swarm {
  readonly peerId = randomBytes(20);
  readonly registrySlots: Slots;
  /** peer ids we completed a handshake with (`--json`'s peers seen), up to MAX_PEERS_SEEN */
  readonly peersSeen = new CappedSet<string>(MAX_PEERS_SEEN);
  port = 0;
  private readonly opts: SwarmOptions;
  private readonly blobs = new Map<string, BlobSwarm>();
  /** digests we search for by id (fetchByDigest), hex swarm id → search */
  private readonly searches = new Map<string, DigestSearch>();
  private server: Server | null = null;
  private mdns: MdnsDiscovery | null = null;
  private readonly sockets = new Set<Socket>();
  /** incoming connections before their BitTorrent handshake, per remote address */
  private readonly handshaking = new Map<string, number>();
  /** addresses we are connected or connecting to, per blob: "host:port" */
  private readonly dialed = new Map<string, Set<string>>();
  /** addresses of peers that broke a bound → until when they are left alone */
  private readonly penalized = new Map<string, number>();
  /** addresses shown to lie about what they vouched for (BlobSwarm.repair) → why: left alone by every blob */
  private readonly banned = new Map<string, string>();
  /** per blob (hex swarm id), our dials not ready yet */
  private readonly connecting = new Map<string, number>();
  /** per topic, peers that became ready since its last peer exchange to every peer */
  private readonly pexNews = new Map<Topic, Set<Peer>>();
  /** dials that peers and mDNS senders may make us make */
  private readonly dialBudget = new DialBudget();
  private lastUpload = 0;
  private stopped = false;

  constructor(opts: SwarmOptions) {
    this.opts = opts;
    this.registrySlots = new Slots(opts.registryConcurrency);
  }

  async start(): Promise<this> {
    const server = createServer((socket) => this.accept(socket));
    server.maxConnections = MAX_CONNECTIONS;
    const listen = (port: number) =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, () => {
          server.off('error', reject);
          resolve();
        });
      });
    try {
      await listen(this.opts.port ?? DEFAULT_PORT);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      // A `swarmpull serve` on this host holds the default port; peers still reach it there.
      if (e.code === 'EADDRINUSE' && this.opts.port === undefined) await listen(0);
      else throw failure(`cannot listen on port ${this.opts.port} for peers: ${e.code === 'EADDRINUSE' ? 'in use (use --port)' : e.message}`);
    }
    this.server = server;
    this.port = (server.address() as { port: number }).port;
    if (this.opts.mdns) {
      const mdns = new MdnsDiscovery({ port: this.port, log: this.opts.log, ...(this.opts.interfaceAddress ? { interfaceAddress: this.opts.interfaceAddress } : {}) });
      mdns.on('peer', (id, peer, source) => {
        const key = id.toString('hex');
        const topic = this.blobs.get(key) ?? this.searches.get(key);
        if (topic) this.dial(topic, peer.host, peer.port, source);
      });
      await mdns.start();
      this.mdns = mdns;
    }
    return this;
  }

  /** The swarm of a blob (created on first use): announced on mDNS and dialled to every known peer. */
  blob(desc: Pick<Descriptor, 'digest' | 'size'>, want: boolean): BlobSwarm {
    const infoHash = swarmId(desc.digest, pieceLength(desc.size));
    const key = infoHash.toString('hex');
    let blob = this.blobs.get(key);
    if (blob) return blob;
    blob = new BlobSwarm({
      desc,
      infoHash,
      peerContext: { ourId: this.peerId, listenPort: this.port, ...(this.opts.swarmKey ? { swarmKey: this.opts.swarmKey } : {}) },
      registrySlots: this.registrySlots,
      usePeers: true,
      // Nobody to wait for without discovery (peers that know us may still connect).
      waitForPeersMs: this.opts.mdns || this.opts.staticPeers.length > 0 ? WAIT_FOR_PEERS_MS : 0,
      peersConnecting: () => this.connecting.get(key) ?? 0,
      debug: this.opts.log,
      onPeerBanned: (host, why) => this.ban(host, why),
      ...(this.opts.uploadLimit ? { uploadLimit: this.opts.uploadLimit } : {}),
      // Under a download limit, requests wait their turn behind every connection's: about a second's worth per peer
      // keeps the last of them well within the request deadlines (peer.ts), where 96 blocks each would not at 100K.
      ...(this.opts.downloadLimit ? { pipeline: Math.max(4, Math.min(96, Math.floor(this.opts.downloadLimit.rate / BLOCK_SIZE))) } : {}),
    });
    this.blobs.set(key, blob);
    this.mdns?.announce(infoHash);
    if (want) {
      this.mdns?.lookup(infoHash);
      for (const p of this.opts.staticPeers) this.dial(blob, p.host, p.port);
    }
    return blob;
  }

  /** Stop looking for more peers of a blob we now have (we keep answering for it). */
  haveBlob(blob: BlobSwarm): void {
    this.mdns?.stopLookup(blob.infoHash);
  }

  /**
   * The bytes of a small blob (a manifest) that we know only by its digest, from peers that hold it (see
   * DigestSearch), verified against the digest. One search per digest at a time. Rejects when no peer sent it
   * within `timeoutMs`, or on abort.
   */
  async fetchByDigest(digest: string, opts: { maxSize: number; timeoutMs: number; signal: AbortSignal; warn: (msg: string) => void }): Promise<Buffer> {
    const search = new DigestSearch({
      digest,
      maxSize: opts.maxSize,
      peerContext: { ourId: this.peerId, listenPort: this.port, ...(this.opts.swarmKey ? { swarmKey: this.opts.swarmKey } : {}) },
      debug: this.opts.log,
      warn: opts.warn,
    });
    const key = search.infoHash.toString('hex');
    this.searches.set(key, search);
    let timer: NodeJS.Timeout | undefined;
    let onAbort = () => {};
    try {
      return await new Promise<Buffer>((resolve, reject) => {
        if (opts.signal.aborted) return reject(opts.signal.reason);
        onAbort = () => reject(opts.signal.reason);
        opts.signal.addEventListener('abort', onAbort, { once: true });
        timer = setTimeout(() => reject(new Error(`no peer sent it within ${opts.timeoutMs / 1000} s`)), opts.timeoutMs);
        search.result.then(resolve);
        this.mdns?.lookup(search.infoHash);
        for (const p of this.opts.staticPeers) this.dial(search, p.host, p.port);
      });
    } finally {
      clearTimeout(timer);
      opts.signal.removeEventListener('abort', onAbort);
      this.searches.delete(key);
      this.mdns?.stopLookup(search.infoHash);
      search.close();
    }
  }

  private accept(socket: Socket): void {
    if (this.stopped) return void socket.destroy();
    const host = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const handshaking = this.handshaking.get(host) ?? 0;
    if (handshaking >= MAX_HANDSHAKING_PER_HOST || this.isLeftAlone(host)) return void socket.destroy();
    this.handshaking.set(host, handshaking + 1);
    let counted = true;
    const handshakeDone = () => {
      if (!counted) return;
      counted = false;
      const left = (this.handshaking.get(host) ?? 1) - 1;
      if (left > 0) this.handshaking.set(host, left);
      else this.handshaking.delete(host);
    };
    socket.once('close', handshakeDone);
    this.track(socket);
    const peer = new Peer(socket, false, undefined, this.opts.downloadLimit);
    peer.once('ready', handshakeDone);
    peer.on('close', () => this.penalizeIfFaulty(peer));
    peer.onHandshake((infoHash, peerId) => {
      const blob = this.blobs.get(infoHash);
      // A connection for a blob we do not have, or from ourselves, is closed at once.
      if (!blob || peerId === this.peerId.toString('hex') || readyPeers(blob) >= MAX_PEERS_PER_BLOB) return peer.close('unknown blob');
      if (!this.admit(blob, peer)) return;
      peer.attach(blob.peerContext());
    });
  }

  /**
   * Connect to a peer for a blob, unless already connected to that address. `learnedFrom`: the address of the peer
   * or mDNS sender that told us of it (not the operator): then the address must be dialable from the network
   * (candidates.ts; mDNS checked its own loopback exception) and within that source's dial budget.
   */
  dial(blob: Topic, host: string, port: number, learnedFrom?: { source: string; via: 'pex' | 'mdns' }): void {
    if (this.stopped || readyPeers(blob) >= MAX_PEERS_PER_BLOB || this.sockets.size >= MAX_CONNECTIONS) return;
    if (learnedFrom?.via === 'pex' && !dialableFromNetwork(host)) return;
    const key = blob.infoHash.toString('hex');
    let dialed = this.dialed.get(key);
    if (!dialed) this.dialed.set(key, (dialed = new Set()));
    const addr = `${host}:${port}`;
    // Peer exchange can name any number of addresses: dials under way count against the blob's peers too.
    if (dialed.has(addr) || dialed.size >= MAX_PEERS_PER_BLOB || blob.bannedPeers.has(host) || this.isLeftAlone(host)) return;
    // Already connected the other way (peer exchange names peers that dialled us): a second connection would be
    // closed as a duplicate, and with it whatever the first one was fetching.
    for (const p of blob.peers.values()) if (!p.isClosed && p.host === host && p.listenPort === port) return;
    // A peer's budget covers all it tells us; an mDNS sender's is per swarm, as an honest host answers once for each
    // blob it holds (an image of many layers from one host) and each lookup reports a peer only once.
    const source = learnedFrom?.via === 'mdns' ? `mdns ${learnedFrom.source} ${key}` : `pex ${learnedFrom?.source}`;
    if (learnedFrom && !this.dialBudget.allow(source, key, addr)) return;
    dialed.add(addr);
    this.connecting.set(key, (this.connecting.get(key) ?? 0) + 1);
    let connecting = true;
    const doneConnecting = () => {
      if (!connecting) return;
      connecting = false;
      this.connecting.set(key, this.connecting.get(key)! - 1);
    };
    const reads = reusedReads();
    const socket = connect({ host, port, timeout: CONNECT_TIMEOUT_MS, onread: reads.onread });
    this.track(socket);
    socket.once('timeout', () => socket.destroy());
    socket.once('close', () => {
      dialed.delete(addr);
      doneConnecting();
    });
    const peer = new Peer(socket, true, host, this.opts.downloadLimit, reads);
    peer.once('ready', doneConnecting);
    peer.on('close', () => this.penalizeIfFaulty(peer));
    socket.once('connect', () => {
      socket.setTimeout(0);
      peer.attach(blob.peerContext());
    });
    peer.onHandshake((infoHash, peerId) => {
      if (infoHash !== key || peerId === this.peerId.toString('hex')) return peer.close('wrong blob or ourselves');
      this.admit(blob, peer);
    });
  }

  private admit(blob: Topic, peer: Peer): boolean {
    const existing = blob.peers.get(peer.key);
    // Two hosts dialling each other at once: both keep the connection the lower peer id opened.
    if (existing && !existing.isClosed) {
      const ours = this.peerId.toString('hex');
      const keepNew = (ours < peer.id) === peer.outgoing;
      if (!keepNew) {
        peer.close('duplicate connection');
        return false;
      }
      existing.close('duplicate connection');
    }
    if (!blob.addPeer(peer)) {
      peer.close('refused');
      return false;
    }
    // mDNS stops asking for a blob with enough peers, and asks again when they leave (the blob's own close
    // handler, added first, has dropped the peer by then).
    peer.on('close', () => this.mdns?.connected(blob.infoHash, readyPeers(blob)));
    peer.on('ready', () => {
      if (this.isLeftAlone(peer.host)) return peer.close('left alone after breaking a bound');
      // Half-open peers hold no slot: the blob's limit counts ready ones.
      if (readyPeers(blob) > MAX_PEERS_PER_BLOB) return peer.close('enough peers for this blob');
      this.mdns?.connected(blob.infoHash, readyPeers(blob));
      this.peersSeen.add(peer.key);
      // Peer exchange: tell it where our other peers of this blob listen, and them where it does.
      peer.pex([...blob.peers.values()].filter((p) => p !== peer && p.ready && p.listenPort).map((p) => `${p.host}:${p.listenPort}`));
      this.tellOthers(blob, peer);
    });
    peer.on('pex', (addrs) => {
      // A complete blob needs no more peers: those that need it will come.
      if (blob.complete) return;
      for (const a of addrs) this.dial(blob, a.host, a.port, { source: peer.host, via: 'pex' });
    });
    peer.on('upload', () => (this.lastUpload = Date.now()));
    return true;
  }

  /**
   * A peer found later is told to those already connected (in batches), as BitTorrent's peer exchange sends what
   * is new: otherwise they learn of it only through mDNS, which a lossy link delays by a query's back-off, and not
   * at all with static peers that name only some hosts.
   */
  private tellOthers(topic: Topic, peer: Peer): void {
    const pending = this.pexNews.get(topic);
    if (pending) {
      pending.add(peer);
      return;
    }
    const news = new Set([peer]);
    this.pexNews.set(topic, news);
    setTimeout(() => {
      this.pexNews.delete(topic);
      const fresh = [...news].filter((n) => n.ready && n.listenPort);
      for (const p of topic.peers.values()) {
        if (p.ready) p.pex(fresh.filter((n) => n !== p).map((n) => `${n.host}:${n.listenPort}`));
      }
    }, PEX_BATCH_MS).unref();
  }

  /** Banned for lying, or penalized (for a while) for breaking a bound. */
  private isLeftAlone(host: string): boolean {
    if (this.banned.has(host)) return true;
    const until = this.penalized.get(host);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.penalized.delete(host);
    return false;
  }

  /** A peer that broke a bound is left alone for a while: its connections for other blobs are closed too. */
  private penalizeIfFaulty(peer: Peer): void {
    if (!peer.faulty || !peer.host || this.stopped) return;
    this.penalized.set(peer.host, Date.now() + PENALTY_MS);
    // bounded whatever a LAN does: the oldest penalty goes first
    if (this.penalized.size > MAX_CONNECTIONS) this.penalized.delete(this.penalized.keys().next().value!);
    this.closeAll(peer.host, 'left alone after breaking a bound');
  }

  /** An address that lied about what it vouched for: every blob leaves it alone for the rest of the process. */
  private ban(host: string, why: string): void {
    this.banned.set(host, why);
    if (this.banned.size > MAX_CONNECTIONS) this.banned.delete(this.banned.keys().next().value!);
    this.closeAll(host, `banned: ${why}`);
  }

  private closeAll(host: string, why: string): void {
    for (const topic of [...this.blobs.values(), ...this.searches.values()]) {
      for (const p of topic.peers.values()) if (p.host === host) p.close(why);
    }
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  /** open sockets, incoming and outgoing, handshaken or not */
  get connections(): number {
    return this.sockets.size;
  }

  get peersUsed(): number {
    const used = new Set<string>();
    for (const blob of this.blobs.values()) for (const id of blob.usedPeers) used.add(id);
    return used.size;
  }

  /**
   * Keep seeding after a pull, so the last hosts of a fan-out still have sources: until no peer has asked for
   * anything for `idleMs`, and at most `maxMs`.
   */
  async linger(maxMs: number, idleMs: number, signal?: AbortSignal): Promise<void> {
    const start = Date.now();
    this.lastUpload = Math.max(this.lastUpload, start);
    while (!signal?.aborted && Date.now() - start < maxMs && this.anyPeerConnected()) {
      if (!this.anyPeerInterested() || Date.now() - this.lastUpload >= idleMs) return;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  get hasPeers(): boolean {
    return this.anyPeerConnected();
  }

  private anyPeerConnected(): boolean {
    for (const blob of this.blobs.values()) for (const p of blob.peers.values()) if (p.ready) return true;
    return false;
  }

  /** A connected peer still misses pieces of a blob we hold whole, or is fetching from us right now. */
  private anyPeerInterested(): boolean {
    for (const blob of this.blobs.values()) {
      if (!blob.complete) continue;
      for (const p of blob.peers.values()) if (p.ready && (p.wantsFromUs || !p.bits.isComplete())) return true;
    }
    return false;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const blob of this.blobs.values()) await blob.close();
    for (const s of this.sockets) s.destroy();
    await this.mdns?.stop();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
