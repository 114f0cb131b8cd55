// Discovery at scale (issue 17): how much mDNS traffic and CPU each host of an N-host fan-out pays, and how fast it
// finds peers. N hosts in network namespaces (test/support/netns.ts), a registry in a namespace of its own, every
// link shaped to a low rate so the pull lasts long enough to measure; all hosts pull one small image of several
// blobs at one instant. The packets are counted outside the processes: iptables rules in each host's namespace count
// UDP to port 5353 received from others and sent (answers apart from queries by the DNS header's QR bit), read just
// before the release and when the last host says its image is ready. Needs root. Usage:
//   npm run bench:mdns -- [--hosts-list 4,8,16,32,64] [--runs 3] [--size-mib 6] [--layers 4] [--rate-mbit 10]
//     [--json FILE] [--linger S] [--bin LABEL=PATH ...] [--logs DIR]
// The binary is SWARMPULL_BIN, default dist/swarmpull (npm run build -- --arch x64); with several --bin, each run of
// each N runs them one after the other on the same LAN (before/after comparisons on a noisy machine).
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildImage, pushImage } from '../support/fixtures.ts';
import { createLan, type Lan, type LanHost } from '../support/netns.ts';
import { startRegistry, type Registry } from '../support/registry.ts';
import { TIME_BIN } from './fanout/host-process.ts';
import { preflight, scratchDirs } from './preflight.ts';

const MiB = 1 << 20;
/** "enough peers": this many distinct peers ready (or all N-1, if fewer) */
const ENOUGH_PEERS = 8;
const log = (msg: string) => process.stderr.write(`mdns-scale: ${msg}\n`);
const usage = (msg: string): never => {
  process.stderr.write(`mdns-scale: ${msg}\nusage: node test/bench/mdns-scale.ts [--hosts-list 4,8,16,32,64] [--runs 3] [--size-mib 6] [--layers 4] [--rate-mbit 10] [--json FILE] [--linger S] [--logs DIR]\n`);
  process.exit(2);
};

let values;
try {
  values = parseArgs({
    options: {
      'hosts-list': { type: 'string', default: '4,8,16,32,64' },
      runs: { type: 'string', default: '3' },
      'size-mib': { type: 'string', default: '6' },
      layers: { type: 'string', default: '4' },
      'rate-mbit': { type: 'string', default: '10' },
      json: { type: 'string' },
      linger: { type: 'string', default: '10' },
      bin: { type: 'string', multiple: true },
      logs: { type: 'string' },
    },
  }).values;
} catch (err) {
  usage((err as Error).message);
}
const positive = (flag: string, s: string, integer = true): number => {
  const n = Number(s);
  if (!(n > 0) || (integer && !Number.isInteger(n))) usage(`--${flag} ${s}: expected a positive ${integer ? 'integer' : 'number'}`);
  return n;
};
const hostsList = values!['hosts-list'].split(',').map((s) => positive('hosts-list', s));
const runs = positive('runs', values!.runs);
const sizeMiB = positive('size-mib', values!['size-mib'], false);
const layers = positive('layers', values!.layers);
const rateMbit = positive('rate-mbit', values!['rate-mbit'], false);
const lingerS = Number(values!.linger);
/** where each host's stderr (--debug, lines prefixed with the harness's epoch ms) is kept, if anywhere */
const logsDir = values!.logs === undefined ? undefined : resolve(values!.logs);
if (!(lingerS >= 0)) usage(`--linger ${values!.linger}: expected seconds`);
const maxHosts = Math.max(...hostsList);
if (maxHosts > 200) usage('at most 200 hosts');
const bins = (values!.bin ?? [`${process.env.SWARMPULL_BIN ?? 'dist/swarmpull'}`]).map((b) => {
  const eq = b.indexOf('=');
  return eq > 0 ? { label: b.slice(0, eq), path: resolve(b.slice(eq + 1)) } : { label: 'swarmpull', path: resolve(b) };
});

