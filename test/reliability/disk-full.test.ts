// A full disk: the store, an OCI layout or a tar on a small tmpfs. One clear line naming the path, exit 1, in
// bounded time; nothing left behind that looks whole; and once there is space, the same pull succeeds.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type Registry } from '../support/registry.ts';
import { buildImage, pushImage, type FixtureImage } from '../support/fixtures.ts';
import { runCli, type CliResult } from '../support/cli.ts';
import { checkStore, layoutTags, listFiles, mountTmpfs, tmpfsUnavailable, umociUnpack, type Tmpfs } from './helpers.ts';

const run = promisify(execFile);
const KiB = 1024;
const MiB = 1024 * KiB;
/** generous: a full disk must fail fast, never wait out a stall timeout or loop */
const BOUND_MS = 60_000;

let work: string;
const skip = await (async () => {
  work = await mkdtemp(join(tmpdir(), 'swarmpull-diskfull-'));
  return tmpfsUnavailable(join(work, 'probe'));
})();

describe('disk full', { skip }, () => {
  let registry: Registry;
  let image: FixtureImage;
  let other: FixtureImage;
  let ref: string;
  const mounts: Tmpfs[] = [];
  let n = 0;

  before(async () => {
    registry = await startRegistry();
    image = await buildImage(join(work, 'src'), 'v1', { layers: [2 * MiB, 1 * MiB, 300 * KiB], seed: 'disk-full' });
    other = await buildImage(join(work, 'other'), 'other', { layers: [100 * KiB], seed: 'disk-full-other' });
    ref = `${registry.host}/full/app:v1`;
    await pushImage(image.layoutDir, 'v1', ref);
  });

  after(async () => {
    for (const m of mounts) await m.unmount().catch(() => {});
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
  });

  /** A tmpfs of `size` (smaller than the image: 3.3 MiB) */
  async function smallDisk(size: string): Promise<Tmpfs> {
    const m = await mountTmpfs(join(work, `disk-${n++}`), size);
    mounts.push(m);
    return m;
  }

  async function pull(args: string[]): Promise<CliResult & { ms: number }> {
    const t0 = performance.now();
    const r = await runCli(['pull', '--no-mdns', ref, '-q', '--linger', '0', ...args], { timeoutMs: BOUND_MS * 2 });
    return { ...r, ms: performance.now() - t0 };
  }

  function assertDiskFull(r: CliResult & { ms: number }, path: string) {
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.ok(r.stderr.startsWith(`swarmpull: no space left on device: cannot write ${path}`), r.stderr);
    assert.ok(r.ms < BOUND_MS, `failed within ${BOUND_MS} ms (took ${Math.round(r.ms)})`);
  }

  const sources = () => new Map([image.config, ...image.layers].map((d) => [d.digest, join(image.layoutDir, 'blobs/sha256', d.digest.slice(7))]));

  test('the store fills up: exit 1 naming the store, nothing unverified marked complete, no output; with space the pull resumes', async () => {
    const disk = await smallDisk('1m');
    const store = join(disk.dir, 'store');
    const out = join(work, 'oci-store-full');
    const r = await pull(['--oci', out, '--store', store]);
    assertDiskFull(r, store);
    const kept = await checkStore(store, sources());
    await assert.rejects(stat(out), 'no layout was written');
    assert.deepEqual((await listFiles(work)).filter((f) => f.startsWith('oci-store-full')), [], 'no temporary layout left beside it');

    await disk.resize('64m');
    const again = await pull(['--oci', out, '--store', store, '--json']);
    assert.equal(again.code, 0, again.stderr);
    const result = JSON.parse(again.stdout);
    const keptBytes = kept.blobs.reduce((a, d) => a + ([image.config, ...image.layers].find((b) => b.digest === d)?.size ?? 0), 0);
    assert.ok(result.bytes.cached >= keptBytes, `what fitted before was kept: cached ${result.bytes.cached} >= ${keptBytes}`);
    await checkStore(store, sources());
    await umociUnpack(out, 'v1', join(work, 'bundle'));
  });

  test('a store with no space at all: exit 1 naming the store, nothing half-written in it', async () => {
    const disk = await smallDisk('256k');
    const store = join(disk.dir, 'store');
    await run('mkdir', ['-p', join(store, 'blobs/sha256'), join(store, 'partial/sha256'), join(store, 'tmp'), join(store, 'in-use')]);
    await run('sh', ['-c', `dd if=/dev/zero of=${join(disk.dir, 'filler')} bs=4k 2>/dev/null || true`]);
    const r = await pull(['--oci', join(work, 'oci-no-space'), '--store', store]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`no space left on device: cannot write ${store}`));
    assert.ok(r.ms < BOUND_MS);
    await checkStore(store, sources());
    assert.deepEqual(await listFiles(store), [], 'nothing half-written in the store');
    await assert.rejects(stat(join(work, 'oci-no-space')));
  });

  test('--oci on a full disk, new directory: exit 1 naming it, nothing left there; with space it is written', async () => {
    const disk = await smallDisk('1m');
    const out = join(disk.dir, 'layout');
    const store = join(work, `store-${n}`);
    const r = await pull(['--oci', out, '--store', store]);
    assertDiskFull(r, out);
    assert.deepEqual(await listFiles(disk.dir), [], 'no partial layout, no temporary directory');
    await checkStore(store, sources());
    await disk.resize('64m');
    const again = await pull(['--oci', out, '--store', store]);
    assert.equal(again.code, 0, again.stderr);
    await umociUnpack(out, 'v1', join(work, 'bundle'));
  });

  test('--oci on a full disk, existing layout: its index.json and files untouched, the other image still valid', async () => {
    const disk = await smallDisk('1m');
    const out = join(disk.dir, 'layout');
    await run('skopeo', ['copy', '--quiet', `oci:${other.layoutDir}:other`, `oci:${out}:other`]);
    const files = await listFiles(out);
    const index = await readFile(join(out, 'index.json'));
    const store = join(work, `store-${n}`);
    const r = await pull(['--oci', out, '--store', store]);
    assertDiskFull(r, out);
    assert.ok((await readFile(join(out, 'index.json'))).equals(index), 'index.json byte-identical');
    assert.deepEqual(await listFiles(out), files, 'no blob or temporary file added');
    await umociUnpack(out, 'other', join(work, 'bundle'));
    await disk.resize('64m');
    const again = await pull(['--oci', out, '--store', store]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual((await layoutTags(out)).sort(), ['other', 'v1']);
    await umociUnpack(out, 'v1', join(work, 'bundle'));
    await umociUnpack(out, 'other', join(work, 'bundle'));
  });

  test('-o FILE on a full disk: exit 1 naming FILE, the old FILE untouched, no truncated tar; with space it is written', async () => {
    const disk = await smallDisk('1m');
    const tar = join(disk.dir, 'image.tar');
    await writeFile(tar, 'an older file\n');
    const store = join(work, `store-${n}`);
    const r = await pull(['-o', tar, '--store', store]);
    assertDiskFull(r, tar);
    assert.deepEqual(await listFiles(disk.dir), ['image.tar'], 'no temporary tar left');
    assert.equal(await readFile(tar, 'utf8'), 'an older file\n');

    await rm(tar);
    const fresh = await pull(['-o', tar, '--store', store]);
    assertDiskFull(fresh, tar);
    assert.deepEqual(await listFiles(disk.dir), [], 'no truncated tar at the path');

    await disk.resize('64m');
    const again = await pull(['-o', tar, '--store', store]);
    assert.equal(again.code, 0, again.stderr);
    const dir = join(work, `skopeo-${n}`);
    await run('skopeo', ['copy', '--quiet', `docker-archive:${tar}`, `dir:${dir}`]);
    for (const l of image.layers) await stat(join(dir, l.diffId.slice(7)));
  });
});
