// The default output end to end: `swarmpull pull IMAGE` streams into `docker load` of a real dockerd.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type Registry } from '../support/registry.ts';
import { dockerdSkip, startDockerd, type Dockerd } from '../support/dockerd.ts';
import { buildImage, pushImage, type FixtureImage } from '../support/fixtures.ts';
import { runCli } from '../support/cli.ts';

const run = promisify(execFile);
const KiB = 1024;

let registry: Registry;
let dockerd: Dockerd;
let work: string;
let image: FixtureImage;

before(async () => {
  if (dockerdSkip) return;
  work = await mkdtemp(join(tmpdir(), 'swarmpull-load-'));
  registry = await startRegistry();
  dockerd = await startDockerd();
  image = await buildImage(join(work, 'src'), 'v1', { layers: [200 * KiB, 600 * KiB], seed: 'load' });
  await pushImage(image.layoutDir, 'v1', `${registry.host}/load/app:v1`);
});

after(async () => {
  await dockerd?.stop();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

test('pull without an output flag loads the image into docker, tagged', { skip: dockerdSkip }, async () => {
  const ref = `${registry.host}/load/app:v1`;
  const r = await runCli(['pull', '--no-mdns', ref, '--store', join(work, 'store'), '--json', '-q'], { env: dockerd.env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).output, 'docker load');
  const { stdout } = await run('docker', ['image', 'inspect', ref, '--format', '{{.Id}} {{len .RootFS.Layers}}'], { env: dockerd.env });
  assert.equal(stdout.trim(), `${image.config.digest} 2`);
});

test('without a docker daemon: one clear line naming --oci and -o, exit 1, nothing fetched', { skip: dockerdSkip }, async () => {
  const env = { ...process.env, DOCKER_HOST: `unix://${join(work, 'no-such.sock')}` };
  const store = join(work, 'store-nodocker');
  const r = await runCli(['pull', '--no-mdns', `${registry.host}/load/app:v1`, '--store', store], { env });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /--oci.*-o|-o.*--oci/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  // only the manifest was fetched before the output was found missing
  assert.deepEqual(await readdir(join(store, 'blobs/sha256')), [image.digest.slice(7)]);
});
