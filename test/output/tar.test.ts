// The docker-load tar written to a file and to stdout, checked by real readers: tar(1) and skopeo's docker-archive.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SwarmpullError } from '../../lib/errors.ts';
import { dockerTarMetadata } from '../../lib/output/docker-tar.ts';
import { familiarName, fullTaggedName, repoTag } from '../../lib/output/naming.ts';
import { openTarFile } from '../../lib/output/tar-file.ts';
import { parseReference } from '../../lib/reference.ts';
import { addAll, blobFile, fixture, run, tempDir, toolEnv, type Fixture } from './helpers.ts';

const hex = (digest: string) => digest.slice('sha256:'.length);

describe('docker tar', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let f: Fixture;

  before(async () => {
    tmp = await tempDir('tar');
    // Three layers, one over 1 MiB so it spans several reads and back-pressure waits.
    f = await fixture(join(tmp.path, 'src'), 'registry.test:5000/team/app:v1', { layers: [300_000, 1_000, 2_500_000] });
  });
  after(() => tmp.remove());

  /** skopeo reads the tar as docker load would (manifest.json), decompresses each layer and checks it against its diff_id. */
  async function assertSkopeoAccepts(tarPath: string, out: string) {
    await run('skopeo', ['copy', '--quiet', `docker-archive:${tarPath}`, `dir:${out}`], { env: toolEnv });
    const files = new Set(await readdir(out));
    assert.ok(files.has(hex(f.fx.config.digest)), 'config blob copied');
    for (const l of f.fx.layers) assert.ok(files.has(hex(l.diffId)), `layer ${l.diffId} copied and verified`);
    assert.deepEqual(await readFile(join(out, hex(f.fx.config.digest))), await readFile(blobFile(f.fx.layoutDir, f.fx.config.digest)));
  }

  async function tarList(tarPath: string) {
    return (await run('tar', ['-tf', tarPath])).stdout.trim().split('\n');
  }

  function assertLayout(names: string[]) {
    assert.equal(names.at(-1), 'manifest.json', 'manifest.json is the last entry: a cut-short tar never loads');
    const blobs = [f.fx.config.digest, ...f.fx.layers.map((l) => l.digest), f.fx.manifest.digest].map((d) => `blobs/sha256/${hex(d)}`);
    for (const b of blobs) assert.ok(names.includes(b), `${b} in the tar`);
    assert.deepEqual(names.slice(-3), ['oci-layout', 'index.json', 'manifest.json']);
    assert.ok(names.indexOf(`blobs/sha256/${hex(f.fx.manifest.digest)}`) > Math.max(...f.fx.layers.map((l) => names.indexOf(`blobs/sha256/${hex(l.digest)}`))));
  }

  test('a file: skopeo accepts it, blobs match, manifest.json last, metadata as docker save writes it', async () => {
    const target = join(tmp.path, 'image.tar');
    const sink = await openTarFile(target, f.image);
    assert.equal(sink.description, `tar:${target}`);
    await addAll(sink, f.blobs);
    assert.match(await sink.commit(), /wrote/);
    assert.deepEqual((await readdir(tmp.path)).sort(), ['image.tar', 'src'], 'no temp file left');
    assertLayout(await tarList(target));

    const manifestJson = JSON.parse((await run('tar', ['-xOf', target, 'manifest.json'])).stdout);
    assert.deepEqual(manifestJson, [
      {
        Config: `blobs/sha256/${hex(f.fx.config.digest)}`,
        RepoTags: ['registry.test:5000/team/app:v1'],
        Layers: f.fx.layers.map((l) => `blobs/sha256/${hex(l.digest)}`),
      },
    ]);
    const index = JSON.parse((await run('tar', ['-xOf', target, 'index.json'])).stdout);
    assert.deepEqual(index.manifests, [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: f.fx.manifest.digest,
        size: f.fx.manifest.size,
        annotations: { 'io.containerd.image.name': 'registry.test:5000/team/app:v1', 'org.opencontainers.image.ref.name': 'v1' },
      },
    ]);
    // Deterministic headers: owner root, mode 0644, mtime the epoch.
    const verbose = (await run('tar', ['--numeric-owner', '--full-time', '-tvf', target])).stdout.trim().split('\n');
    for (const line of verbose.filter((l) => l.startsWith('-'))) assert.match(line, /^-rw-r--r-- 0\/0 +\d+ 1970-01-01 00:00:00 /);
    await assertSkopeoAccepts(target, join(tmp.path, 'skopeo-file'));
  });

  test('stdout (-o -): a child process writes the tar and nothing else to stdout', async () => {
    const job = join(tmp.path, 'job.json');
    await writeFile(job, JSON.stringify({ image: { ...f.image, manifest: { ...f.image.manifest, body: f.image.manifest.body.toString('base64') } }, blobs: f.blobs }));
    const target = join(tmp.path, 'stdout.tar');
    const out = createWriteStream(target);
    await new Promise<void>((resolve) => out.once('open', () => resolve()));
    const child = spawn(process.execPath, [join(import.meta.dirname, 'tar-stdout-child.ts'), job], { stdio: ['ignore', out, 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    out.close();
    assert.equal(code, 0, stderr);
    assert.match(stderr, /wrote the tar to stdout/);
    assertLayout(await tarList(target));
    await assertSkopeoAccepts(target, join(tmp.path, 'skopeo-stdout'));
  });

  test('stdout on a terminal is refused (usage error), as docker save does', async () => {
    const job = join(tmp.path, 'job-tty.json');
    await writeFile(job, JSON.stringify({ image: { ...f.image, manifest: { ...f.image.manifest, body: '' } }, blobs: [] }));
    // script(1) runs the child on a pseudo-terminal; -e passes its exit code through.
    const cmd = `${process.execPath} ${join(import.meta.dirname, 'tar-stdout-child.ts')} ${job}`;
    const result = await run('script', ['-qec', cmd, '/dev/null']).then(
      () => ({ code: 0, stdout: '' }),
      (err: { code: number; stdout: string }) => err,
    );
    assert.equal(result.code, 2);
    assert.match(result.stdout, /refusing to write an image tar to a terminal/);
  });

  test('commit replaces an existing file; abort leaves the old one and no temp file', async () => {
    const target = join(tmp.path, 'replace.tar');
    await writeFile(target, 'old');
    const aborted = await openTarFile(target, f.image);
    await aborted.addBlob(f.blobs[0]!.desc, f.blobs[0]!.path);
    await aborted.abort();
    await aborted.abort(); // idempotent
    assert.equal(await readFile(target, 'utf8'), 'old');
    assert.deepEqual((await readdir(tmp.path)).filter((n) => n.startsWith('replace.tar')), ['replace.tar']);

    const sink = await openTarFile(target, f.image);
    await addAll(sink, f.blobs);
    await sink.commit();
    assert.ok((await stat(target)).size > f.fx.size);
    assertLayout(await tarList(target));
  });

  test('abort before anything was written to a new path leaves nothing', async () => {
    const target = join(tmp.path, 'never.tar');
    const sink = await openTarFile(target, f.image);
    await sink.abort();
    assert.ok(!(await readdir(tmp.path)).some((n) => n.startsWith('never.tar')));
  });

  test('commit without every blob fails; a blob of the wrong size is refused', async () => {
    const target = join(tmp.path, 'partial.tar');
    const sink = await openTarFile(target, f.image);
    await sink.addBlob(f.blobs[0]!.desc, f.blobs[0]!.path);
    await assert.rejects(sink.commit(), /never added/);
    await sink.abort();

    const sink2 = await openTarFile(target, f.image);
    const { desc, path } = f.blobs[1]!;
    await assert.rejects(sink2.addBlob({ ...desc, size: desc.size + 1 }, path), (err: unknown) => err instanceof SwarmpullError && err.exitCode === 5);
    await sink2.abort();
    assert.ok(!(await readdir(tmp.path)).some((n) => n.startsWith('partial.tar')));
  });

  test('a directory or a missing parent directory is refused up front', async () => {
    await assert.rejects(openTarFile(tmp.path, f.image), (err: unknown) => err instanceof SwarmpullError && /is a directory/.test(err.message));
    await assert.rejects(openTarFile(join(tmp.path, 'nope/x.tar'), f.image), /does not exist/);
  });
});

describe('image names', () => {
  test('docker familiar names, full names, untagged', () => {
    const r = parseReference;
    assert.equal(repoTag(r('alpine')), 'alpine:latest');
    assert.equal(familiarName(r('docker.io/library/alpine:3')), 'alpine');
    assert.equal(repoTag(r('user/app:1')), 'user/app:1');
    assert.equal(repoTag(r('docker.io/library/a/b:1')), 'library/a/b:1');
    assert.equal(repoTag(r('localhost:5000/x/y:z')), 'localhost:5000/x/y:z');
    assert.equal(fullTaggedName(r('alpine')), 'docker.io/library/alpine:latest');
    const pinned = r(`alpine@sha256:${'a'.repeat(64)}`);
    assert.equal(repoTag(pinned), undefined);
    assert.equal(fullTaggedName(pinned), undefined);
  });

  test('pulled by digest only: no RepoTags, no name annotations', async () => {
    const tmp = await tempDir('tar-digest');
    try {
      const f = await fixture(tmp.path, `alpine@sha256:${'b'.repeat(64)}`, { layers: [100] });
      const meta = dockerTarMetadata(f.image);
      assert.deepEqual(JSON.parse(meta.manifestJson.toString())[0].RepoTags, []);
      assert.equal(JSON.parse(meta.indexJson.toString()).manifests[0].annotations, undefined);
    } finally {
      await tmp.remove();
    }
  });
});
