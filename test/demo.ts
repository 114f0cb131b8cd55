// `npm run demo`: a local registry with a generated sample image, pulled by swarmpull. No internet needed.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { startRegistry } from './support/registry.ts';
import { buildImage, pushImage } from './support/fixtures.ts';
import { cliCommand } from './support/cli.ts';

const MiB = 1 << 20;
const work = await mkdtemp(join(tmpdir(), 'swarmpull-demo-'));
const registry = await startRegistry();
try {
  console.log(`demo: registry listening on ${registry.host}`);
  const image = await buildImage(join(work, 'src'), 'demo', { layers: [4 * MiB, 16 * MiB, 24 * MiB], seed: 'demo' });
  const ref = `${registry.host}/demo/app:1.0`;
  await pushImage(image.layoutDir, 'demo', ref);
  console.log(`demo: pushed ${ref} (${(image.size / MiB).toFixed(1)} MiB in ${image.layers.length} layers)`);
  const out = join(work, 'layout');
  // One host here; --no-mdns keeps multicast off the machine's real network.
  const args = ['pull', ref, '--no-mdns', '--oci', out, '--store', join(work, 'store'), '--json'];
  console.log(`demo: swarmpull ${args.join(' ')}`);
  const [cmd, argv] = cliCommand(args);
  const code = await new Promise<number | null>((resolve) =>
    spawn(cmd, argv, { stdio: 'inherit' }).once('exit', resolve),
  );
  if (code !== 0) throw new Error(`swarmpull exited ${code}`);
  console.log(`demo: OCI layout written to ${out} (remove ${work} when done)`);
} finally {
  await registry.stop();
}
