// One peer to one peer on loopback: what the wire costs per byte. A `swarmpull serve` seeds an image; pulls with
// --no-registry take every blob from it. Baseline in the same run: the same pull from the loopback registry.
// Usage: npm run bench:peer -- [--size-mib 1024] [--layers 4] [--runs 5] [--max-download-rate 25M] [--link-mbit 100]
// --max-download-rate: the pulls' own limit (paced in user space). --link-mbit (root): seeder and puller in network
// namespaces joined by tbf-shaped links instead, paced by the network as a fan-out host is; no registry baseline then.
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLan } from '../support/netns.ts';
import { startRegistry } from '../support/registry.ts';
import { buildImage, pushImage } from '../support/fixtures.ts';
import { cliCommand, startCli } from '../support/cli.ts';
import { measure, median, procStats, type Measured } from './measure.ts';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    layers: { type: 'string', default: '4' },
    runs: { type: 'string', default: '5' },
    'max-download-rate': { type: 'string' },
    'link-mbit': { type: 'string' },
  },
});
const MiB = 1 << 20;
const GiB = 1 << 30;
const sizeMiB = Number(values['size-mib']);
const layers = Number(values.layers);
const runs = Number(values.runs);
const PORT = 17_000 + Math.floor(Math.random() * 1000);
const rateArgs = values['max-download-rate'] ? ['--max-download-rate', values['max-download-rate']] : [];
/** a registry off loopback is asked over HTTPS unless told */
const plainArgs = values['link-mbit'] ? ['--plain-http'] : [];
const lan = values['link-mbit'] ? await createLan({ hosts: 2, rateMbit: Number(values['link-mbit']) }) : undefined;
/** the seeder's address as the puller reaches it */
const seederHost = lan ? lan.hosts[0]!.address : '127.0.0.1';
/** a command run in the puller's namespace (`ip netns exec` execs in place: the pid is the command's) */
const inPuller = ([cmd, args]: [string, string[]]): [string, string[]] => (lan ? ['ip', ['netns', 'exec', lan.hosts[1]!.ns, cmd, ...args]] : [cmd, args]);

async function cpuSecondsOf(pid: number): Promise<number> {
  const stats = await procStats(pid);
  if (!stats) throw new Error('the seeder exited');
  return stats.cpu;
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const up = lan
      ? (await lan.exec(1, 'bash', ['-c', `exec 3<>/dev/tcp/${seederHost}/${port}`])).code === 0
      : await new Promise<boolean>((resolve) => {
          const s = connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
          s.once('error', () => resolve(false));
        });
    if (up) return;
    await sleep(100);
  }
  throw new Error(`nothing listens on port ${port} after ${timeoutMs} ms`);
}

const work = await mkdtemp(join(tmpdir(), 'swarmpull-bench-'));
// on the bridge with --link-mbit: the puller resolves the tag there
const registry = await startRegistry(lan ? { addr: `${lan.bridgeAddress}:0` } : {});
const seedStore = join(work, 'seed');
let server: ReturnType<typeof startCli> | undefined;
try {
  const image = await buildImage(join(work, 'src'), 'bench', { layers: Array(layers).fill(Math.floor((sizeMiB * MiB) / layers)), seed: 'peer-pair' });
  const ref = `${registry.host}/bench/image:1`;
  await pushImage(image.layoutDir, 'bench', ref);
  const seeded = await measure(...cliCommand(['pull', ref, '--oci', join(work, 'seed-oci'), '--store', seedStore, '-q', '--registry-only', ...plainArgs]));
  if (seeded.code !== 0) throw new Error(`seeding pull failed: ${seeded.stderr}`);
  const serveArgs = ['serve', '--store', seedStore, '--port', String(PORT), '--no-mdns', '-q'];
  server = lan ? lan.spawn(0, ...cliCommand(serveArgs), { stdio: 'ignore' }) : startCli(serveArgs);
  await waitForPort(PORT, 15_000);
  const pacing = [values['max-download-rate'] && `--max-download-rate ${values['max-download-rate']}`, lan && `links of ${values['link-mbit']} Mbit/s`].filter(Boolean);
  console.error(`bench: ${(image.size / MiB).toFixed(0)} MiB in ${layers} layers; ${runs} runs each${pacing.length ? `; ${pacing.join(', ')}` : ''}`);

  type Run = Measured & { serverCpu: number };
  const results: Record<'peer' | 'registry', Run[]> = { peer: [], registry: [] };
  for (let i = 0; i < runs; i++) {
    const order = i % 2 ? (['registry', 'peer'] as const) : (['peer', 'registry'] as const);
    // with --link-mbit the registry baseline is left out (it would double the run and is not what is measured)
    for (const source of lan ? (['peer'] as const) : order) {
      const store = join(work, `store-${i}-${source}`);
      const out = join(work, `oci-${i}-${source}`);
      const args = ['pull', ref, '--oci', out, '--store', store, '-q', '--no-mdns'];
      const extra = source === 'peer' ? ['--no-registry', '--peers', `${seederHost}:${PORT}`, '--linger', '0'] : ['--registry-only'];
      const before = await cpuSecondsOf(server.pid!);
      const m = await measure(...inPuller(cliCommand([...args, ...extra, ...rateArgs, ...plainArgs])));
      const serverCpu = source === 'peer' ? (await cpuSecondsOf(server.pid!)) - before : 0;
      if (m.code !== 0) throw new Error(`${source} pull failed (${m.code}): ${m.stderr}`);
      results[source].push({ ...m, serverCpu });
      console.error(`bench: run ${i + 1} from ${source}: ${(m.ms / 1000).toFixed(2)} s, CPU ${m.cpuSeconds.toFixed(1)} s (server ${serverCpu.toFixed(1)} s), peak RSS ${m.peakRssMiB.toFixed(0)} MiB`);
      await rm(store, { recursive: true, force: true });
      await rm(out, { recursive: true, force: true });
    }
  }
  const gib = image.size / GiB;
  const row = (name: string, rs: Run[], base?: number) => {
    const t = median(rs.map((r) => r.ms)) / 1000;
    const cpu = median(rs.map((r) => r.cpuSeconds)) / gib;
    const serverCpu = median(rs.map((r) => r.serverCpu)) / gib;
    return `| ${name} | ${t.toFixed(2)} s | ${(image.size / MiB / t).toFixed(0)} MiB/s | ${base ? `${(t / base).toFixed(2)}x` : name === 'registry' ? '1.00x' : '-'} | ${cpu.toFixed(1)} s | ${name === 'registry' ? '-' : `${serverCpu.toFixed(1)} s`} | ${median(rs.map((r) => r.peakRssMiB)).toFixed(0)} MiB |`;
  };
  const base = lan ? undefined : median(results.registry.map((r) => r.ms)) / 1000;
  const where = [lan ? `${values['link-mbit']} Mbit/s links` : 'loopback', ...rateArgs.slice(1).map((r) => `at most ${r}/s`)].join(', ');
  console.log(`\n| source (${(image.size / MiB).toFixed(0)} MiB, ${layers} layers, ${where}, median of ${runs}) | time | rate | vs registry | puller CPU per GiB | seeder CPU per GiB | peak RSS |`);
  console.log('|---|---|---|---|---|---|---|');
  if (!lan) console.log(row('registry', results.registry));
  console.log(row('one peer', results.peer, base));
} finally {
  server?.kill('SIGTERM');
  await lan?.destroy();
  await registry.stop();
  await rm(work, { recursive: true, force: true });
}
