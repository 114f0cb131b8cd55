// A test LAN of real network namespaces: one bridge in the root namespace, one namespace per host joined to
// it by a veth pair, optionally shaped with tbf. Every name carries a random tag (sp + 4 hex), so parallel or
// leftover runs never clash, and destroy() (also run at process exit) removes everything it made.
//
//   root ns:  <tag>br (bridge, 10.a.b.1/24) ── <tag>v0 ─┬─ veth ─ [ns <tag>-h0] eth0 10.a.b.10/24
//                                              <tag>v1 ─┴─ veth ─ [ns <tag>-h1] eth0 10.a.b.11/24 ...
//                                              <tag>vr ─── veth ─ [ns <tag>-reg] eth0 10.a.b.2/24 (optional)
//
// Namespaces get no default route: they reach each other and the bridge address, and nothing else.
import { spawn, execFileSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface LanHost {
  /** h0, h1, ... or reg */
  name: string;
  /** network namespace name */
  ns: string;
  /** IPv4 address of the namespace's eth0 */
  address: string;
  /** root-side veth: its counters are the host's traffic */
  veth: string;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number | null;
}

export interface Lan {
  tag: string;
  /** e.g. 10.123.45.0/24 */
  subnet: string;
  bridge: string;
  /** the bridge's address: processes in the root namespace listen here to be reachable from the hosts */
  bridgeAddress: string;
  hosts: LanHost[];
  /** with `withRegistryHost`: a namespace of its own for a registry, shaped like the others */
  registryHost?: LanHost;
  exec(host: LanHost | number, cmd: string, args?: string[], opts?: { timeoutMs?: number }): Promise<ExecResult>;
  spawn(host: LanHost | number, cmd: string, args?: string[], opts?: SpawnOptions): ChildProcess;
  /** bytes the host sent / received so far (root-side veth counters, seen from the other end) */
  txBytes(host: LanHost | number): number;
  rxBytes(host: LanHost | number): number;
  destroy(): Promise<void>;
}

export interface LanOptions {
  hosts: number;
  /** tbf on both directions of every host link, in Mbit/s */
  rateMbit?: number;
  /** per host (by index): a rate of its own instead of rateMbit, e.g. one slow link among fast ones */
  hostRatesMbit?: (number | undefined)[];
  withRegistryHost?: boolean;
}

let usable: boolean | undefined;

/** Root, `ip` present, and a namespace can really be made here (containers may forbid it). */
export function canUseNetns(): boolean {
  if (usable !== undefined) return usable;
  usable = false;
  if (process.getuid?.() !== 0) return usable;
  const probe = `sp${randomBytes(2).toString('hex')}-probe`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'ignore' });
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'ignore' });
    usable = true;
  } catch {
    try {
      execFileSync('ip', ['netns', 'del', probe], { stdio: 'ignore' });
    } catch {}
  }
  return usable;
}

/** LANs not yet destroyed, torn down synchronously if the test process exits without after hooks running. */
const live = new Set<{ sync(): void }>();
let exitHookInstalled = false;

