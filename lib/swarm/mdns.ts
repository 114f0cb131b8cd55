// LAN peer discovery over mDNS with DNS-SD subtypes (RFC 6762, RFC 6763 §7.1).
//
// Each swarm (blob) is a subtype `_<base32 id>._sub._swarmpull._tcp.local`. A process answers for the subtypes of
// the blobs it holds or fetches, and asks for those it wants, repeating with back-off so that hosts starting at
// the same moment find each other. A peer is reported once per lookup.
//
// Traffic stays flat as the LAN grows (RFC 6762 §5.2, §6, §7): a query lists the instances its asker already heard
// (known answers), and those stay silent; a host that hears another ask what it was about to ask, with no known
// answers it lacks, counts that query as its own; a responder waits 20-120 ms and stays silent if enough others
// answered meanwhile; and a lookup stops asking while the caller has enough peers for the blob (peer exchange
// brings the rest), until they fall below a floor.
//
// Everything read from the socket is hostile: the handlers below check every field they use, never throw,
// and keep memory bounded (peers per lookup, lookups, records read per packet).
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import type { RemoteInfo } from 'node:dgram';
import makeMdns from 'multicast-dns';
import type { MulticastDNS } from 'multicast-dns';
import type { Answer } from 'dns-packet';
import { isLoopback, onLink } from './candidates.ts';
import { SERVICE, subtypeLabel, subtypeName } from './ids.ts';
import { knownAnswersOf, nameBytes, pointersOf, ptrQuestions, queryId, questionsOf, serviceRecords, TTL, type Self, type SubtypeQuestion } from './mdns-records.ts';

export interface Peer {
  host: string;
  port: number;
}

export interface MdnsOptions {
  /** Our wire (BitTorrent) TCP port, advertised in SRV records. */
  port: number;
  /** IPv4 address of the interface to use; default: the first non-internal IPv4 address. */
  interfaceAddress?: string;
  log?: (m: string) => void;
  /** UDP port of mDNS; 5353 unless a test wants its own. */
  mdnsPort?: number;
  /** Distinct peers remembered (and reported) per lookup. */
  maxPeersPerId?: number;
  /** Swarms that may be looked up at once. */
  maxLookups?: number;
}

interface Lookup {
  id: Buffer;
  label: string;
  name: string;
  /** current back-off step (ms) and when the next query is due (epoch ms) */
  interval: number;
  nextAt: number;
  /** `host:port` of peers already reported */
  peers: Set<string>;
  /** instance names heard answering for this subtype → when last heard (epoch ms): the known answers we send */
  known: Map<string, number>;
  /** the caller has ENOUGH_PEERS ready for this blob (connected()): no queries until they fall below FLOOR_PEERS */
  paused: boolean;
}

/** A subtype someone asked for, to be answered when its random delay is over. */
interface PendingAnswer {
  /** unasked (announce): multicast at once, whoever answered */
  announce: boolean;
  /**
   * addresses heard answering this subtype since it was asked for: at ANSWER_QUORUM we stay silent. Addresses, not
   * instance names: one host must not silence the others by answering under many names.
   */
  heard: Set<string>;
  /** `address:port` of askers to answer by unicast if the subtype is still held off when the delay is over */
  askers: Set<string>;
}

const MDNS_PORT = 5353;
const FIRST_INTERVAL = 250;
const MAX_INTERVAL = 5000;
/** Per packet: keep under a 1500-byte Ethernet MTU (a question is ~66 bytes, a PTR answer ~120). */
const QUESTIONS_PER_PACKET = 16;
const ANSWERS_PER_PACKET = 8;
/** RFC 6762 §6: do not multicast the same record again within a second, whoever asks. */
const MULTICAST_HOLDOFF = 1000;
/** Peers taken from one packet: an honest responder describes itself (one instance); 256 records made ~127 dials. */
const PEERS_PER_PACKET = 8;
/**
 * Ready peers of a blob at which its lookup stops asking, and below which it asks again. A pull uses up to 32 per
 * blob (swarm.ts), and peer exchange tells each new peer the addresses of the others: 8 peers bring the rest within
 * a round trip, while every query costs every host on the LAN a packet (and up to 8 answers, below).
 */
