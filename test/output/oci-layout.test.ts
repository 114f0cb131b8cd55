// OCI image layouts checked by the strictest readers here: `umoci unpack` (digests, diff_ids, layout) and skopeo.
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SwarmpullError } from '../../lib/errors.ts';
import { MediaType } from '../../lib/image/types.ts';
import { mergeEntry, openOciLayout } from '../../lib/output/oci-layout.ts';
import type { ResolvedImage } from '../../lib/output/sink.ts';
import { parseReference } from '../../lib/reference.ts';
import { buildMultiArch } from '../support/fixtures.ts';
import { addAll, blobFile, fixture, run, tempDir, toolEnv, type Fixture } from './helpers.ts';

const REF_NAME = 'org.opencontainers.image.ref.name';
const readIndex = async (dir: string) => JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string; mediaType: string; annotations?: Record<string, string> }[] };
const blobNames = async (dir: string) => (await readdir(join(dir, 'blobs/sha256'))).sort();

describe('OCI layout', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let one: Fixture;
  let two: Fixture;
  let three: Fixture;
  let n = 0;
  const fresh = (name: string) => join(tmp.path, `${name}-${++n}`);

  before(async () => {
    tmp = await tempDir('oci');
    one = await fixture(join(tmp.path, 'src1'), 'registry.test:5000/team/app:v1', { layers: [300_000, 2_000, 1_200_000], seed: 'oci-1' });
    two = await fixture(join(tmp.path, 'src2'), 'registry.test:5000/team/app:v2', { layers: [50_000, 60_000], seed: 'oci-2' });
    // Same tag as `one`, different content: re-pulling a moved tag.
    three = await fixture(join(tmp.path, 'src3'), 'registry.test:5000/team/app:v1', { layers: [70_000], seed: 'oci-3' });
  });
  after(() => tmp.remove());

  async function write(dir: string, f: Fixture, opts = {}) {
    const sink = await openOciLayout(dir, f.image, opts);
    await addAll(sink, f.blobs);
    return sink.commit();
  }

  async function assertUnpacks(dir: string, tag: string, f: Fixture) {
    const bundle = fresh('bundle');
    await run('umoci', ['unpack', '--image', `${dir}:${tag}`, bundle], { env: toolEnv });
    const files = await readdir(join(bundle, 'rootfs/data'));
    assert.equal(files.length, f.fx.layers.length, `every layer unpacked from ${dir}:${tag}`);
  }

  test('a new directory: umoci unpacks it, skopeo copies it with the same blobs, no temp dir left', async () => {
    const dir = fresh('new');
    const result = await write(dir, one);
    assert.equal(result, `wrote ${dir}:v1`);
    assert.deepEqual((await readdir(tmp.path)).filter((name) => name.startsWith('new-')), [dir.slice(tmp.path.length + 1)]);
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
    const index = await readIndex(dir);
    assert.deepEqual(index.manifests, [
      {
        mediaType: MediaType.ociManifest,
        digest: one.fx.manifest.digest,
        size: one.fx.manifest.size,
        platform: { os: 'linux', architecture: 'amd64' },
        annotations: { [REF_NAME]: 'v1' },
      },
    ]);
    await assertUnpacks(dir, 'v1', one);

    const out = fresh('skopeo');
    await run('skopeo', ['copy', '--quiet', `oci:${dir}:v1`, `dir:${out}`], { env: toolEnv });
    for (const { desc } of one.blobs) {
      assert.deepEqual(await readFile(join(out, desc.digest.slice(7))), await readFile(blobFile(one.fx.layoutDir, desc.digest)));
    }
    assert.deepEqual(await readFile(join(out, 'manifest.json')), one.image.manifest.body);
  });

  test('merge into an existing layout keeps the first image; the same tag is replaced', async () => {
    const dir = fresh('merge');
    await write(dir, one);
    await write(dir, two);
    let index = await readIndex(dir);
    assert.deepEqual(index.manifests.map((m) => [m.annotations?.[REF_NAME], m.digest]), [['v1', one.fx.manifest.digest], ['v2', two.fx.manifest.digest]]);
    await assertUnpacks(dir, 'v1', one);
    await assertUnpacks(dir, 'v2', two);

    await write(dir, three);
    index = await readIndex(dir);
    assert.deepEqual(index.manifests.map((m) => [m.annotations?.[REF_NAME], m.digest]), [['v1', three.fx.manifest.digest], ['v2', two.fx.manifest.digest]]);
    await assertUnpacks(dir, 'v1', three);
    await assertUnpacks(dir, 'v2', two);
    assert.ok(!(await blobNames(dir)).some((name) => name.includes('.tmp')), 'no temp blobs left');
  });

  test('abort on an existing layout: index.json byte-identical, no blob added', async () => {
    const dir = fresh('abort-existing');
    await write(dir, one);
    const indexBefore = await readFile(join(dir, 'index.json'));
    const blobsBefore = await blobNames(dir);
    // `two` shares nothing with `one`; add one of `one`'s blobs too, which must survive the abort.
    const sink = await openOciLayout(dir, two.image);
    await addAll(sink, two.blobs);
    await sink.addBlob(one.blobs[1]!.desc, one.blobs[1]!.path);
    await sink.abort();
    await sink.abort();
    assert.deepEqual(await readFile(join(dir, 'index.json')), indexBefore);
    assert.deepEqual(await blobNames(dir), blobsBefore);
    await assertUnpacks(dir, 'v1', one);
    await assert.rejects(sink.addBlob(two.blobs[0]!.desc, two.blobs[0]!.path), /aborted/);
  });

  test('abort on a new directory leaves nothing, not even the parents it made', async () => {
    const parent = fresh('parent');
    const dir = join(parent, 'a/b/layout');
    const before = await readdir(tmp.path);
    const sink = await openOciLayout(dir, one.image);
    await addAll(sink, one.blobs.slice(0, 2));
    await sink.abort();
    assert.deepEqual(await readdir(tmp.path), before);
  });

  test('an empty directory becomes a layout; aborted, it is left empty', async () => {
    const dir = fresh('empty');
    await mkdir(dir);
    const sink = await openOciLayout(dir, one.image);
    await addAll(sink, one.blobs);
    await sink.abort();
    assert.deepEqual(await readdir(dir), []);
    await write(dir, one);
    await assertUnpacks(dir, 'v1', one);
  });

  test('a non-empty directory that is not a layout, or a file: clear usage error, left untouched', async () => {
    const dir = fresh('other');
    await mkdir(dir);
    await writeFile(join(dir, 'notes.txt'), 'mine');
    const isUsage = (pattern: RegExp) => (err: unknown) => err instanceof SwarmpullError && err.exitCode === 2 && pattern.test(err.message);
    await assert.rejects(openOciLayout(dir, one.image), isUsage(/not empty and not an OCI image layout/));
    assert.deepEqual(await readdir(dir), ['notes.txt']);
    await assert.rejects(openOciLayout(join(dir, 'notes.txt'), one.image), isUsage(/not a directory/));
  });

  test('a broken index.json is reported before anything is written', async () => {
    const dir = fresh('broken');
    await write(dir, one);
    await writeFile(join(dir, 'index.json'), '{not json');
    await assert.rejects(openOciLayout(dir, two.image), /index\.json is not valid JSON/);
  });

  test('pulled by digest only: an entry without ref name, added once', async () => {
    const dir = fresh('digest');
    const image = { ...two.image, reference: parseReference(`registry.test:5000/team/app@${two.fx.manifest.digest}`) };
    await write(dir, one);
    for (let i = 0; i < 2; i++) {
      const sink = await openOciLayout(dir, image);
      await addAll(sink, two.blobs);
      assert.match(await sink.commit(), /untagged/);
    }
    const index = await readIndex(dir);
    assert.deepEqual(index.manifests.map((m) => [m.annotations?.[REF_NAME], m.digest]), [['v1', one.fx.manifest.digest], [undefined, two.fx.manifest.digest]]);
    await assertUnpacks(dir, 'v1', one);
  });

  test('commit without every blob fails and leaves the layout as it was', async () => {
    const dir = fresh('incomplete');
    await write(dir, one);
    const indexBefore = await readFile(join(dir, 'index.json'));
    const blobsBefore = await blobNames(dir);
    const sink = await openOciLayout(dir, two.image);
    await sink.addBlob(two.blobs[0]!.desc, two.blobs[0]!.path);
    await assert.rejects(sink.commit(), /was never added/);
    await sink.abort();
    assert.deepEqual(await readFile(join(dir, 'index.json')), indexBefore);
    assert.deepEqual(await blobNames(dir), blobsBefore);
  });

  test('--all-platforms: the index is tagged, and every platform must be there', async () => {
    const src = fresh('multi-src');
    const multi = await buildMultiArch(src, 'multi', [
      { layers: [20_000], seed: 'm', platform: { os: 'linux', architecture: 'amd64' } },
      { layers: [30_000, 1_000], seed: 'm', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    ]);
    const [amd64, arm64] = multi.platforms;
    const file = (d: string) => blobFile(src, d);
    const image: ResolvedImage = {
      reference: parseReference('registry.test:5000/team/multi:1'),
      index: { digest: multi.digest, mediaType: MediaType.ociIndex, body: await readFile(file(multi.digest)) },
      manifest: { digest: amd64!.manifest.digest, mediaType: MediaType.ociManifest, body: await readFile(file(amd64!.manifest.digest)) },
      config: amd64!.config,
      layers: amd64!.layers.map(({ diffId: _d, ...l }) => l),
      platform: amd64!.platform,
    };
    const blobsOf = (p: typeof amd64) => [p!.config, ...p!.layers].map((d) => ({ desc: { mediaType: d.mediaType, digest: d.digest, size: d.size }, path: file(d.digest) }));

    // Only the chosen platform: the index cannot be complete.
    const partial = await openOciLayout(fresh('multi-partial'), image, { allPlatforms: true });
    await addAll(partial, blobsOf(amd64));
    await assert.rejects(partial.commit(), new RegExp(`${arm64!.manifest.digest}.*never added`));
    await partial.abort();

    const dir = fresh('multi');
    const sink = await openOciLayout(dir, image, { allPlatforms: true });
    const arm64Manifest = { desc: { mediaType: MediaType.ociManifest, ...arm64!.manifest }, path: file(arm64!.manifest.digest) };
    await addAll(sink, [...blobsOf(amd64), ...blobsOf(arm64), arm64Manifest]);
    await sink.commit();
    const index = await readIndex(dir);
    assert.deepEqual(index.manifests.map((m) => [m.mediaType, m.digest, m.annotations?.[REF_NAME]]), [[MediaType.ociIndex, multi.digest, '1']]);
    const out = fresh('multi-out');
    await run('skopeo', ['copy', '--quiet', '--all', `oci:${dir}:1`, `oci:${out}:1`], { env: toolEnv });
    assert.deepEqual((await readIndex(out)).manifests.map((m) => m.digest), [multi.digest]);

    // Without --all-platforms the same image tags the chosen platform's manifest only.
    const single = fresh('multi-single');
    const one = await openOciLayout(single, image);
    await addAll(one, blobsOf(amd64));
    await one.commit();
    assert.deepEqual((await readIndex(single)).manifests.map((m) => m.digest), [amd64!.manifest.digest]);
  });
});

describe('index.json merge', () => {
  const d = (n: number) => `sha256:${String(n).repeat(64)}`;
  const entry = (n: number, tag?: string) => ({ mediaType: MediaType.ociManifest, digest: d(n), size: n, ...(tag ? { annotations: { [REF_NAME]: tag } } : {}) });

  test('a tag replaces its entry in place (and any duplicates); other tags and untagged entries stay', () => {
    const list = [entry(1, 'a'), entry(2), entry(3, 'b'), entry(4, 'a')];
    assert.deepEqual(mergeEntry(list, entry(5, 'a')), [entry(5, 'a'), entry(2), entry(3, 'b')]);
    assert.deepEqual(mergeEntry(list, entry(6, 'c')), [...list, entry(6, 'c')]);
  });

  test('untagged: added once per digest', () => {
    const list = [entry(1, 'a'), entry(2)];
    assert.equal(mergeEntry(list, entry(2)), list);
    assert.deepEqual(mergeEntry(list, entry(1)), [...list, entry(1)]);
  });
});
