// The DNS-SD records swarmpull's mDNS discovery reads and writes (RFC 6763 §7.1 subtypes): what a query asks and
// lists as known, what an answer says of a peer, and our own answer. Everything read is hostile: every field is
// checked before use, nothing throws, and no more than MAX_RECORDS records of a packet are looked at.
import type { Answer, Question } from 'dns-packet';
import { dialableFromNetwork, isLoopback } from './candidates.ts';
import { SERVICE } from './ids.ts';

export const TTL = 120; // RFC 6762 §10 value for records tied to a host; nobody here caches them anyway
/** Records looked at per received packet; a UDP datagram can hold thousands of tiny bogus ones. */
export const MAX_RECORDS = 256;

const SUBTYPE_RE = /^_([a-z2-7]{32})\._sub\._swarmpull\._tcp\.local\.?$/;

/** The label of one of our subtype names, or undefined for any other name (or non-string). */
export function labelOf(name: unknown): string | undefined {
  if (typeof name !== 'string' || name.length > 100) return undefined;
  return SUBTYPE_RE.exec(name.toLowerCase())?.[1];
}

/** A question of a query for one of our subtypes: its label, and its name as asked (a legacy answer echoes it). */
export interface SubtypeQuestion {
  label: string;
  name: string;
}

/** The PTR (or ANY) questions of a query for our subtypes, and how many questions it had in all. */
export function questionsOf(packet: unknown): { ours: SubtypeQuestion[]; total: number } {
  const questions = listOf(packet, 'questions').slice(0, MAX_RECORDS);
  const ours: SubtypeQuestion[] = [];
  for (const q of questions) {
    if (!isRecord(q) || (q.type !== 'PTR' && q.type !== 'ANY')) continue;
    // class is not checked: dns-packet 5 turns a QU-bit class into 'UNKNOWN_32769', and IN is all there is
    const label = labelOf(q.name);
    if (label) ours.push({ label, name: q.name as string });
  }
  return { ours, total: questions.length };
}

/**
 * The known answers of a query, by subtype label: the instance names of its PTR records with at least half our TTL
 * left (RFC 6762 §7.1).
 */
export function knownAnswersOf(packet: unknown): Map<string, Set<string>> {
  const known = new Map<string, Set<string>>();
  for (const r of listOf(packet, 'answers').slice(0, MAX_RECORDS)) {
    if (!isRecord(r) || r.type !== 'PTR' || typeof r.data !== 'string' || typeof r.ttl !== 'number' || r.ttl < TTL / 2) continue;
    const label = labelOf(r.name);
    if (!label) continue;
    let set = known.get(label);
    if (!set) known.set(label, (set = new Set()));
    set.add(r.data.toLowerCase());
  }
  return known;
}

/** One PTR record of an answer: an instance answering for a subtype, and where it listens if the packet said so. */
export interface Pointer {
  label: string;
  instance: string;
  host?: string;
  port?: number;
}

/**
 * The PTR records of an answer (goodbyes left out), each with the address and port its SRV and A records in the same
 * packet give. `from`: the packet's source address (a loopback address is believed only from loopback).
 */
export function pointersOf(packet: unknown, from: string): Pointer[] {
  const records = [...listOf(packet, 'answers'), ...listOf(packet, 'additionals')].slice(0, MAX_RECORDS).filter(isRecord);
  // index SRV and A by lowercased owner name (DNS names compare case-insensitively); first valid one wins
  const srvs = new Map<string, { port: number; target: string }>();
  const addrs = new Map<string, string>();
  for (const r of records) {
    if (typeof r.name !== 'string' || r.ttl === 0) continue; // TTL 0 is a goodbye (RFC 6762 §10.1)
    const name = r.name.toLowerCase();
    if (r.type === 'SRV' && isRecord(r.data) && !srvs.has(name)) {
      const { port, target } = r.data;
      if (Number.isInteger(port) && (port as number) >= 1 && (port as number) <= 65535 && typeof target === 'string') {
        srvs.set(name, { port: port as number, target: target.toLowerCase() });
      }
    } else if (r.type === 'A' && typeof r.data === 'string' && !addrs.has(name) && usableAddress(r.data, from)) {
      addrs.set(name, r.data);
    }
  }
  const pointers: Pointer[] = [];
  for (const r of records) {
    if (r.type !== 'PTR' || typeof r.data !== 'string' || r.ttl === 0) continue;
    const label = labelOf(r.name);
    if (!label) continue;
    const instance = r.data.toLowerCase();
    const srv = srvs.get(instance);
    const host = srv && addrs.get(srv.target);
    pointers.push(srv && host ? { label, instance, host, port: srv.port } : { label, instance });
  }
  return pointers;
}

/** Who we are in our answers. */
export interface Self {
  instance: string;
  target: string;
  address: string;
  port: number;
}

/** PTR per subtype → our instance; SRV and A in the additionals, so one packet tells a peer everything. */
export function serviceRecords(self: Self, labels: string[], ttl: number): { answers: Answer[]; additionals: Answer[] } {
  return {
    answers: labels.map((l) => ({ name: `_${l}._sub.${SERVICE}`, type: 'PTR', ttl, data: self.instance })),
    additionals: [
      { name: self.instance, type: 'SRV', ttl, flush: true, data: { port: self.port, target: self.target, priority: 0, weight: 0 } },
      { name: self.target, type: 'A', ttl, flush: true, data: self.address },
    ],
  };
}

/** The questions of a query for these subtype names. */
export function ptrQuestions(names: string[]): Question[] {
  return names.map((name) => ({ name, type: 'PTR', class: 'IN' }));
}

/** Bytes of a name in a packet: a length byte per label, the labels, the root's zero (dns-packet does not compress). */
export function nameBytes(name: string): number {
  return Buffer.byteLength(name.replace(/\.$/, '')) + 2;
}

/** The id of a query, echoed by a legacy unicast answer (RFC 6762 §6.7). */
export function queryId(packet: unknown): number {
  return isRecord(packet) && typeof packet.id === 'number' ? packet.id : 0;
}

/**
 * Only addresses dialable from the network (candidates.ts). A loopback address is believed only from a packet that
 * itself came over loopback, from this host (mDNS on a host without a LAN interface): a LAN host must not point us
 * at our own local services.
 */
function usableAddress(a: string, from: string): boolean {
  return dialableFromNetwork(a) || (isLoopback(a) && isLoopback(from));
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null;
}

function listOf(packet: unknown, key: string): unknown[] {
  const v = isRecord(packet) ? packet[key] : undefined;
  return Array.isArray(v) ? v : [];
}