const ENOUGH_PEERS = 8;
const FLOOR_PEERS = 4;
/**
 * Instances heard for a lookup within KNOWN_ANSWER_MS at which it does not ask (its back-off goes on, so it asks again
 * once they age): more candidates than it can dial at once bring nothing. At 64 hosts on congested 10 Mbit/s links,
 * lookups whose dials were slow kept asking every 5 s for minutes (bench:mdns).
 */
const ENOUGH_KNOWN = 16;
/**
 * A responder that hears this many other hosts answer a subtype during its random delay does not answer: the
 * asker heard them too. With 64 hosts, answering every query was ~63 answers per query for every host to read;
 * below 9 hosts it never applies.
 */
const ANSWER_QUORUM = 8;
/** RFC 6762 §6: shared records are answered after 20-120 ms; §5.2: a first query waits as long (hosts start together). */
const MIN_DELAY = 20;
const MAX_DELAY = 120;
/** RFC 6762 §7.1: a known answer is listed (and believed by a responder) only with at least half its TTL left. */
const KNOWN_ANSWER_MS = (TTL * 1000) / 2;
/** Bytes of a query packet (questions and known answers) under a 1500-byte MTU; known answers that do not fit are left out. */
const QUERY_BYTES = 1400;
/** Askers of one subtype answered by unicast in one flush (the rest heard the multicast a moment before). */
const ASKERS_PER_ANSWER = 16;
/** A query from our own address and port naming only questions we sent this recently is our own, looped back. */
const OWN_QUERY_MS = 2000;

/** Who told us of a peer: the source address of the mDNS packet (for the dial budget, candidates.ts). */
export interface Teller {
  source: string;
  via: 'mdns';
}

export class MdnsDiscovery extends EventEmitter<{ peer: [id: Buffer, peer: Peer, from: Teller] }> {
  readonly address: string;
  /** our DNS-SD instance name and SRV target; the random part tells two processes on one host apart */
  readonly instance: string;
  readonly target: string;
  private readonly port: number;
  /** who we are in our answers */
  private readonly self: Self;
  private readonly mdnsPort: number;
  private readonly maxPeersPerId: number;
  private readonly maxLookups: number;
  private readonly log: (m: string) => void;
  private mdns: MulticastDNS | undefined;
  private starting: Promise<void> | undefined;
  private readonly announced = new Set<string>(); // subtype labels we answer for
  private readonly lookups = new Map<string, Lookup>(); // by subtype label
  private readonly lastMulticast = new Map<string, number>(); // label → when we last multicast its answer
  private readonly pendingAnswers = new Map<string, PendingAnswer>(); // by subtype label
  private readonly lastAsked = new Map<string, number>(); // label → when we last sent a question for it
  private answerTimer: NodeJS.Timeout | undefined;
  private queryTimer: NodeJS.Timeout | undefined;
  private readonly logged = new Set<string>(); // log each kind of trouble once, not once per packet
  /** the subnet of our interface (its netmask from os.networkInterfaces): packets from elsewhere are ignored */
  private readonly netmask: string;

