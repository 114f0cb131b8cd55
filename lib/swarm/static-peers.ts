// Static peers for networks without multicast (most clouds): `--peers host:port,...` and `--peers-file FILE`.
// A peers file is either a plain list (one `host` or `host:port` a line) or an Ansible INI inventory, because
// fleets that pull from Ansible already have one listing exactly the hosts that will pull.
import { readFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { usageError, quoted } from '../errors.ts';

export interface StaticPeer {
  host: string;
  port: number;
}

/** Hosts one inventory line may expand to (`web[0001:9999]`); a typo must not allocate millions. */
const MAX_EXPANSION = 10_000;

/**
 * Parse `--peers`: comma-separated `host:port`, where host is an IPv4 address, a DNS name or a bracketed IPv6
 * address (`[fd00::1]:6881`). Without `defaultPort` every entry needs a port.
 */
export function parsePeers(list: string, defaultPort?: number): StaticPeer[] {
  const peers: StaticPeer[] = [];
  for (const raw of list.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue; // tolerate "a:1,,b:2" and a trailing comma from shell loops
    const peer = parseHostPort(entry, defaultPort);
    if (typeof peer === 'string') throw usageError(`--peers: ${quoted(entry)}: ${peer}`);
    peers.push(peer);
  }
  return dedupe(peers);
}

/**
 * Read `--peers-file`. Blank lines and `#`/`;` comments are ignored. Two flavours, told apart per file:
 *
 * - plain list: one `host` or `host:port` a line (hosts without a port get `defaultPort`);
 * - Ansible INI inventory (the file has a `[group]` header or a `key=value` host variable): each host line
 *   gives `ansible_host` if set, else the host name, with port `swarmpull_port=N` if set, else `defaultPort`.
 *   `[x:vars]` and `[x:children]` sections are skipped (they hold variables and group names, not hosts),
 *   and `web[01:20]`-style ranges are expanded. In an inventory `host:port` is Ansible's ssh port, so that
 *   port is ignored rather than dialled.
 */
export async function readPeersFile(path: string, defaultPort?: number): Promise<StaticPeer[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw usageError(`--peers-file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parsePeersText(text, path, defaultPort);
}

/** The parser behind readPeersFile, on text; `source` names the file in error messages. */
export function parsePeersText(text: string, source: string, defaultPort?: number): StaticPeer[] {
  const lines = text.split(/\r?\n/).map((l, i) => ({ no: i + 1, text: stripComment(l).trim() }));
  const inventory = lines.some(({ text: t }) => sectionOf(t) !== undefined || /^\S+\s+\S+=/.test(t));
  const peers: StaticPeer[] = [];
  let section = ''; // the current `[header]`, lowercased; '' before the first one
  const fail = (no: number, why: string) => usageError(`${source}:${no}: ${why}`);

  for (const { no, text: line } of lines) {
    if (line === '') continue;
    const header = sectionOf(line);
    if (header !== undefined) {
      section = header;
      continue;
    }
    if (line.startsWith('[') && !/^\[[0-9a-f:.%]+\](:|$)/i.test(line)) throw fail(no, `malformed section header ${quoted(line)}`);
    if (section.endsWith(':vars') || section.endsWith(':children')) continue;

    if (!inventory) {
      const peer = parseHostPort(line, defaultPort);
      if (typeof peer === 'string') throw fail(no, `${quoted(line)}: ${peer}${yamlHint(line)}`);
      peers.push(peer);
      continue;
    }

    const [pattern, ...rest] = line.split(/\s+/);
    const vars = new Map<string, string>();
    for (const tok of rest) {
      const eq = tok.indexOf('=');
      if (eq <= 0) throw fail(no, `expected key=value after the host name, got ${quoted(tok)}`);
      vars.set(tok.slice(0, eq), unquote(tok.slice(eq + 1)));
    }
    let port = defaultPort;
    const portVar = vars.get('swarmpull_port');
    if (portVar !== undefined) {
      port = parsePort(portVar);
      if (port === undefined) throw fail(no, `bad swarmpull_port ${quoted(portVar)}`);
    }
    if (port === undefined) throw fail(no, `no port for ${quoted(pattern)} (set swarmpull_port= or a default port)`);

    const explicit = vars.get('ansible_host');
    // `name:22` in an inventory is the ssh port: drop it, keep the name (a bracketed IPv6 keeps its brackets off).
    const hosts = explicit !== undefined ? [explicit] : expandRange(stripInventoryPort(pattern!), (why) => fail(no, why));
    for (const host of hosts) {
      const bad = checkHost(host);
      if (bad) throw fail(no, `${quoted(host)}: ${bad}${yamlHint(line)}`);
      peers.push({ host, port });
    }
  }
  return dedupe(peers);
}

/** The lowercased name of an INI `[section]` header line; a bracketed IPv6 address is a host, not a header. */
function sectionOf(line: string): string | undefined {
  const m = /^\[([^\]]*)\]$/.exec(line);
  return m && !isIPv6(m[1]!) ? m[1]!.trim().toLowerCase() : undefined;
}

/** `host`, `host:port` or `[v6]:port` → a peer, or the reason it is not one. */
function parseHostPort(entry: string, defaultPort: number | undefined): StaticPeer | string {
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(entry);
  if (v6) {
    host = v6[1]!;
    portText = v6[2];
    if (!isIPv6(host)) return 'not an IPv6 address in brackets';
  } else {
    const colons = entry.split(':').length - 1;
    if (colons > 1) return 'IPv6 addresses need brackets: [addr]:port';
    const colon = entry.indexOf(':');
    host = colon < 0 ? entry : entry.slice(0, colon);
    portText = colon < 0 ? undefined : entry.slice(colon + 1);
    const bad = checkHost(host);
    if (bad) return bad;
  }
  if (portText === undefined) {
    if (defaultPort === undefined) return 'expected host:port';
    return { host, port: defaultPort };
  }
  const port = parsePort(portText);
  if (port === undefined) return `bad port ${quoted(portText)} (expected 1-65535)`;
  return { host, port };
}

function parsePort(s: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(s)) return undefined;
  const n = Number(s);
  return n >= 1 && n <= 65535 ? n : undefined;
}

/** Why `host` is not an IPv4 address, IPv6 address or DNS name; '' when it is fine. */
function checkHost(host: string): string {
  if (host === '') return 'empty host';
  if (isIPv4(host) || isIPv6(host)) return '';
  // Something that looks like a dotted quad but is not one (999.1.1.1) is a typo, not a DNS name.
  if (/^[0-9.]+$/.test(host)) return 'not a valid IPv4 address';
  if (host.length > 253) return 'host name too long';
  const label = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/i; // `_` is tolerated: it appears in real inventories
  if (!host.replace(/\.$/, '').split('.').every((l) => label.test(l))) return 'not a valid host name';
  return '';
}

/** Strip a `#` or `;` comment: at the start of a line, or after whitespace (so `a#b` stays a value). */
function stripComment(line: string): string {
  const m = /(^|\s)[#;]/.exec(line);
  return m ? line.slice(0, m.index) : line;
}

function unquote(s: string): string {
  return /^(["']).*\1$/.test(s) && s.length >= 2 ? s.slice(1, -1) : s;
}

function stripInventoryPort(pattern: string): string {
  if (isIPv6(pattern)) return pattern; // a bare v6 address: its last group is not a port
  const v6 = /^\[([^\]]+)\](?::[0-9]+)?$/.exec(pattern);
  if (v6 && isIPv6(v6[1]!)) return v6[1]!;
  // keep `web[01:10]` ranges intact: only a `:port` after the last `]` counts
  return pattern.replace(/:[0-9]+$/, '');
}

/** Expand Ansible host ranges: `web[01:03].x` → web01.x web02.x web03.x; `[a:c]`; optional `:stride`. */
function expandRange(pattern: string, fail: (why: string) => Error): string[] {
  const m = /^(.*?)\[([0-9a-z]+):([0-9a-z]+)(?::([0-9]+))?\](.*)$/i.exec(pattern);
  if (!m) return [pattern];
  const [, head, from, to, strideText, tail] = m as unknown as [string, string, string, string, string | undefined, string];
  const stride = strideText === undefined ? 1 : Number(strideText);
  if (stride < 1) throw fail(`bad range stride in ${quoted(pattern)}`);
  const items: string[] = [];
  if (/^[0-9]+$/.test(from) && /^[0-9]+$/.test(to)) {
    const a = Number(from);
    const b = Number(to);
    // past 2^53 a step of the loop below may not move i at all
    if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b)) throw fail(`range too large in ${quoted(pattern)}`);
    if (b < a) throw fail(`empty range in ${quoted(pattern)}`);
    if ((b - a) / stride >= MAX_EXPANSION) throw fail(`range too large in ${quoted(pattern)}`);
    // a leading zero in the start fixes the width (Ansible: [01:10] → 01..10)
    const width = from.startsWith('0') ? from.length : 0;
    for (let i = a; i <= b; i += stride) items.push(String(i).padStart(width, '0'));
  } else if (/^[a-z]$/i.test(from) && /^[a-z]$/i.test(to)) {
    const a = from.charCodeAt(0);
    const b = to.charCodeAt(0);
    if (b < a) throw fail(`empty range in ${quoted(pattern)}`);
    for (let c = a; c <= b; c += stride) items.push(String.fromCharCode(c));
  } else {
    throw fail(`bad range in ${quoted(pattern)}`);
  }
  // the tail may hold further ranges (`r[1:2]-n[1:2]`); the cap applies to the product
  const rest = expandRange(tail, fail);
  if (items.length * rest.length > MAX_EXPANSION) throw fail(`range too large in ${quoted(pattern)}`);
  const out: string[] = [];
  for (const item of items) for (const r of rest) out.push(head + item + r);
  return out;
}

function yamlHint(line: string): string {
  return /:\s*$/.test(line) || line === '---' ? ' (YAML inventories are not supported: use the INI format)' : '';
}

function dedupe(peers: StaticPeer[]): StaticPeer[] {
  const seen = new Set<string>();
  return peers.filter((p) => {
    const key = `${p.host.toLowerCase()}|${p.port}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