preflight('mdns', [TIME_BIN, '/usr/bin/skopeo', '/usr/bin/docker-registry', ...bins.map((b) => b.path)], 'apt-get install time skopeo docker-registry; npm run build -- --arch x64');
const scratch = scratchDirs();

// ---- packet counters outside the processes -----------------------------------------------------------------

/** QR bit of the DNS header: 1 in answers (the IP header's length, then the UDP header's 8 bytes, then id and flags) */
const ANSWER = ['-m', 'u32', '--u32', '0>>22&0x3C@8>>15&1=1'];
const MDNS_GROUP = '224.0.0.251';

/**
 * In each host's namespace: UDP to 5353 received from others (all, answers, unicast) and sent (all, answers,
 * multicast). Received packets are counted after the host's shaped download link, where a full queue drops some: what
 * the code makes others receive is also computed from what they sent (offeredReceived below).
 */
async function addCounters(lan: Lan, hosts: LanHost[]): Promise<void> {
  await Promise.all(
    hosts.map(async (h) => {
      const rules = [
        ['-A', 'INPUT', '-p', 'udp', '--dport', '5353', '!', '-s', h.address],
        ['-A', 'INPUT', '-p', 'udp', '--dport', '5353', '!', '-s', h.address, ...ANSWER],
        ['-A', 'INPUT', '-p', 'udp', '--dport', '5353', '!', '-s', h.address, '!', '-d', MDNS_GROUP],
        ['-A', 'OUTPUT', '-p', 'udp', '--dport', '5353'],
        ['-A', 'OUTPUT', '-p', 'udp', '--dport', '5353', ...ANSWER],
        ['-A', 'OUTPUT', '-p', 'udp', '--dport', '5353', '-d', MDNS_GROUP],
      ];
      for (const r of rules) {
        const res = await lan.exec(h, 'iptables', ['-w', ...r]);
        if (res.code !== 0) throw new Error(`iptables ${r.join(' ')} in ${h.ns}: ${res.stderr}`);
      }
    }),
  );
}

interface Counts {
  /** packets the host received from others (all, answers, by unicast) and sent (all, answers, by multicast) */
  received: number;
  receivedAnswers: number;
  receivedUnicast: number;
  sent: number;
  sentAnswers: number;
  sentMulticast: number;
}

async function readCounters(lan: Lan, hosts: LanHost[]): Promise<Counts[]> {
  return Promise.all(
    hosts.map(async (h) => {
      const res = await lan.exec(h, 'iptables', ['-w', '-nvxL'], { timeoutMs: 20_000 });
      // the six rules above, in order: INPUT's three, then OUTPUT's three
      const pkts = res.stdout.split('\n').filter((l) => l.includes('dpt:5353')).map((l) => Number(l.trim().split(/\s+/)[0]));
      if (pkts.length !== 6) throw new Error(`iptables in ${h.ns}: expected 6 counters, read ${pkts.length}: ${res.stderr}`);
      const [received, receivedAnswers, receivedUnicast, sent, sentAnswers, sentMulticast] = pkts as [number, number, number, number, number, number];
      return { received, receivedAnswers, receivedUnicast, sent, sentAnswers, sentMulticast };
    }),
  );
}

/** utime + stime of a process, seconds; undefined once it is gone */
function cpuOf(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // fields 14 and 15, clock ticks (USER_HZ = 100)
  } catch {
    return undefined;
  }
}

// ---- one host's pull ---------------------------------------------------------------------------------------

/** announce, wait for a line on stdin, become the command: start-up after the release, as a user's would be */
const SHELL_GATE = 'echo "gate: ready" >&2; read -r _; exec "$@"';