  constructor(opts: MdnsOptions) {
    super();
    if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) throw new RangeError(`bad wire port ${opts.port}`);
    this.port = opts.port;
    this.mdnsPort = opts.mdnsPort ?? MDNS_PORT;
    this.maxPeersPerId = opts.maxPeersPerId ?? 256;
    this.maxLookups = opts.maxLookups ?? 1024;
    this.log = opts.log ?? (() => {});
    this.address = opts.interfaceAddress ?? defaultAddress();
    if (!isIPv4(this.address)) throw new RangeError(`interface address must be IPv4, got ${this.address}`);
    // An address that is not this host's has no subnet: then only packets from itself (none) are on-link.
    this.netmask = netmaskOf(this.address) ?? '255.255.255.255';
    // Namespaces and containers share the hostname, so the port and a random part make the name unique.
    const host = hostname().toLowerCase().replace(/[^a-z0-9-]+/g, '-').slice(0, 40) || 'host';
    const label = `${host}-${this.port}-${randomBytes(4).toString('hex')}`;
    this.instance = `${label}.${SERVICE}`;
    this.target = `${label}.local`;
    this.self = { instance: this.instance, target: this.target, address: this.address, port: this.port };
  }

  /** Bind the mDNS socket, then announce and look up whatever was asked for before. Idempotent. */
  start(): Promise<void> {
    this.starting ??= this.open();
    return this.starting;
  }

  private async open(): Promise<void> {
    // bind 0.0.0.0: a socket bound to the unicast address never sees multicast datagrams. `interface` picks
    // the interface for the group membership and for outgoing multicast.
    const mdns = makeMdns({ interface: this.address, bind: '0.0.0.0', port: this.mdnsPort });
    // Warnings are decode failures (any garbage on 5353) and group-membership failures, which matter and
    // happen before 'ready' (e.g. an interface address that is not on this host).
    mdns.on('warning', (err: Error) => {
      const c = code(err);
      if (err.message.startsWith('addMembership')) {
        this.logOnce(`membership:${c}`, `mdns: cannot join the mDNS group on ${this.address} (${err.message}): is it an address of this host?`);
      } else {
        this.logOnce(`warning:${c}`, c ? `mdns: ${err.message}` : `mdns: ignoring malformed packets (${err.message})`);
      }
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        mdns.destroy();
        reject(err);
      };
      mdns.once('error', onError);
      mdns.once('ready', () => {
        mdns.removeListener('error', onError);
        resolve();
      });
    });
    mdns.on('error', (err: Error) => this.logOnce(`error:${code(err)}`, `mdns: ${err.message}`));
    mdns.on('query', (packet, rinfo) => this.guard(() => this.onQuery(packet, rinfo)));
    mdns.on('response', (packet, rinfo) => this.guard(() => this.onResponse(packet, rinfo)));
    this.mdns = mdns;
    for (const label of this.announced) this.pend(label, true);
    if (this.pendingAnswers.size > 0) this.scheduleAnswers(0);
    this.scheduleQueries();
  }

  async stop(): Promise<void> {
    await this.starting?.catch(() => {}); // a start() under way would otherwise leave a socket behind
    this.starting = undefined;
    clearTimeout(this.answerTimer);
    clearTimeout(this.queryTimer);
    this.answerTimer = this.queryTimer = undefined;
    const mdns = this.mdns;
    this.mdns = undefined;
    if (mdns) await new Promise<void>((resolve) => mdns.destroy(() => resolve()));
  }

  /** Answer for this swarm from now on, and tell those already looking at once. */
  announce(id: Buffer): void {
    const label = subtypeLabel(id);
    if (this.announced.has(label)) return;
    this.announced.add(label);
    if (!this.mdns) return; // start() announces everything announced before it
    this.pend(label, true);
    this.scheduleAnswers(0); // 0, not now: announcements made in the same tick share one packet
  }

  /**
   * Stop answering for this swarm. No goodbye (TTL 0) is sent: swarmpull peers cache nothing, and the wire
   * listener refuses the swarm from now on anyway.
   */
  withdraw(id: Buffer): void {
    const label = subtypeLabel(id);
    this.announced.delete(label);
    this.pendingAnswers.delete(label);
    this.lastMulticast.delete(label);
  }

  /**
   * Query for this swarm in 20-120 ms and again with back-off until stopLookup (or while the caller has enough
   * peers, see connected()); each new peer is emitted once.
   */
  lookup(id: Buffer): void {
    const label = subtypeLabel(id);
    if (this.lookups.has(label)) return;
    if (this.lookups.size >= this.maxLookups) throw new RangeError(`more than ${this.maxLookups} mDNS lookups at once`);
    const nextAt = Date.now() + randomDelay();
    this.lookups.set(label, { id: Buffer.from(id), label, name: subtypeName(id), interval: FIRST_INTERVAL, nextAt, peers: new Set(), known: new Map(), paused: false });
    this.scheduleQueries();
  }

  stopLookup(id: Buffer): void {
    const label = subtypeLabel(id);
    this.lookups.delete(label);
    this.lastAsked.delete(label);
    this.scheduleQueries();
  }

  /**
   * How many peers the caller has ready for a swarm it looks up. At ENOUGH_PEERS the lookup stops asking (answers
   * heard still report peers); below FLOOR_PEERS it asks again, from the first back-off step.
   */
  connected(id: Buffer, peers: number): void {
    const lookup = this.lookups.get(subtypeLabel(id));
    if (!lookup) return;
    if (!lookup.paused && peers >= ENOUGH_PEERS) {
      lookup.paused = true;
    } else if (lookup.paused && peers < FLOOR_PEERS) {
      lookup.paused = false;
      lookup.interval = FIRST_INTERVAL;
      lookup.nextAt = Date.now() + randomDelay();
    } else {
      return;
    }
    this.scheduleQueries();
  }

  // ---- queries we send -------------------------------------------------------------------------------------

  private scheduleQueries(): void {
    clearTimeout(this.queryTimer);
    this.queryTimer = undefined;
    if (!this.mdns) return;
    let next = Infinity;
    for (const l of this.lookups.values()) if (!l.paused) next = Math.min(next, l.nextAt);
    if (next === Infinity) return;
    this.queryTimer = setTimeout(() => this.sendQueries(), Math.max(0, next - Date.now()));
  }

  private sendQueries(): void {
    const now = Date.now();
    // Take lookups due in the next 50 ms too, so that staggered lookups share packets instead of each
    // waking the timer for its own.
    const due = [...this.lookups.values()].filter((l) => !l.paused && l.nextAt <= now + 50);
    const asking = due.filter((l) => freshCount(l.known, now) < ENOUGH_KNOWN);
    for (let i = 0; i < asking.length; i += QUESTIONS_PER_PACKET) {
      const part = asking.slice(i, i + QUESTIONS_PER_PACKET);
      this.mdns?.query({ questions: ptrQuestions(part.map((l) => l.name)), answers: this.knownAnswers(part, now) }, (err) => this.sendFailed(err));
    }
    for (const l of asking) this.lastAsked.set(l.label, now);
    for (const l of due) this.asked(l, now);
    this.scheduleQueries();
  }

  /** The query went out (ours, or another host's that asked the same): next one a back-off step later. */
  private asked(l: Lookup, now: number): void {
    l.nextAt = now + jitter(l.interval);
    l.interval = Math.min(l.interval * 2, MAX_INTERVAL);
  }

  /**
   * Known answers (RFC 6762 §7.1) for these lookups' questions: the instances heard answering with at least half
   * their TTL left, taken in turn from each lookup at random (so that over several queries every responder left out
   * is listed), while the packet stays within QUERY_BYTES. Responders left out answer again, which costs traffic only.
   */
  private knownAnswers(lookups: Lookup[], now: number): Answer[] {
    let bytes = 12 + lookups.reduce((a, l) => a + nameBytes(l.name) + 4, 0);
    const queues = lookups.map((l) => {
      const fresh: string[] = [];
      for (const [instance, at] of l.known) {
        if (now - at < KNOWN_ANSWER_MS) fresh.push(instance);
        else l.known.delete(instance); // expired: forget it (bounds the map too)
      }
      const instances = shuffle(fresh);
      // Ourselves first, for a subtype we answer for, while we know few others (a small LAN): we never answer our own
      // query, so a host that let it stand for its own (heardQuestion) would never hear of us; listed, we are a known
      // answer it lacks, and it asks. (Always listed, 64 hosts received 45 packets a second each instead of 33.)
      if (this.announced.has(l.label) && fresh.length < FLOOR_PEERS) instances.push(this.instance);
      return { name: l.name, known: l.known, instances };
    });
    const answers: Answer[] = [];
    for (let more = true; more; ) {
      more = false;
      for (const q of queues) {
        const instance = q.instances.pop();
        if (instance === undefined) continue;
        const size = nameBytes(q.name) + 10 + nameBytes(instance);
        if (bytes + size > QUERY_BYTES) return answers;
        bytes += size;
        // the TTL a responder checks against half of its own: what is left of the 120 s we heard
        const heardAt = q.known.get(instance) ?? now; // (our own instance: a full TTL)
        answers.push({ name: q.name, type: 'PTR', ttl: TTL - Math.floor((now - heardAt) / 1000), data: instance });
        more = true;
      }
    }
    return answers;
  }

  // ---- queries we answer -----------------------------------------------------------------------------------

  private onQuery(packet: unknown, rinfo: RemoteInfo): void {
    if (!this.onLink(rinfo.address)) return; // RFC 6762 §11: a unicast query from off the link gets no answer
    const { ours, total } = questionsOf(packet);
    const now = Date.now();
    const legacy = rinfo.port !== this.mdnsPort;
    if (!legacy && rinfo.address === this.address && this.isOwnQuery(ours, total, now)) return;
    const known = legacy ? new Map<string, Set<string>>() : knownAnswersOf(packet);
    const asked: SubtypeQuestion[] = [];
    for (const q of ours) {
      const theirs = known.get(q.label);
      if (!legacy) this.heardQuestion(q.label, theirs, now);
      // RFC 6762 §7.1: no answer the asker already listed (with half its TTL left)
      if (this.announced.has(q.label) && !theirs?.has(this.instance)) asked.push(q);
    }
    if (asked.length === 0) return;
    const labels = [...new Set(asked.map((q) => q.label))];

    if (legacy) {
      // A "legacy" unicast query from an ordinary resolver socket (RFC 6762 §6.7): it only hears a unicast
      // reply that echoes its id and questions. Tools such as `dig -p 5353 @224.0.0.251` work this way.
      const reply = { id: queryId(packet), questions: ptrQuestions(asked.slice(0, QUESTIONS_PER_PACKET).map((q) => q.name)) };
      for (const part of chunks(labels, ANSWERS_PER_PACKET)) {
        this.mdns?.respond({ ...reply, ...serviceRecords(this.self, part, 10) }, { port: rinfo.port, address: rinfo.address }, (err) => this.sendFailed(err));
      }
      return;
    }
    // RFC 6762 §6: delay shared answers 20-120 ms, so that a hundred hosts answering one query spread out, those
    // that hear enough others answer stay silent, and queries arriving meanwhile are answered by the same packet.
    // Multicast is held off for a second after each answer, but an asker that just started did not hear that
    // answer: then it is told alone, by unicast (what the QU bit asks for; dns-packet 5 cannot encode it). Not
    // our own address: that is another process here, which hears the multicast.
    for (const label of labels) {
      const pending = this.pend(label, false);
      if (rinfo.address !== this.address && pending.askers.size < ASKERS_PER_ANSWER) pending.askers.add(`${rinfo.address}:${rinfo.port}`);
    }
    this.scheduleAnswers(randomDelay());
  }

  /**
   * Another host asked for a subtype we look up. If it listed no known answer we lack (ourselves aside), the answers
   * it gets are those we would get, and we hear them: count its query as ours (RFC 6762 §7.3).
   */
  private heardQuestion(label: string, theirs: Set<string> | undefined, now: number): void {
    const lookup = this.lookups.get(label);
    if (!lookup || lookup.paused) return;
    for (const instance of theirs ?? []) if (instance !== this.instance && !lookup.known.has(instance)) return;
    this.asked(lookup, now);
    this.scheduleQueries();
  }

  /** Our own query, looped back: from our address and port, asking only what we asked a moment ago. */
  private isOwnQuery(ours: SubtypeQuestion[], total: number, now: number): boolean {
    if (total === 0 || ours.length < total) return false;
    return ours.every((q) => now - (this.lastAsked.get(q.label) ?? -Infinity) <= OWN_QUERY_MS);
  }

  /** The pending answer of a subtype, made if there is none. */
  private pend(label: string, announce: boolean): PendingAnswer {
    let p = this.pendingAnswers.get(label);
    if (!p) this.pendingAnswers.set(label, (p = { announce, heard: new Set(), askers: new Set() }));
    p.announce ||= announce;
    return p;
  }

  private scheduleAnswers(delay: number): void {
    if (this.answerTimer && delay > 0) return; // a flush is already coming
    clearTimeout(this.answerTimer);
    this.answerTimer = setTimeout(() => this.flushAnswers(), delay);
  }

  private flushAnswers(): void {
    this.answerTimer = undefined;
    const now = Date.now();
    const multicast: string[] = [];
    const unicast = new Map<string, string[]>(); // asker → labels
    for (const [label, p] of this.pendingAnswers) {
      if (!this.announced.has(label)) continue;
      if (p.announce || now - (this.lastMulticast.get(label) ?? -Infinity) >= MULTICAST_HOLDOFF) {
        // enough others answered while we waited: the asker heard them (an announcement goes out anyway)
        if (p.announce || p.heard.size < ANSWER_QUORUM) multicast.push(label);
        continue;
      }
      if (p.heard.size >= ANSWER_QUORUM) continue;
      for (const asker of p.askers) {
        const labels = unicast.get(asker) ?? [];
        unicast.set(asker, labels);
        labels.push(label);
      }
    }
    this.pendingAnswers.clear();
    for (const part of chunks(multicast, ANSWERS_PER_PACKET)) {
      this.mdns?.respond(serviceRecords(this.self, part, TTL), (err) => this.sendFailed(err));
      for (const l of part) this.lastMulticast.set(l, now);
    }
    for (const [asker, labels] of unicast) {
      const sep = asker.lastIndexOf(':');
      const to = { address: asker.slice(0, sep), port: Number(asker.slice(sep + 1)) };
      for (const part of chunks(labels, ANSWERS_PER_PACKET)) this.mdns?.respond(serviceRecords(this.self, part, TTL), to, (err) => this.sendFailed(err));
    }
  }

  // ---- answers we hear -------------------------------------------------------------------------------------

  private onResponse(packet: unknown, rinfo: RemoteInfo): void {
    if (this.lookups.size === 0 && this.pendingAnswers.size === 0) return;
    if (!this.onLink(rinfo.address)) {
      this.logOnce('off-link', `mdns: ignoring answers from ${rinfo.address}, outside ${this.address}/${this.netmask}`);
      return;
    }
    let peers = 0;
    for (const p of pointersOf(packet, rinfo.address)) {
      if (peers >= PEERS_PER_PACKET) break;
      if (p.instance === this.instance) continue; // our own answer, looped back
      const pending = this.pendingAnswers.get(p.label);
      if (pending && pending.heard.size < ANSWER_QUORUM && rinfo.address !== this.address) pending.heard.add(rinfo.address);
      const lookup = this.lookups.get(p.label);
      if (!lookup || p.host === undefined) continue;
      peers++;
      this.found(lookup, p.instance, p.host, p.port!, rinfo.address);
    }
  }

  private found(lookup: Lookup, instance: string, host: string, port: number, source: string): void {
    if (host === this.address && port === this.port) return; // us under another name: a replay
    // a known answer for our next queries (bounded like the peers: an instance per peer, and the stale ones expire)
    if (lookup.known.has(instance) || lookup.known.size < this.maxPeersPerId) lookup.known.set(instance, Date.now());
    const key = `${host}:${port}`;
    if (lookup.peers.has(key)) return;
    if (lookup.peers.size >= this.maxPeersPerId) {
      this.logOnce('peers-cap', `mdns: more than ${this.maxPeersPerId} peers for one swarm; ignoring the rest`);
      return;
    }
    lookup.peers.add(key);
    this.emit('peer', lookup.id, { host, port }, { source, via: 'mdns' });
  }

  /** A packet from our interface's subnet, or from this host (over loopback, or our own address). */
  private onLink(source: string): boolean {
    return source === this.address || isLoopback(source) || onLink(source, { address: this.address, netmask: this.netmask });
  }

  // ---- trouble ---------------------------------------------------------------------------------------------

  /** Nothing may throw out of a socket handler: that would be an uncaught exception in the CLI. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.logOnce(`handler:${(err as Error).message}`, `mdns: dropped a packet: ${(err as Error).stack ?? err}`);
    }
  }

  private sendFailed(err: Error | null): void {
    if (!err) return;
    // ENETUNREACH: no multicast interface could be set (the membership failed: see the warning before) and
    // there is no route for 224.0.0.0/4. Discovery then finds nobody, which static peers make up for; not
    // worth more than one line.
    const hint = code(err) === 'ENETUNREACH' ? ' (no multicast interface or route: check the interface address, or use --peers)' : '';
    this.logOnce(`send:${code(err)}`, `mdns: send failed: ${err.message}${hint}`);
  }

  private logOnce(key: string, message: string): void {
    if (this.logged.has(key) || this.logged.size > 100) return;
    this.logged.add(key);
    this.log(message);
  }
}

/** The netmask of one of this host's IPv4 addresses, if it is one. */
function netmaskOf(address: string): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const i of list ?? []) if (i.family === 'IPv4' && i.address === address) return i.netmask;
  }
  return undefined;
}

function defaultAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const i of list ?? []) if (i.family === 'IPv4' && !i.internal) return i.address;
  }
  return '127.0.0.1';
}

function chunks<T>(xs: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

function freshCount(known: Map<string, number>, now: number): number {
  let n = 0;
  for (const at of known.values()) if (now - at < KNOWN_ANSWER_MS) n++;
  return n;
}

function randomDelay(): number {
  return MIN_DELAY + Math.random() * (MAX_DELAY - MIN_DELAY);
}

function shuffle<T>(xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

/** ±20%, so hosts started by one ssh loop do not query in lock-step forever. */
function jitter(ms: number): number {
  return ms * (0.8 + Math.random() * 0.4);
}

function code(err: Error): string {
  return (err as NodeJS.ErrnoException).code ?? '';
}
