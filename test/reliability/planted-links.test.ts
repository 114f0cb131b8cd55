// A local user who can write into an output directory (an OCI layout's blobs/sha256, the directory of `-o FILE`)
// plants symlinks where a root pull will write: at the temp names older versions used (`<name>.tmp-<pid>`, the
// pid known the moment the process starts) and at the blobs' own names. The pull must never write or chmod
// through them: the victim files outside stay as they were, and the output is a valid image.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { chmod, lstat, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type Registry } from '../support/registry.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { buildImage, pushImage, type FixtureImage } from '../support/fixtures.ts';
import { collect, startCli, type CliResult } from '../support/cli.ts';
import { umociUnpack } from './helpers.ts';

const run = promisify(execFile);
const KiB = 1024;
const VICTIM_BODY = 'root:$6$precious-hash:20000:0:99999:7:::\n';

let registry: Registry;
let proxy: FaultProxy;
let work: string;
let image: FixtureImage;
let n = 0;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'swarmpull-planted-'));
  registry = await startRegistry();
  image = await buildImage(join(work, 'src'), 'v1', { layers: [300 * KiB, 20 * KiB], seed: 'planted' });
  await pushImage(image.layoutDir, 'v1', `${registry.host}/planted/app:v1`);
  proxy = await startFaultProxy({ target: registry.host });
  // The links are planted once the pid is known; the manifest waits a moment so none is planted late.
  proxy.plan((req) => (req.url.includes('/manifests/') ? { delayMs: 500 } : undefined));
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

const fresh = (name: string, dir = work) => join(dir, `${name}-${n++}`);
const hex = (digest: string) => digest.slice('sha256:'.length);
const blobs = () => [image.manifest, image.config, ...image.layers];

interface Victim {
  path: string;
  check(): Promise<void>;
}

/** A root-owned file outside the output, mode 0600, that the pull must leave exactly as it is. */
async function victim(body = VICTIM_BODY): Promise<Victim> {
  const path = fresh('victim');
  await writeFile(path, body, { mode: 0o600 });
  await chmod(path, 0o600);
  return {
    path,
    async check() {
      const st = await lstat(path);
      assert.ok(st.isFile(), `${path} is still a regular file`);
      assert.equal(st.mode & 0o7777, 0o600, `${path} kept its mode`);
      const now = await readFile(path, 'utf8');
      assert.ok(now === body, `${path} kept its content (now ${now.length} bytes: ${JSON.stringify(now.slice(0, 40))}…)`);
    },
  };
}

/** Start a pull, plant links as soon as its pid is known, wait for it to end. */
async function pullPlanting(args: string[], plant: (pid: number) => Promise<void>): Promise<CliResult> {
  const proc = startCli(['pull', '--no-mdns', `${proxy.host}/planted/app:v1`, '-q', '--linger', '0', ...args]);
  const done = collect(proc, 120_000);
  await plant(proc.pid!);
  return done;
}

/** An OCI layout with no image yet whose blobs/sha256 anyone may write (the attacker's foothold). */
async function writableLayout(): Promise<string> {
  const dir = fresh('oci');
  await mkdir(join(dir, 'blobs/sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await chmod(join(dir, 'blobs/sha256'), 0o777);
  return dir;
}

/** Symlinks at every old temp name of the layout's blobs and index.json, and at two blobs' own names. */
async function plantInLayout(dir: string, pid: number, target: Victim, sameSize: Victim): Promise<void> {
  const dest = join(dir, 'blobs/sha256');
  for (const d of blobs()) await symlink(target.path, join(dest, `${hex(d.digest)}.tmp-${pid}`));
  await symlink(target.path, join(dir, `index.json.tmp-${pid}`));
  // A link where a blob belongs: to a file of another size, and to one of the blob's own size (not the blob).
  await symlink(target.path, join(dest, hex(image.layers[0]!.digest)));
  await symlink(sameSize.path, join(dest, hex(image.config.digest)));
}

async function assertLayoutBlobsAreFiles(dir: string, mode?: number): Promise<void> {
  for (const d of blobs()) {
    const st = await lstat(join(dir, 'blobs/sha256', hex(d.digest)));
    assert.ok(st.isFile(), `blob ${hex(d.digest).slice(0, 12)} is a regular file, not a planted link`);
    if (mode !== undefined) assert.equal(st.mode & 0o777, mode, `blob ${hex(d.digest).slice(0, 12)} mode`);
  }
}

test('--oci into a layout whose blobs/sha256 others can write: nothing written or chmod-ed through planted links', async () => {
  const dir = await writableLayout();
  const target = await victim();
  const sameSize = await victim('x'.repeat(image.config.size));
  const r = await pullPlanting(['--oci', dir, '--store', fresh('store')], (pid) => plantInLayout(dir, pid, target, sameSize));
  await target.check();
  await sameSize.check();
  assert.equal(r.code, 0, r.stderr);
  await assertLayoutBlobsAreFiles(dir);
  await umociUnpack(dir, 'v1', fresh('bundle'));
});

test('--oci with the store on another filesystem (blobs copied, not linked): no write through links, blobs 0644', async () => {
  const shm = await mkdtemp('/dev/shm/swarmpull-planted-');
  try {
    assert.notEqual((await stat(shm)).dev, (await stat(work)).dev, '/dev/shm is another filesystem');
    const dir = await writableLayout();
    const target = await victim();
    const sameSize = await victim('x'.repeat(image.config.size));
    const r = await pullPlanting(['--oci', dir, '--store', join(shm, 'store')], (pid) => plantInLayout(dir, pid, target, sameSize));
    await target.check();
    await sameSize.check();
    assert.equal(r.code, 0, r.stderr);
    // Copies are made readable for others (the store's files are 0444; a layout is for others to read).
    await assertLayoutBlobsAreFiles(dir, 0o644);
    await umociUnpack(dir, 'v1', fresh('bundle'));
  } finally {
    await rm(shm, { recursive: true, force: true });
  }
});

test('-o FILE in a directory others can write: the old temp name and FILE itself planted as links, neither followed', async () => {
  const dir = fresh('out');
  await mkdir(dir, { mode: 0o777 });
  await chmod(dir, 0o777);
  const file = join(dir, 'image.tar');
  const atTemp = await victim();
  const atFile = await victim();
  await symlink(atFile.path, file);
  const r = await pullPlanting(['-o', file, '--store', fresh('store')], (pid) => symlink(atTemp.path, `${file}.tmp-${pid}`));
  await atTemp.check();
  await atFile.check();
  assert.equal(r.code, 0, r.stderr);
  assert.ok((await lstat(file)).isFile(), 'FILE is the tar now, the planted link replaced');
  await run('skopeo', ['copy', '--quiet', `docker-archive:${file}`, `dir:${fresh('dir')}`]);
});