interface HostRun {
  proc: ChildProcess;
  ready: Promise<void>;
  done: Promise<{ code: number | null; stdout: string; cpuSeconds?: number }>;
  /** epoch ms of each distinct peer address's first "ready" line */
  peerReadyAt: Map<string, number>;
  /** resolves with the epoch ms at which the pull said "image ready" (the harness's clock) */
  imageReady: Promise<number>;
  /** the pid of the swarmpull process (the child of GNU time) */
  pid?: number;
  /** every stderr line, prefixed with the harness's epoch ms (--logs) */
  log: string[];
}

function startHost(lan: Lan, host: LanHost, bin: string, args: string[], timeFile: string): HostRun {
  const proc = lan.spawn(host, TIME_BIN, ['-f', 'rusage %U %S', '-o', timeFile, 'sh', '-c', SHELL_GATE, 'gate', bin, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  proc.stdin!.on('error', () => {});
  const peerReadyAt = new Map<string, number>();
  let stdout = '';
  let stderr = '';
  let partial = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  let onImageReady: (at: number) => void = () => {};
  const imageReady = new Promise<number>((res) => (onImageReady = res));
  const run: HostRun = { proc, peerReadyAt, imageReady, ready: undefined!, done: undefined!, log: [] };
  run.ready = new Promise((res, rej) => {
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
      const now = Date.now();
      partial += d;
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        if (logsDir) run.log.push(`${now} ${line}`);
        if (line.startsWith('gate: ready')) res();
        if (line.startsWith('swarmpull: image ready')) onImageReady(now);
        // blob-swarm.ts's debug line, timestamped here as it arrives
        const m = /: peer ([\d.]+):\d+ ready$/.exec(line);
        if (m && !peerReadyAt.has(m[1]!)) peerReadyAt.set(m[1]!, now);
        else if (!m && !/^swarmpull(\[debug\]|: \d+%)/.test(line)) stderr = (stderr + line + '\n').slice(-4000); // for a failure's message
      }
    });
    proc.once('close', () => rej(new Error(`${host.name}: exited before its gate:\n${stderr}`)));
  });
  run.ready.catch(() => {});
  run.done = new Promise((res) => {
    proc.once('close', async (code) => {
      const text = await readFile(timeFile, 'utf8').catch(() => '');
      const m = /^rusage ([\d.]+) ([\d.]+)$/m.exec(text);
      if (code !== 0) log(`${host.name}: exit ${code}: ${stderr.trim().slice(-800)}`);
      res({ code, stdout, ...(m ? { cpuSeconds: Number(m[1]) + Number(m[2]) } : {}) });
    });
  });
  return run;
}

interface HostResult {
  host: string;
  ok: boolean;
  /** release → image ready (the pull's --json readyAt) */
  readyMs?: number;
  firstPeerMs?: number;
  enoughPeersMs?: number;
  peersReady: number;
  /** mDNS packets per second over the pull (release → the last host ready) */
  sentPerS: number;
  sentAnswersPerS: number;
  /** delivered: counted in the host, after its shaped link (whose full queue drops some) */
  receivedPerS: number;
  receivedAnswersPerS: number;
  /** what the others' packets make it receive: every multicast they sent, and the unicast it got */
  offeredPerS: number;
  /** CPU seconds over the pull window (from /proc), and for the whole process (GNU time: start-up and linger too) */
  cpuWindowS?: number;
  cpuTotalS?: number;
}

interface RunResult {
  bin: string;
  hosts: number;
  run: number;
  makespanMs?: number;
  windowMs: number;
  perHost: HostResult[];
}

interface Sample {
  /** epoch ms, the middle of the reading (64 namespaces take a few hundred ms) */
  at: number;
  counts: Counts[];
  cpu: (number | undefined)[];
}

