// `npm run demo`: a local registry with a generated sample image, pulled by three hosts at once, each in its
// own network namespace on a 100 Mbit/s LAN, swapping pieces while they download. No internet needed.
// Without root (no namespaces) it falls back to one host on loopback.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { startRegistry } from './support/registry.ts';
import { buildImage, pushImage } from './support/fixtures.ts';
import { cliCommand, collect } from './support/cli.ts';
import { canUseNetns, createLan } from './support/netns.ts';

const MiB = 1 << 20;
const HOSTS = 3;
const work = await mkdtemp(join(tmpdir(), 'swarmpull-demo-'));
const image = await buildImage(join(work, 'src'), 'demo', { layers: [4 * MiB, 16 * MiB, 24 * MiB], seed: 'demo' });
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

if (canUseNetns()) {
  const lan = await createLan({ hosts: HOSTS, rateMbit: 100, withRegistryHost: true });
  const reg = lan.registryHost!;
  const registry = await startRegistry({ netns: reg.ns, addr: `${reg.address}:5000` });
  try {
    const ref = `${registry.host}/demo/app:1.0`;
    await pushImage(image.layoutDir, 'demo', ref);
    console.log(`demo: registry at ${registry.host} (namespace ${reg.ns}), image ${mib(image.size)} in ${image.layers.length} layers`);
    console.log(`demo: ${HOSTS} hosts on a 100 Mbit/s LAN pull ${ref} at the same moment (mDNS discovery)`);
    const egressBefore = lan.txBytes(reg);
    const started = Date.now();
    const pulls = lan.hosts.map((host, i) => {
      const [cmd, argv] = cliCommand(['pull', ref, '--plain-http', '--oci', join(work, `host${i}`), '--store', join(work, `store${i}`), '--json', '-q', '--linger', '5']);
      return collect(lan.spawn(host, cmd, argv), 300_000);
    });
    const results = await Promise.all(pulls);
    const egress = lan.txBytes(reg) - egressBefore;
    for (const [i, r] of results.entries()) {
      if (r.code !== 0) throw new Error(`host${i} failed (${r.code}): ${r.stderr}`);
      const j = JSON.parse(r.stdout);
      console.log(`demo: host${i} (${lan.hosts[i]!.address}) ready in ${(j.durationMs / 1000).toFixed(1)} s: ${mib(j.bytes.registry)} from the registry, ${mib(j.bytes.peers)} from ${j.peers.used} peers`);
    }
    console.log(`demo: all done in ${((Date.now() - started) / 1000).toFixed(1)} s; the registry sent ${mib(egress)} for ${HOSTS} copies of a ${mib(image.size)} image (one host alone needs ${((image.size * 8) / 100e6).toFixed(1)} s at 100 Mbit/s)`);
    console.log(`demo: OCI layouts in ${work}/host*`);
  } finally {
    await registry.stop();
    await lan.destroy();
  }
} else {
  const registry = await startRegistry();
  try {
    const ref = `${registry.host}/demo/app:1.0`;
    await pushImage(image.layoutDir, 'demo', ref);
    console.log(`demo: not root, so one host on loopback; pushed ${ref} (${mib(image.size)})`);
    // --no-mdns keeps multicast off the machine's real network.
    const [cmd, argv] = cliCommand(['pull', ref, '--no-mdns', '--oci', join(work, 'layout'), '--store', join(work, 'store'), '--json']);
    const proc: ChildProcess = spawn(cmd, argv, { stdio: 'inherit' });
    const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
    if (code !== 0) throw new Error(`swarmpull exited ${code}`);
    console.log(`demo: OCI layout written to ${work}/layout`);
  } finally {
    await registry.stop();
  }
}
