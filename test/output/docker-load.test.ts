// `docker load` against a real (private) Docker 20.10 daemon: what it loads, that abort loads nothing, and
// the one-line errors when docker is missing, unreachable or refuses the tar.
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SwarmpullError } from '../../lib/errors.ts';
import { openDockerLoad } from '../../lib/output/docker-load.ts';
import { dockerdSkip, startDockerd, type Dockerd } from '../support/dockerd.ts';
import { addAll, fixture, run, tempDir, type Fixture } from './helpers.ts';

const isClearFailure = (pattern: RegExp) => (err: unknown) => {
  assert.ok(err instanceof SwarmpullError, String(err));
  assert.equal(err.exitCode, 1);
  assert.match(err.message, pattern);
  assert.ok(!err.message.includes('\n'), `one line: ${err.message}`);
  return true;
};

describe('docker load (real dockerd)', { skip: dockerdSkip }, () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let dockerd: Dockerd;
  let docker: (...args: string[]) => Promise<string>;

  before(async () => {
    tmp = await tempDir('load');
    dockerd = await startDockerd();
    docker = async (...args) => (await run('docker', args, { env: dockerd.env })).stdout;
  });
  after(async () => {
    await dockerd?.stop();
    await tmp?.remove();
  });

  const imageIds = async () => (await docker('images', '--all', '--no-trunc', '--quiet')).trim().split('\n').filter(Boolean).sort();

  test('loads a tagged image: RepoTag and every layer (diff_ids) as the config says', async () => {
    const f = await fixture(join(tmp.path, 'a'), 'docker.io/library/swarmpull-fixture:v1', { layers: [200_000, 3_000, 1_500_000], seed: 'load-a' });
    const sink = await openDockerLoad(f.image, { env: dockerd.env });
    assert.equal(sink.description, 'docker load');
    await addAll(sink, f.blobs);
    assert.equal(await sink.commit(), 'Loaded image: swarmpull-fixture:v1');
    const [inspect] = JSON.parse(await docker('image', 'inspect', 'swarmpull-fixture:v1'));
    assert.equal(inspect.Id, f.fx.config.digest);
    assert.deepEqual(inspect.RepoTags, ['swarmpull-fixture:v1']);
    assert.deepEqual(inspect.RootFS.Layers, f.fx.layers.map((l) => l.diffId));
  });

  test('pulled by digest only: loaded untagged, under its config digest', async () => {
    const f = await fixture(join(tmp.path, 'b'), `registry.test:5000/team/app@sha256:${'c'.repeat(64)}`, { layers: [10_000, 20_000], seed: 'load-b' });
    const sink = await openDockerLoad(f.image, { env: dockerd.env });
    await addAll(sink, f.blobs);
    assert.equal(await sink.commit(), `Loaded image ID: ${f.fx.config.digest}`);
    const [inspect] = JSON.parse(await docker('image', 'inspect', f.fx.config.digest));
    assert.deepEqual(inspect.RepoTags, []);
    assert.equal(inspect.RootFS.Layers.length, 2);
  });

  test('abort after every blob was streamed (only the metadata missing): nothing is loaded', async () => {
    const f = await fixture(join(tmp.path, 'c'), 'registry.test:5000/team/aborted:v1', { layers: [400_000, 5_000, 900_000], seed: 'load-c' });
    const beforeIds = await imageIds();
    const sink = await openDockerLoad(f.image, { env: dockerd.env });
    await addAll(sink, f.blobs);
    await sink.abort();
    await sink.abort(); // idempotent
    await sleep(1_000); // give the daemon time to (wrongly) finish a load
    assert.deepEqual(await imageIds(), beforeIds);
    await assert.rejects(docker('image', 'inspect', f.fx.config.digest));
  });

  test('abort midway (one blob of three): nothing is loaded', async () => {
    const f = await fixture(join(tmp.path, 'd'), 'registry.test:5000/team/midway:v1', { layers: [100_000, 100_000], seed: 'load-d' });
    const beforeIds = await imageIds();
    const sink = await openDockerLoad(f.image, { env: dockerd.env });
    await sink.addBlob(f.blobs[1]!.desc, f.blobs[1]!.path);
    await sink.abort();
    await sleep(500);
    assert.deepEqual(await imageIds(), beforeIds);
  });

  test('docker load refusing the tar: its last stderr line, one line', async () => {
    // The config of one image over the layers of another: docker load checks diff_ids and refuses.
    const a = await fixture(join(tmp.path, 'e1'), 'registry.test:5000/team/mixed:v1', { layers: [1_000], seed: 'load-e1' });
    const b = await fixture(join(tmp.path, 'e2'), 'registry.test:5000/team/mixed:v1', { layers: [2_000], seed: 'load-e2' });
    const image = { ...a.image, layers: b.image.layers };
    const sink = await openDockerLoad(image, { env: dockerd.env });
    await addAll(sink, [a.blobs[0]!, ...b.blobs.slice(1)]);
    await assert.rejects(sink.commit(), isClearFailure(/^docker load failed: .+/));
    await sink.abort();
    await assert.rejects(docker('image', 'inspect', a.fx.config.digest));
  });
});