async function runOnce(lan: Lan, ref: string, digest: string, bin: { label: string; path: string }, n: number, run: number, work: string): Promise<RunResult> {
  const hosts = lan.hosts.slice(0, n);
  const dirs = hosts.map((_, i) => ({ store: join(work, `h${i}-store`), out: join(work, `h${i}-out`), time: join(work, `h${i}.time`) }));
  const wipe = () => Promise.all(dirs.flatMap((d) => Object.values(d).map((p) => rm(p, { recursive: true, force: true }))));
  await wipe();
  const procs = hosts.map((h, i) =>
    startHost(lan, h, bin.path, ['pull', ref, '--oci', dirs[i]!.out, '--store', dirs[i]!.store, '--json', '--plain-http', '--debug', '--linger', String(lingerS)], dirs[i]!.time),
  );
  try {
    await Promise.race([Promise.all(procs.map((p) => p.ready)), sleep(120_000).then(() => Promise.reject(new Error('hosts did not reach their gate')))]);
    for (const p of procs) {
      // `time` forks the shell, which execs swarmpull in place: time's only child is it
      const children = readFileSync(`/proc/${p.proc.pid}/task/${p.proc.pid}/children`, 'utf8').trim();
      p.pid = Number(children.split(' ')[0]) || undefined;
    }
    const sample = async (): Promise<Sample> => {
      const cpu = procs.map((p) => cpuOf(p.pid));
      const t0 = Date.now();
      const counts = await readCounters(lan, hosts);
      return { at: (t0 + Date.now()) / 2, counts, cpu };
    };
    const first = await sample();
    const releasedAt = Date.now();
    for (const p of procs) p.proc.stdin!.end('\n');
    const timer = setTimeout(() => procs.forEach((p) => kill(p.proc)), 300_000);
    // The window: release → the last host ready (or every process gone, if some failed).
    const allDone = Promise.all(procs.map((p) => p.done));
    const lastReady = await Promise.race([Promise.all(procs.map((p) => p.imageReady)), allDone.then(() => undefined)]);
    const last = await sample();
    const outcomes = await allDone;
    clearTimeout(timer);
    const readyAt = outcomes.map((o) => {
      try {
        const json = JSON.parse(o.stdout) as { digest: string; readyAt: string };
        return o.code === 0 && json.digest === digest ? Date.parse(json.readyAt) : undefined;
      } catch {
        return undefined;
      }
    });
    const ok = readyAt.filter((t): t is number => t !== undefined);
    const makespanMs = ok.length === n ? Math.max(...ok) - releasedAt : undefined;
    if (!lastReady) log(`N=${n} run ${run + 1}: not every host said "image ready"; the window ends when all exited`);
    const windowS = (last.at - releasedAt) / 1000;
    const delta = (i: number, k: keyof Counts) => last.counts[i]![k] - first.counts[i]![k];
    const multicastSent = hosts.reduce((a, _, i) => a + delta(i, 'sentMulticast'), 0);
    const perHost = hosts.map((h, i): HostResult => {
      const c0 = first.counts[i]!;
      const c1 = last.counts[i]!;
      const peers = [...procs[i]!.peerReadyAt.values()].sort((a, b) => a - b);
      const enough = Math.min(ENOUGH_PEERS, n - 1);
      const cpu0 = first.cpu[i];
      const cpu1 = last.cpu[i];
      return {
        host: h.name,
        ok: readyAt[i] !== undefined,
        ...(readyAt[i] !== undefined ? { readyMs: readyAt[i]! - releasedAt } : {}),
        ...(peers.length ? { firstPeerMs: peers[0]! - releasedAt } : {}),
        ...(peers.length >= enough ? { enoughPeersMs: peers[enough - 1]! - releasedAt } : {}),
        peersReady: peers.length,
        sentPerS: (c1.sent - c0.sent) / windowS,
        sentAnswersPerS: (c1.sentAnswers - c0.sentAnswers) / windowS,
        receivedPerS: (c1.received - c0.received) / windowS,
        receivedAnswersPerS: (c1.receivedAnswers - c0.receivedAnswers) / windowS,
        offeredPerS: (multicastSent - delta(i, 'sentMulticast') + delta(i, 'receivedUnicast')) / windowS,
        ...(cpu1 !== undefined && cpu0 !== undefined ? { cpuWindowS: cpu1 - cpu0 } : {}),
        ...(outcomes[i]!.cpuSeconds !== undefined ? { cpuTotalS: outcomes[i]!.cpuSeconds } : {}),
      };
    });
    return { bin: bin.label, hosts: n, run, ...(makespanMs !== undefined ? { makespanMs } : {}), windowMs: windowS * 1000, perHost };
  } finally {
    for (const p of procs) kill(p.proc);
    await Promise.all(procs.map((p) => p.done));
    await wipe();
    if (logsDir) {
      await mkdir(logsDir, { recursive: true });
      const prefix = join(logsDir, `${bin.label}-n${n}-run${run + 1}`);
      await Promise.all(procs.map((p, i) => writeFile(`${prefix}-h${i}.log`, p.log.join('\n') + '\n')));
    }
  }
}

