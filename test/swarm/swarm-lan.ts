// A LAN for the end-to-end swarm tests: hosts in network namespaces on a shaped bridge, a real docker-registry
// in a namespace of its own (so its veth counters are the registry's egress), a fixture image pushed to it,
// and the swarmpull CLI run inside the hosts.
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildImage, pushImage, type FixtureImage } from '../support/fixtures.ts';
import { canUseNetns, createLan, type Lan, type LanHost } from '../support/netns.ts';
import { startRegistry, type Registry } from '../support/registry.ts';
import { cliCommand } from '../support/cli.ts';

const run = promisify(execFile);
export const MiB = 1024 * 1024;

/** The swarm suites' skip reason: they need network namespaces. */
export const skipWithoutNetns = canUseNetns() ? false : 'needs root and working `ip netns`';

/** The pull succeeded and printed its --json result: return it. */
export function ok(o: PullOutcome, who: string) {
  assert.equal(o.code, 0, `${who} exited ${o.code ?? o.signal}:\n${o.stderr}`);
  assert.ok(o.json, `${who} printed no JSON:\n${o.stdout}\n${o.stderr}`);
  return o.json;
}

export interface SwarmLanOptions {
  hosts: number;
  rateMbit: number;
  /** sizes of the files inside the image's layers */
  layers: number[];
  seed: string;
}

export interface PullOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** the --json result, when the pull printed one */
  json?: PullJson;
  /** ms from spawn to exit */
  ms: number;
}

export interface PullJson {
  digest: string;
  manifestDigest: string;
  bytes: { total: number; registry: number; peers: number; cached: number };
  peers: { seen: number; used: number };
  durationMs: number;
}

/** One swarmpull process running in a host of the LAN. */
export class PullRun {
  readonly host: LanHost;
  readonly proc: ChildProcess;
  readonly oci: string;
  readonly done: Promise<PullOutcome>;
  stdout = '';
  stderr = '';
  private readonly waiters = new Set<() => void>();

  constructor(lan: Lan, host: LanHost, args: string[], oci: string, timeoutMs: number) {
    this.host = host;
    this.oci = oci;
    const [cmd, argv] = cliCommand(args);
    const started = performance.now();
    this.proc = lan.spawn(host, cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    this.proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
      for (const w of this.waiters) w();
    });
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    this.done = new Promise((resolve) => {
      this.proc.once('close', (code, signal) => {
        clearTimeout(timer);
        for (const w of this.waiters) w();
        let json: PullJson | undefined;
        try {
          json = JSON.parse(this.stdout) as PullJson;
        } catch {}
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr, ms: performance.now() - started, ...(json ? { json } : {}) });
      });
    });
  }

  /** Resolves once stderr matches `re` (rejects if the process exits first or after timeoutMs). */
  waitForStderr(re: RegExp, timeoutMs = 60_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`${this.host.name}: no ${re} on stderr within ${timeoutMs} ms:\n${this.stderr}`)), timeoutMs);
      const finish = (err?: Error) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        if (err) reject(err);
        else resolve();
      };
      const check = () => {
        if (re.test(this.stderr)) finish();
        else if (this.proc.exitCode !== null || this.proc.signalCode !== null) finish(new Error(`${this.host.name}: exited before ${re}:\n${this.stderr}`));
      };
      this.waiters.add(check);
      check();
    });
  }
}

export interface SwarmLan {
  lan: Lan;
  hosts: LanHost[];
  registry: Registry;
  image: FixtureImage;
  /** registry/repository:tag of the pushed image, as the hosts reach it */
  ref: string;
  /** repository@digest of the pushed image */
  refByDigest: string;
  work: string;
  /** bytes the registry's namespace has sent so far */
  registryTx(): number;
  /**
   * `swarmpull pull REF --oci NEW --store S --json --plain-http --debug ...args` in a host; S is the host's store,
   * or another of its stores named by `store`. `debug: false` leaves out --debug.
   */
  pull(host: number, args?: string[], opts?: { ref?: string; store?: string; timeoutMs?: number; debug?: boolean }): PullRun;
  /** `swarmpull serve --store S --debug ...args` in a host, S as for pull */
  serve(host: number, args?: string[], opts?: { store?: string }): PullRun;
  storeOf(host: number, store?: string): string;
  /** `umoci unpack` the layout a pull wrote: throws if umoci finds anything wrong */
  validate(run: PullRun): Promise<void>;
  stopRegistry(): Promise<void>;
  destroy(): Promise<void>;
}

export async function createSwarmLan(opts: SwarmLanOptions): Promise<SwarmLan> {
  const work = await mkdtemp(join(tmpdir(), 'swarmpull-e2e-'));
  let lan: Lan | undefined;
  let registry: Registry | undefined;
  try {
    lan = await createLan({ hosts: opts.hosts, rateMbit: opts.rateMbit, withRegistryHost: true });
    const regHost = lan.registryHost!;
    registry = await startRegistry({ addr: `${regHost.address}:5000`, netns: regHost.ns });
    const tag = 'v1';
    const image = await buildImage(join(work, 'src'), tag, { layers: opts.layers, seed: opts.seed });
    // skopeo runs in the root namespace and reaches the registry's namespace over the bridge.
    const ref = `${registry.host}/e2e/app:${tag}`;
    const digest = await pushImage(image.layoutDir, tag, ref);
    let n = 0;
    const theLan = lan;
    const storeOf = (host: number, store?: string) => join(work, `${theLan.hosts[host]!.name}-store${store ? `-${store}` : ''}`);
    const theRegistry = registry;
    return {
      lan,
      hosts: lan.hosts,
      registry,
      image,
      ref,
      refByDigest: `${registry.host}/e2e/app@${digest}`,
      work,
      registryTx: () => theLan.txBytes(regHost),
      storeOf,
      pull(host, args = [], o = {}) {
        const oci = join(work, `${theLan.hosts[host]!.name}-oci-${++n}`);
        const argv = ['pull', o.ref ?? ref, '--oci', oci, '--store', storeOf(host, o.store), '--json', '--plain-http', ...(o.debug === false ? [] : ['--debug']), ...args];
        return new PullRun(theLan, theLan.hosts[host]!, argv, oci, o.timeoutMs ?? 90_000);
      },
      serve(host, args = [], o = {}) {
        const argv = ['serve', '--store', storeOf(host, o.store), '--debug', ...args];
        return new PullRun(theLan, theLan.hosts[host]!, argv, '', 10 * 60_000);
      },
      async validate(r) {
        const bundle = join(work, `bundle-${++n}`);
        await mkdir(join(bundle, '..'), { recursive: true });
        await run('umoci', ['unpack', '--image', `${r.oci}:${tag}`, bundle]);
        await rm(bundle, { recursive: true, force: true });
      },
      stopRegistry: () => theRegistry.stop(),
      async destroy() {
        await theRegistry.stop().catch(() => {});
        await theLan.destroy();
        await rm(work, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await registry?.stop().catch(() => {});
    await lan?.destroy();
    await rm(work, { recursive: true, force: true });
    throw err;
  }
}