describe('docker load without a usable docker', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let f: Fixture;

  before(async () => {
    tmp = await tempDir('nodocker');
    f = await fixture(join(tmp.path, 'img'), 'alpine:latest', { layers: [1_000], seed: 'nodocker' });
  });
  after(() => tmp.remove());

  const alternatives = /--oci DIR.*-o FILE/;

  test('no docker CLI on PATH', async () => {
    const env = { ...process.env, PATH: join(tmp.path, 'empty-bin') };
    await assert.rejects(openDockerLoad(f.image, { env }), isClearFailure(/no docker CLI on PATH/));
    await assert.rejects(openDockerLoad(f.image, { env }), isClearFailure(alternatives));
  });

  test('dockerBin pointing nowhere', async () => {
    await assert.rejects(openDockerLoad(f.image, { dockerBin: join(tmp.path, 'nowhere/docker') }), isClearFailure(/does not exist.*--oci DIR.*-o FILE/));
  });

  test('daemon not reachable', async () => {
    const env = { ...process.env, DOCKER_HOST: `unix://${join(tmp.path, 'no.sock')}` };
    await assert.rejects(openDockerLoad(f.image, { env }), isClearFailure(/cannot reach the Docker daemon.*--oci DIR.*-o FILE/));
  });

  test('daemon not answering: the version check times out', async () => {
    const fake = join(tmp.path, 'hang-docker');
    await writeFile(fake, '#!/bin/sh\nexec sleep 30\n');
    await chmod(fake, 0o755);
    await assert.rejects(openDockerLoad(f.image, { dockerBin: fake, timeoutMs: 300 }), isClearFailure(/did not answer within/));
  });

  test('docker load exiting early: its stderr, not EPIPE', async () => {
    // A stand-in CLI whose `load` gives up at once without reading the tar, as a daemon refusing the request would.
    const fake = join(tmp.path, 'fake-docker');
    await writeFile(fake, '#!/bin/sh\nif [ "$1" = version ]; then echo 20.10.0; exit 0; fi\necho "some detail" >&2\necho "Error response from daemon: no space left" >&2\nexit 1\n');
    await chmod(fake, 0o755);
    const big = await fixture(join(tmp.path, 'big'), 'alpine:latest', { layers: [4_000_000], seed: 'nodocker-big' });
    const sink = await openDockerLoad(big.image, { dockerBin: fake });
    await assert.rejects(
      (async () => {
        await addAll(sink, big.blobs);
        await sink.commit();
      })(),
      isClearFailure(/^docker load failed: Error response from daemon: no space left$/),
    );
    await sink.abort();
  });
});