function kill(proc: ChildProcess): void {
  try {
    process.kill(-proc.pid!, 'SIGKILL');
  } catch {}
}

// ---- report ------------------------------------------------------------------------------------------------

function median(xs: number[]): number | undefined {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return undefined;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1]! + s[m]!) / 2;
}

interface Row {
  bin: string;
  hosts: number;
  /** medians over runs of the per-run medians over hosts */
  sentPerS?: number;
  receivedPerS?: number;
  receivedAnswersPerS?: number;
  receivedMaxPerS?: number;
  offeredPerS?: number;
  cpuWindowS?: number;
  cpuTotalS?: number;
  firstPeerMs?: number;
  firstPeerMaxMs?: number;
  enoughPeersMs?: number;
  makespanMs?: number;
  failedHosts: number;
}

function summarise(bin: string, n: number, results: RunResult[]): Row {
  const per = (f: (h: HostResult) => number | undefined, agg: (xs: number[]) => number | undefined = median) =>
    median(results.map((r) => agg(r.perHost.map(f).filter((x): x is number => x !== undefined)) ?? NaN));
  const row: Row = { bin, hosts: n, failedHosts: results.reduce((a, r) => a + r.perHost.filter((h) => !h.ok).length, 0) };
  const set = <K extends keyof Row>(k: K, v: Row[K] | undefined) => {
    if (v !== undefined) row[k] = v;
  };
  set('sentPerS', per((h) => h.sentPerS));
  set('receivedPerS', per((h) => h.receivedPerS));
  set('receivedAnswersPerS', per((h) => h.receivedAnswersPerS));
  set('receivedMaxPerS', per((h) => h.receivedPerS, (xs) => (xs.length ? Math.max(...xs) : undefined)));
  set('offeredPerS', per((h) => h.offeredPerS));
  set('cpuWindowS', per((h) => h.cpuWindowS));
  set('cpuTotalS', per((h) => h.cpuTotalS));
  set('firstPeerMs', per((h) => h.firstPeerMs));
  set('firstPeerMaxMs', per((h) => h.firstPeerMs, (xs) => (xs.length ? Math.max(...xs) : undefined)));
  set('enoughPeersMs', per((h) => h.enoughPeersMs));
  set('makespanMs', median(results.map((r) => r.makespanMs ?? NaN)));
  return row;
}

function table(rows: Row[]): string {
  const f = (x: number | undefined, d = 1) => (x === undefined ? '-' : x.toFixed(d));
  const s = (ms: number | undefined) => (ms === undefined ? '-' : (ms / 1000).toFixed(2));
  const head = '| binary | N | mDNS sent / host / s | received / host / s: sent to it | delivered (answers; max host) | CPU-s / host (pull; whole process) | first peer p50 / max (s) | ' +
    `${ENOUGH_PEERS}th peer (or N-1th) p50 (s) | makespan (s) | failed |`;
  const lines = [head, '|---|---|---|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    lines.push(
      `| ${r.bin} | ${r.hosts} | ${f(r.sentPerS)} | ${f(r.offeredPerS)} | ${f(r.receivedPerS)} (${f(r.receivedAnswersPerS)}; ${f(r.receivedMaxPerS)}) | ${f(r.cpuWindowS, 2)}; ${f(r.cpuTotalS, 2)} | ` +
        `${s(r.firstPeerMs)} / ${s(r.firstPeerMaxMs)} | ${s(r.enoughPeersMs)} | ${s(r.makespanMs)} | ${r.failedHosts} |`,
    );
  }
  return lines.join('\n');
}

