// Addresses learned from the network (peer exchange, mDNS) are candidates, not orders: a host on the LAN must not
// make us dial our own loopback services, broadcast or multicast addresses, nor dial as often as it likes. The
// operator's own peers (--peers, --peers-file) are dialled as given, loopback included.
import { isIPv4 } from 'node:net';

/** dials one source (the address of a peer or of an mDNS sender) may cause at once, then DIALS_PER_SECOND */
const DIAL_BURST = 32;
const DIALS_PER_SECOND = 2;
/**
 * A learned address is dialled again for the same swarm at most this often: a peer that repeats an address that
 * refuses us (one peer exchange made a host dial a loopback service 39 times in a second) gets one dial per period.
 */
export const REDIAL_MS = 10_000;
/** sources and addresses remembered; the oldest go first (memory stays bounded whatever the LAN says) */
const MAX_REMEMBERED = 4096;

function octets(a: string): number[] {
  return a.split('.').map(Number);
}

export function isLoopback(a: string): boolean {
  return isIPv4(a) && octets(a)[0] === 127;
}

/**
 * A plain unicast IPv4 address: not unspecified (0/8), loopback (127/8), multicast (224/4), reserved (240/4) or the
 * broadcast address. (A subnet's directed broadcast cannot be told apart without its mask: the connect fails.)
 */
export function dialableFromNetwork(a: string): boolean {
  if (!isIPv4(a)) return false;
  const first = octets(a)[0]!;
  return first !== 0 && first !== 127 && first < 224;
}

/** Whether `a` is in the subnet of `iface` (an address and its netmask, as os.networkInterfaces gives them). */
export function onLink(a: string, iface: { address: string; netmask: string }): boolean {
  if (!isIPv4(a) || !isIPv4(iface.address) || !isIPv4(iface.netmask)) return false;
  const x = octets(a);
  const y = octets(iface.address);
  const m = octets(iface.netmask);
  return x.every((v, i) => (v & m[i]!) === (y[i]! & m[i]!));
}

/** How many dials what the network tells us may cause: per source (a token bucket) and per address and swarm. */
export class DialBudget {
  private readonly sources = new Map<string, { tokens: number; at: number }>();
  private readonly lastDial = new Map<string, number>();

  /**
   * Whether a dial of `address` ("host:port") for `swarm`, learned from `source`, may go ahead now; counts it if so.
   * Ask only once every other reason not to dial (already connected, enough peers) is ruled out.
   */
  allow(source: string, swarm: string, address: string, now = Date.now()): boolean {
    const key = `${swarm}|${address}`;
    const last = this.lastDial.get(key);
    if (last !== undefined && now - last < REDIAL_MS) return false;
    let bucket = this.sources.get(source);
    if (bucket) {
      bucket.tokens = Math.min(DIAL_BURST, bucket.tokens + ((now - bucket.at) / 1000) * DIALS_PER_SECOND);
      bucket.at = now;
      this.sources.delete(source); // re-inserted below: the map keeps the most recent sources last
    } else bucket = { tokens: DIAL_BURST, at: now };
    this.sources.set(source, bucket);
    if (this.sources.size > MAX_REMEMBERED) this.sources.delete(this.sources.keys().next().value!);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    this.lastDial.delete(key);
    this.lastDial.set(key, now);
    if (this.lastDial.size > MAX_REMEMBERED) this.lastDial.delete(this.lastDial.keys().next().value!);
    return true;
  }
}
