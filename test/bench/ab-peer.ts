// A/B of single binaries on the one-peer loopback transfer (bench:peer's setup), alternated run by run so that a
// shared machine's load falls on each alike. Usage: node test/bench/ab-peer.ts --bin A=path --bin B=path
// [--size-mib 512] [--rounds 4] [--max-download-rate 25M]
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { startRegistry } from '../support/registry.ts';
import { buildImage, pushImage } from '../support/fixtures.ts';
import { measure, median, procStats } from './measure.ts';

const { values } = parseArgs({ options: { bin: { type: 'string', multiple: true }, 'size-mib': { type: 'string', default: '512' }, rounds: { type: 'string', default: '4' }, 'max-download-rate': { type: 'string' } } });
const bins = (values.bin ?? []).map((b) => b.split('=') as [string, string]);
const MiB = 1 << 20;
const rate = values['max-download-rate'] ? ['--max-download-rate', values['max-download-rate']] : [];
const work = await mkdtemp(join(tmpdir(), 'swarmpull-ab-'));
const registry = await startRegistry();
try {
  const image = await buildImage(join(work, 'src'), 'ab', { layers: Array(4).fill(Math.floor((Number(values['size-mib']) * MiB) / 4)), seed: 'ab' });
  const ref = `${registry.host}/bench/ab:1`;
  await pushImage(image.layoutDir, 'ab', ref);
  const seedStore = join(work, 'seed');
  const s = await measure(bins[0]![1], ['pull', ref, '--oci', join(work, 'seed-oci'), '--store', seedStore, '-q', '--registry-only']);
  if (s.code !== 0) throw new Error(s.stderr);
  const gib = image.size / (1 << 30);
  const res = new Map<string, { p: number[]; s: number[] }>(bins.map(([n]) => [n, { p: [], s: [] }]));
  for (let r = 0; r < Number(values.rounds); r++) {
    const order = r % 2 ? [...bins].reverse() : bins;
    for (const [name, bin] of order) {
      const port = 18_000 + Math.floor(Math.random() * 1000);
      const server = spawn(bin, ['serve', '--store', seedStore, '--port', String(port), '--no-mdns', '-q'], { stdio: 'ignore' });
      for (let up = false; !up; ) {
        up = await new Promise<boolean>((res) => {
          const c = connect(port, '127.0.0.1', () => (c.destroy(), res(true)));
          c.once('error', () => res(false));
        });
        if (!up) await sleep(100);
      }
      const before = (await procStats(server.pid!))!.cpu;
      const store = join(work, `store-${r}-${name}`);
      const m = await measure(bin, ['pull', ref, '--oci', join(work, `oci-${r}-${name}`), '--store', store, '-q', '--no-mdns', '--no-registry', '--peers', `127.0.0.1:${port}`, '--linger', '0', ...rate]);
      const sc = (await procStats(server.pid!))!.cpu - before;
      server.kill('SIGTERM');
      if (m.code !== 0) throw new Error(`${name}: ${m.stderr}`);
      res.get(name)!.p.push(m.cpuSeconds / gib);
      res.get(name)!.s.push(sc / gib);
      console.error(`round ${r + 1} ${name}: ${(m.ms / 1000).toFixed(2)} s, puller ${(m.cpuSeconds / gib).toFixed(2)}, seeder ${(sc / gib).toFixed(2)} CPU-s/GiB, peak RSS ${m.peakRssMiB.toFixed(0)} MiB`);
      await rm(store, { recursive: true, force: true });
      await rm(join(work, `oci-${r}-${name}`), { recursive: true, force: true });
    }
  }
  const f = (xs: number[]) => `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)})`;
  console.log(`| binary (${values['size-mib']} MiB${rate.length ? `, ${rate[1]}/s` : ''}, ${values.rounds} runs) | puller CPU-s/GiB median (min-max) | seeder |`);
  console.log('|---|---|---|');
  for (const [name, r] of res) console.log(`| ${name} | ${f(r.p)} | ${f(r.s)} |`);
} finally {
  await registry.stop();
  await rm(work, { recursive: true, force: true });
}
