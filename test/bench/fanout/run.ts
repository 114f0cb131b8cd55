// Runs one variant (swarmpull, direct swarmpull --registry-only, or skopeo copy) of a plan once, on a LAN whose
// registry holds the image: wave after wave, every host of a wave released at one instant, and records what
// each host did and what the registry sent.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { cliCommand } from '../../support/cli.ts';
import type { FixtureImage } from '../../support/fixtures.ts';
import type { Lan, LanHost } from '../../support/netns.ts';
import { stopProcess } from '../../support/registry.ts';
import { gatedCommand, HostProcess, type ProcessOutcome } from './host-process.ts';
import type { Plan, Tool } from './scenarios.ts';

/** a LAN with a registry in its own namespace that holds the image */
export interface Bench {
  lan: Lan;
  image: FixtureImage;
  /** registry/repository:tag, as the hosts reach it */
  ref: string;
  /** the manifest digest the registry stored */
  digest: string;
  /** scratch space for stores and outputs */
  work: string;
}

export interface RunSettings {
  /** --linger of the swarmpull processes, seconds */
  lingerS: number;
  /** a process still running after this is killed (and counts as failed) */
  timeoutMs: number;
  log: (msg: string) => void;
}

export interface HostRecord {
  host: string;
  index: number;
  wave: number;
  rateMbit: number;
  ok: boolean;
  code: number | null;
  signal: string | null;
  killed: boolean;
  /** release → image ready (swarmpull's readyAt; skopeo: its exit) */
  timeMs?: number;
  /** release → the process's exit (swarmpull: after --linger) */
  exitMs: number;
  /** release → swarmpull's own startedAt: how well the gate held the start */
  startLagMs?: number;
  /** swarmpull's --json byte counts */
  bytes?: { total: number; registry: number; peers: number; cached: number };
  peersUsed?: number;
  /** bytes that crossed the network into the process's output (registry + peers; skopeo: the image) */
  receivedBytes: number;
  peakRssMiB?: number;
  /** peak proportional and private memory (host-process.ts MemorySampler) */
  peakPssMiB?: number;
  peakUssMiB?: number;
  /** CPU seconds of the whole process, start-up included */
  cpuSeconds?: number;
  /** of which system time */
  sysSeconds?: number;
  /** of which start-up (module loading) before the gate, for swarmpull run from source */
  startupCpuSeconds?: number;
  /** the host's link, from its veth counters over the wave */
  linkRxBytes: number;
  linkTxBytes: number;
  error?: string;
}

export interface WaveRecord {
  wave: number;
  /** epoch ms of the release */
  releasedAt: number;
  /** release → the last process's exit */
  wallMs: number;
  /** bytes the registry's namespace sent from the release until the last process exited */
  registryEgressBytes: number;
  /** (f): when the victim was killed, and what it had received by then */
  kill?: { host: string; afterMs: number; rxBytes: number };
  hosts: HostRecord[];
}

export interface RunRecord {
  tool: Tool;
  run: number;
  waves: WaveRecord[];
}

interface PullJson {
  digest: string;
  bytes: { total: number; registry: number; peers: number; cached: number };
  peers: { used: number };
  startedAt: string;
  readyAt: string;
}

const GATE_TIMEOUT_MS = 180_000;

export async function runVariant(bench: Bench, plan: Plan, tool: Tool, run: number, settings: RunSettings): Promise<RunRecord> {
  const { lan, image } = bench;
  const hostDirs = (i: number) => ({ store: join(bench.work, `h${i}-store`), out: join(bench.work, `h${i}-out`), time: join(bench.work, `h${i}.time`) });
  const wipe = () => Promise.all(lan.hosts.slice(0, plan.hosts).map((_, i) => Promise.all(Object.values(hostDirs(i)).map((p) => rm(p, { recursive: true, force: true })))));
  await wipe();
  await mkdir(bench.work, { recursive: true });
  const seeders: ChildProcess[] = [];
  const waves: WaveRecord[] = [];
  try {
    for (const [w, members] of plan.waves.entries()) {
      const procs = members.map((i) => {
        const d = hostDirs(i);
        return new HostProcess(lan, lan.hosts[i]!, gatedCommand(commandFor(tool, bench, d.store, d.out, settings.lingerS)), d.time, settings.timeoutMs);
      });
      try {
        await withTimeout(Promise.all(procs.map((p) => p.ready)), GATE_TIMEOUT_MS, 'hosts did not reach their start gate');
      } catch (err) {
        for (const p of procs) p.kill();
        await Promise.all(procs.map((p) => p.done));
        throw err;
      }
      const reg = lan.registryHost!;
      const egress0 = lan.txBytes(reg);
      const links0 = members.map((i) => ({ rx: lan.rxBytes(i), tx: lan.txBytes(i) }));
      const releasedAt = Date.now();
      for (const p of procs) p.release();
      const victim = plan.killHost !== undefined ? members.indexOf(plan.killHost) : -1;
      const kill = victim >= 0 ? killAtHalf(lan, procs[victim]!, image.size, releasedAt) : undefined;
      const outcomes = await Promise.all(procs.map((p) => p.done));
      const wallMs = Math.max(...outcomes.map((o) => o.exitAt)) - releasedAt;
      const registryEgressBytes = lan.txBytes(reg) - egress0;
      const killed = await kill;
      const hosts = outcomes.map((o, k) => {
        const i = members[k]!;
        const link = { rx: lan.rxBytes(i) - links0[k]!.rx, tx: lan.txBytes(i) - links0[k]!.tx };
        return hostRecord(tool, bench, plan, i, w, o, releasedAt, link, k === victim && !!killed);
      });
      for (const h of hosts) if (!h.ok && !h.killed) settings.log(`${plan.key} ${tool} run ${run + 1}: ${h.host} failed: ${h.error}`);
      waves.push({ wave: w, releasedAt, wallMs, registryEgressBytes, ...(killed ? { kill: killed } : {}), hosts });
      // The hosts that are done keep seeding for the next wave, as a fleet's `swarmpull serve` would.
      if (tool === 'swarmpull' && w < plan.waves.length - 1) {
        for (const i of members) seeders.push(await startSeeder(lan, lan.hosts[i]!, hostDirs(i).store));
      }
    }
    return { tool, run, waves };
  } finally {
    await Promise.all(seeders.map((s) => stopProcess(s)));
    await wipe();
  }
}

