// The process's place in the LAN swarm: one TCP listener for every blob (the handshake's info hash picks the
// blob), discovery (mDNS, static peers, peer exchange), and the blobs being fetched or seeded.
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { failure } from '../errors.ts';
import type { Descriptor } from '../image/types.ts';
import { pieceLength } from '../store/pieces.ts';
import { BlobSwarm } from './blob-swarm.ts';
import { swarmId } from './ids.ts';
import { MdnsDiscovery } from './mdns.ts';
import { Peer } from './peer.ts';
import { Slots } from './semaphore.ts';
import type { StaticPeer } from './static-peers.ts';

export const DEFAULT_PORT = 7881;
const MAX_PEERS_PER_BLOB = 32;
const MAX_CONNECTIONS = 512;
const CONNECT_TIMEOUT_MS = 5_000;
/** how long a blob's download waits for a first peer before it starts on the registry (see BlobSwarm) */
const WAIT_FOR_PEERS_MS = 300;

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
  log: (msg: string) => void;
}

export class Swarm {
  readonly peerId = randomBytes(20);
  readonly registrySlots: Slots;
  /** every peer id we completed a handshake with */
  readonly peersSeen = new Set<string>();
  port = 0;
  private readonly opts: SwarmOptions;
  private readonly blobs = new Map<string, BlobSwarm>();
  private server: Server | null = null;
  private mdns: MdnsDiscovery | null = null;
  private readonly sockets = new Set<Socket>();
  /** addresses we are connected or connecting to, per blob: "host:port" */
  private readonly dialed = new Map<string, Set<string>>();
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
      mdns.on('peer', (id, peer) => {
        const blob = this.blobs.get(id.toString('hex'));
        if (blob) this.dial(blob, peer.host, peer.port);
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
      debug: this.opts.log,
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

  private accept(socket: Socket): void {
    if (this.stopped) return void socket.destroy();
    this.track(socket);
    const peer = new Peer(socket, false);
    peer.onHandshake((infoHash, peerId) => {
      const blob = this.blobs.get(infoHash);
      // A connection for a blob we do not have, or from ourselves, is closed at once.
      if (!blob || peerId === this.peerId.toString('hex') || blob.peers.size >= MAX_PEERS_PER_BLOB) return peer.close('unknown blob');
      if (!this.admit(blob, peer)) return;
      peer.attach(blob.peerContext());
    });
  }

  /** Connect to a peer for a blob, unless already connected to that address. */
  dial(blob: BlobSwarm, host: string, port: number): void {
    if (this.stopped || blob.peers.size >= MAX_PEERS_PER_BLOB || this.sockets.size >= MAX_CONNECTIONS) return;
    const key = blob.infoHash.toString('hex');
    let dialed = this.dialed.get(key);
    if (!dialed) this.dialed.set(key, (dialed = new Set()));
    const addr = `${host}:${port}`;
    if (dialed.has(addr) || blob.bannedPeers.has(host)) return;
    // Already connected the other way (peer exchange names peers that dialled us): a second connection would be
    // closed as a duplicate, and with it whatever the first one was fetching.
    for (const p of blob.peers.values()) if (!p.isClosed && p.host === host && p.listenPort === port) return;
    dialed.add(addr);
    const socket = connect({ host, port, timeout: CONNECT_TIMEOUT_MS });
    this.track(socket);
    socket.once('timeout', () => socket.destroy());
    socket.once('close', () => dialed.delete(addr));
    const peer = new Peer(socket, true, host);
    socket.once('connect', () => {
      socket.setTimeout(0);
      peer.attach(blob.peerContext());
    });
    peer.onHandshake((infoHash, peerId) => {
      if (infoHash !== key || peerId === this.peerId.toString('hex')) return peer.close('wrong blob or ourselves');
      this.admit(blob, peer);
    });
  }

  private admit(blob: BlobSwarm, peer: Peer): boolean {
    const existing = blob.peers.get(peer.id);
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
    peer.on('ready', () => {
      this.peersSeen.add(peer.id);
      // Peer exchange: tell it where our other peers of this blob listen.
      peer.pex([...blob.peers.values()].filter((p) => p !== peer && p.ready && p.listenPort).map((p) => `${p.host}:${p.listenPort}`));
    });
    peer.on('pex', (addrs) => {
      // A complete blob needs no more peers: those that need it will come.
      if (blob.complete) return;
      for (const a of addrs) this.dial(blob, a.host, a.port);
    });
    peer.on('upload', () => (this.lastUpload = Date.now()));
    return true;
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
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