// ---- main --------------------------------------------------------------------------------------------------

const work = await mkdtemp(join(tmpdir(), 'swarmpull-mdns-scale-'));
scratch.push(work);
const perLayer = Math.floor((sizeMiB * MiB) / layers);
const image = await buildImage(join(work, 'image'), 'bench', { layers: Array(layers).fill(perLayer), seed: `mdns-scale-${sizeMiB}-${layers}` });
log(`${maxHosts} hosts at ${rateMbit} Mbit/s; image ${(image.size / MiB).toFixed(1)} MiB in ${layers} layers; ${bins.map((b) => `${b.label}=${b.path}`).join(', ')}`);
const lan = await createLan({ hosts: maxHosts, rateMbit, withRegistryHost: true });
let registry: Registry | undefined;
const all: RunResult[] = [];
const rows: Row[] = [];
try {
  await addCounters(lan, lan.hosts);
  const reg = lan.registryHost!;
  registry = await startRegistry({ netns: reg.ns, addr: `${reg.address}:5000` });
  scratch.push(registry.dir);
  const ref = `${registry.host}/bench/mdns:${image.tag}`;
  const digest = await pushImage(image.layoutDir, image.tag, ref);
  const hostsWork = join(work, 'hosts');
  await mkdir(hostsWork, { recursive: true });
  for (const n of hostsList) {
    const results = new Map(bins.map((b) => [b.label, [] as RunResult[]]));
    for (let run = 0; run < runs; run++) {
      // alternate, starting with a different binary each run: neither always runs on the quieter minute
      for (const bin of bins.map((_, k) => bins[(k + run) % bins.length]!)) {
        const r = await runOnce(lan, ref, digest, bin, n, run, hostsWork);
        results.get(bin.label)!.push(r);
        const one = summarise(bin.label, n, [r]);
        log(
          `${bin.label} N=${n} run ${run + 1}: makespan ${one.makespanMs === undefined ? '-' : (one.makespanMs / 1000).toFixed(2) + ' s'}, ` +
            `received ${one.offeredPerS?.toFixed(1)} pkt/s/host (delivered ${one.receivedPerS?.toFixed(1)}, max ${one.receivedMaxPerS?.toFixed(1)}), sent ${one.sentPerS?.toFixed(1)}, ` +
            `CPU ${one.cpuWindowS?.toFixed(2)} s/host (whole ${one.cpuTotalS?.toFixed(2)}), first peer ${one.firstPeerMs} ms, failed ${one.failedHosts}`,
        );
      }
    }
    for (const [label, rs] of results) {
      all.push(...rs);
      rows.push(summarise(label, n, rs));
    }
  }
  process.stdout.write(
    `\n${(image.size / MiB).toFixed(1)} MiB in ${layers} layers (${layers + 1} blobs), every link ${rateMbit} Mbit/s, median of ${runs} run(s)` +
      ` (per run: the median host; "max" columns: the busiest host):\n\n${table(rows)}\n`,
  );
} finally {
  await registry?.stop().catch(() => {});
  await lan.destroy();
}
if (values!.json) {
  await writeFile(values!.json, JSON.stringify({ generatedAt: new Date().toISOString(), argv: process.argv.slice(2), bins, rows, runs: all }, null, 1) + '\n');
  log(`raw numbers in ${values!.json}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