function commandFor(tool: Tool, bench: Bench, store: string, out: string, lingerS: number): { swarmpull: string[] } | { argv: string[] } {
  if (tool === 'skopeo') {
    return { argv: ['skopeo', 'copy', '--quiet', '--src-tls-verify=false', `docker://${bench.ref}`, `oci:${out}:${bench.image.tag}`] };
  }
  const pull = ['pull', bench.ref, '--oci', out, '--store', store, '--json', '-q', '--plain-http'];
  return { swarmpull: tool === 'registry-only' ? [...pull, '--registry-only'] : [...pull, '--linger', String(lingerS)] };
}

function hostRecord(
  tool: Tool, bench: Bench, plan: Plan, i: number, wave: number, o: ProcessOutcome, releasedAt: number,
  link: { rx: number; tx: number }, killed: boolean,
): HostRecord {
  const base = {
    host: `h${i}`,
    index: i,
    wave,
    rateMbit: plan.hostRates[i]!,
    code: o.code,
    signal: o.signal,
    killed,
    exitMs: o.exitAt - releasedAt,
    linkRxBytes: link.rx,
    linkTxBytes: link.tx,
    ...(o.peakRssMiB !== undefined ? { peakRssMiB: o.peakRssMiB } : {}),
    ...(o.peakPssMiB !== undefined ? { peakPssMiB: o.peakPssMiB, peakUssMiB: o.peakUssMiB } : {}),
    ...(o.cpuSeconds !== undefined ? { cpuSeconds: o.cpuSeconds } : {}),
    ...(o.sysSeconds !== undefined ? { sysSeconds: o.sysSeconds } : {}),
    ...(o.startupCpuSeconds !== undefined ? { startupCpuSeconds: o.startupCpuSeconds } : {}),
  };
  const failed = (why: string): HostRecord => ({ ...base, ok: false, receivedBytes: 0, error: `${why}: ${o.stderr.trim().slice(-1500)}` });
  if (killed) return { ...base, ok: false, receivedBytes: 0 };
  if (o.code !== 0) return failed(`exit ${o.code ?? o.signal}`);
  if (tool === 'skopeo') return { ...base, ok: true, timeMs: o.exitAt - releasedAt, receivedBytes: bench.image.size };
  let json: PullJson;
  try {
    json = JSON.parse(o.stdout) as PullJson;
  } catch {
    return failed(`no --json result on stdout (${JSON.stringify(o.stdout.slice(0, 200))})`);
  }
  if (json.digest !== bench.digest) return failed(`pulled ${json.digest}, expected ${bench.digest}`);
  if (json.bytes.total !== bench.image.size) return failed(`bytes.total ${json.bytes.total}, image is ${bench.image.size}`);
  return {
    ...base,
    ok: true,
    timeMs: Date.parse(json.readyAt) - releasedAt,
    startLagMs: Date.parse(json.startedAt) - releasedAt,
    bytes: json.bytes,
    peersUsed: json.peers.used,
    receivedBytes: json.bytes.registry + json.bytes.peers,
  };
}

/** SIGKILL the process once its link has brought in half the image; resolves with when, or undefined if it ended first. */
async function killAtHalf(lan: Lan, p: HostProcess, imageSize: number, releasedAt: number) {
  const rx0 = lan.rxBytes(p.host);
  let ended = false;
  void p.done.then(() => (ended = true));
  while (!ended) {
    const rx = lan.rxBytes(p.host) - rx0;
    if (rx >= imageSize / 2) {
      p.kill();
      return { host: p.host.name, afterMs: Date.now() - releasedAt, rxBytes: rx };
    }
    await sleep(20);
  }
  return undefined;
}

/** `swarmpull serve` on a host's store; resolves once it says it serves. */
async function startSeeder(lan: Lan, host: LanHost, store: string): Promise<ChildProcess> {
  const [cmd, argv] = cliCommand(['serve', '--store', store]);
  const proc = lan.spawn(host, cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const serving = new Promise<void>((resolve, reject) => {
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
      log += d;
      if (/serving \d+ blobs/.test(log)) resolve();
    });
    proc.once('close', (code) => reject(new Error(`${host.name}: swarmpull serve exited ${code}:\n${log}`)));
  });
  await withTimeout(serving, 60_000, `${host.name}: swarmpull serve did not start`).catch(async (err) => {
    await stopProcess(proc);
    throw err;
  });
  return proc;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} within ${ms / 1000} s`)), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