export async function createLan(opts: LanOptions): Promise<Lan> {
  if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > 200) throw new RangeError(`hosts: 1-200, got ${opts.hosts}`);
  const tag = `sp${randomBytes(2).toString('hex')}`;
  const net = pickSubnet();
  const bridge = `${tag}br`;
  const bridgeAddress = `${net}.1`;
  const hosts: LanHost[] = Array.from({ length: opts.hosts }, (_, i) => ({
    name: `h${i}`,
    ns: `${tag}-h${i}`,
    address: `${net}.${10 + i}`,
    veth: `${tag}v${i}`,
  }));
  const registryHost: LanHost | undefined = opts.withRegistryHost
    ? { name: 'reg', ns: `${tag}-reg`, address: `${net}.2`, veth: `${tag}vr` }
    : undefined;
  const all = registryHost ? [...hosts, registryHost] : hosts;

  // What exists so far, so that a failure halfway (or destroy) removes exactly that.
  const made = { bridge: false, ns: [] as string[], veths: [] as string[] };
  const children = new Set<ChildProcess>();

  const hostOf = (h: LanHost | number): LanHost => {
    const host = typeof h === 'number' ? hosts[h] : h;
    if (!host || !all.includes(host)) throw new RangeError(`not a host of this LAN: ${typeof h === 'number' ? h : h.name}`);
    return host;
  };
  const counter = (h: LanHost | number, which: 'rx_bytes' | 'tx_bytes') =>
    Number(readFileSync(`/sys/class/net/${hostOf(h).veth}/statistics/${which}`, 'utf8'));

  // Teardown order: processes first (a namespace with a process in it outlives `ip netns del`), then the
  // root-side veths explicitly (deleting one end deletes its peer), namespaces, bridge. Errors are ignored:
  // it must get as far as it can, and run twice harmlessly.
  const teardownSync = () => {
    for (const c of children) killQuietly(c.pid);
    for (const ns of made.ns) {
      try {
        for (const pid of execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split(/\s+/)) if (pid) killQuietly(Number(pid));
      } catch {}
    }
    for (const v of made.veths) quietSync(['link', 'del', v]);
    for (const ns of made.ns) quietSync(['netns', 'del', ns]);
    if (made.bridge) quietSync(['link', 'del', bridge]);
    made.veths = [];
    made.ns = [];
    made.bridge = false;
  };
  const entry = { sync: teardownSync };
  live.add(entry);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    const teardownAll = () => {
      for (const l of live) l.sync();
    };
    process.on('exit', teardownAll);
    // A signal skips 'exit': tear down, then die of the same signal as we would have.
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.once(sig, () => {
        teardownAll();
        process.kill(process.pid, sig);
      });
    }
  }

  const destroy = async () => {
    // Give processes a moment to exit cleanly (their own after hooks may be racing us), then force.
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await Promise.race([Promise.all([...children].map(exited)), sleep(2000)]);
    teardownSync();
    live.delete(entry);
  };

  try {
    await ip(['link', 'add', bridge, 'type', 'bridge']);
    made.bridge = true;
    // Without a multicast querier on the segment, snooping may start pruning groups; flood instead, as a
    // dumb switch would.
    await ip(['link', 'set', bridge, 'type', 'bridge', 'mcast_snooping', '0']);
    await ip(['addr', 'add', `${bridgeAddress}/24`, 'dev', bridge]);
    await ip(['link', 'set', bridge, 'up']);
    for (const h of all) {
      await ip(['netns', 'add', h.ns]);
      made.ns.push(h.ns);
      const peer = `${h.veth}p`;
      await ip(['link', 'add', h.veth, 'type', 'veth', 'peer', 'name', peer]);
      made.veths.push(h.veth);
      await ip(['link', 'set', peer, 'netns', h.ns]);
      await ip(['-n', h.ns, 'link', 'set', peer, 'name', 'eth0']);
      await ip(['-n', h.ns, 'addr', 'add', `${h.address}/24`, 'dev', 'eth0']);
      await ip(['-n', h.ns, 'link', 'set', 'eth0', 'up']);
      await ip(['-n', h.ns, 'link', 'set', 'lo', 'up']);
      // mDNS sends to 224.0.0.251; without a route for it, sends fail with ENETUNREACH (no default route here).
      await ip(['-n', h.ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0']);
      await ip(['link', 'set', h.veth, 'master', bridge]);
      await ip(['link', 'set', h.veth, 'up']);
      const rate = (h === registryHost ? undefined : opts.hostRatesMbit?.[hosts.indexOf(h)]) ?? opts.rateMbit;
      if (rate !== undefined) {
        // upload: egress of the host's eth0; download: egress of the root-side veth towards it
        await run('ip', ['netns', 'exec', h.ns, 'tc', 'qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', ...tbf(rate)]);
        await run('tc', ['qdisc', 'add', 'dev', h.veth, 'root', 'tbf', ...tbf(rate)]);
      }
    }
  } catch (err) {
    await destroy();
    throw err;
  }

  const spawnIn = (h: LanHost | number, cmd: string, args: string[] = [], o: SpawnOptions = {}): ChildProcess => {
    // `ip netns exec` execs the command in place (no fork), so the child's pid is the command's.
    const child = spawn('ip', ['netns', 'exec', hostOf(h).ns, cmd, ...args], o);
    children.add(child);
    child.on('exit', () => children.delete(child));
    return child;
  };

  const exec = (h: LanHost | number, cmd: string, args: string[] = [], o: { timeoutMs?: number } = {}) => {
    const child = spawnIn(h, cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = o.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), o.timeoutMs) : undefined;
    return new Promise<ExecResult>((res, rej) => {
      child.on('error', rej);
      child.on('close', (code) => {
        clearTimeout(timer);
        res({ stdout, stderr, code });
      });
    });
  };

  return {
    tag,
    subnet: `${net}.0/24`,
    bridge,
    bridgeAddress,
    hosts,
    ...(registryHost ? { registryHost } : {}),
    exec,
    spawn: spawnIn,
    txBytes: (h) => counter(h, 'rx_bytes'),
    rxBytes: (h) => counter(h, 'tx_bytes'),
    destroy,
  };
}

/**
 * tbf parameters for a rate: burst of 10 ms at the rate (at least 32 kbit: tbf needs burst ≥ rate/HZ, and a
 * burst below a 64 KiB GSO segment makes tbf split segments, which is fine), and 100 ms of queue, enough for
 * TCP to fill the link without the seconds of delay a 400 ms queue adds under load.
 */
function tbf(rateMbit: number): string[] {
  const burstKbit = Math.max(32, Math.ceil(rateMbit * 10)); // rate · 10 ms, in kbit
  return ['rate', `${rateMbit}mbit`, 'burst', `${burstKbit}kbit`, 'latency', '100ms'];
}

/** A /24 in 10.100-250.x.0 that no interface or route here already uses. */
function pickSubnet(): string {
  const taken = execFileSync('ip', ['-4', '-o', 'addr'], { encoding: 'utf8' }) + execFileSync('ip', ['-4', 'route'], { encoding: 'utf8' });
  for (let tries = 0; tries < 100; tries++) {
    const net = `10.${randomInt(100, 251)}.${randomInt(0, 256)}`;
    if (!taken.includes(`${net}.`)) return net;
  }
  throw new Error('no free 10.x.y.0/24 for a test LAN');
}

function ip(args: string[]): Promise<void> {
  return run('ip', args);
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', rej);
    child.on('close', (code) => (code === 0 ? res() : rej(new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${err.trim()}`))));
  });
}

function quietSync(args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: 'ignore' });
  } catch {}
}

function killQuietly(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {}
}

function exited(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((res) => c.once('exit', () => res()));
}

function sleep(ms: number): Promise<void> {
  return new Promise((res) => setTimeout(res, ms).unref());
}
