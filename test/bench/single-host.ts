// Single host, loopback registry: swarmpull vs `skopeo copy` into an OCI layout, same image, same run.
// Usage: npm run bench:single -- [--size-mib 1024] [--layers 8] [--runs 5]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startRegistry } from '../support/registry.ts';
import { buildImage, pushImage } from '../support/fixtures.ts';
import { cliCommand } from '../support/cli.ts';
import { measure, median, type Measured } from './measure.ts';

const { values } = parseArgs({
  options: { 'size-mib': { type: 'string', default: '1024' }, layers: { type: 'string', default: '8' }, runs: { type: 'string', default: '5' } },
});
const MiB = 1 << 20;
const sizeMiB = Number(values['size-mib']);
const layers = Number(values.layers);
const runs = Number(values.runs);

const work = await mkdtemp(join(tmpdir(), 'swarmpull-bench-'));
const registry = await startRegistry();
try {
  const image = await buildImage(join(work, 'src'), 'bench', { layers: Array(layers).fill(Math.floor((sizeMiB * MiB) / layers)), seed: 'bench' });
  const ref = `${registry.host}/bench/image:1`;
  await pushImage(image.layoutDir, 'bench', ref);
  console.error(`bench: ${(image.size / MiB).toFixed(0)} MiB in ${layers} layers at ${ref}; ${runs} runs each`);

  const results: Record<'swarmpull' | 'skopeo', Measured[]> = { swarmpull: [], skopeo: [] };
  for (let i = 0; i < runs; i++) {
    // Alternate the order so neither tool always runs on a warmer page cache.
    for (const tool of i % 2 ? (['skopeo', 'swarmpull'] as const) : (['swarmpull', 'skopeo'] as const)) {
      const out = join(work, `${tool}-${i}`);
      const [cmd, args] =
        tool === 'swarmpull'
          ? cliCommand(['pull', ref, '--oci', out, '--store', join(work, `store-${i}`), '-q', '--no-mdns'])
          : ['skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${out}:bench`]];
      const m = await measure(cmd, args as string[]);
      if (m.code !== 0) throw new Error(`${tool} failed (${m.code}): ${m.stderr}`);
      results[tool].push(m);
      console.error(`bench: run ${i + 1} ${tool} ${(m.ms / 1000).toFixed(2)} s, peak RSS ${m.peakRssMiB.toFixed(0)} MiB, CPU ${m.cpuSeconds.toFixed(1)} s`);
      await rm(out, { recursive: true, force: true });
      await rm(join(work, `store-${i}`), { recursive: true, force: true });
    }
  }
  const row = (name: string, ms: Measured[]) => {
    const t = median(ms.map((m) => m.ms)) / 1000;
    return { name, t, rss: median(ms.map((m) => m.peakRssMiB)), cpu: median(ms.map((m) => m.cpuSeconds)) };
  };
  const sp = row('swarmpull', results.swarmpull);
  const sk = row('skopeo copy', results.skopeo);
  console.log(`\n| tool (${(image.size / MiB).toFixed(0)} MiB, ${layers} layers, loopback, median of ${runs}) | time | vs skopeo | peak RSS | CPU |`);
  console.log('|---|---|---|---|---|');
  for (const r of [sp, sk]) console.log(`| ${r.name} | ${r.t.toFixed(2)} s | ${(r.t / sk.t).toFixed(2)}x | ${r.rss.toFixed(0)} MiB | ${r.cpu.toFixed(1)} s |`);
} finally {
  await registry.stop();
  await rm(work, { recursive: true, force: true });
}
