// Several swarmpull processes on one host at once, sharing a store: each blob is fetched once, every pull
// succeeds, outputs stay valid; a pull while `serve` seeds the same store.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdir, mkdtemp, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { startRegistry, type Registry } from '../support/registry.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { buildImage, pushImage, type FixtureImage } from '../support/fixtures.ts';
import { collect, runCli, startCli } from '../support/cli.ts';
import { blobRequestInfo, blobRequests, checkStore, layoutTags, umociUnpack } from './helpers.ts';

const run = promisify(execFile);
const KiB = 1024;
const MiB = 1024 * KiB;

let registry: Registry;
let proxy: FaultProxy;
let work: string;
/** a and b share their first layer */
let a: FixtureImage;
let b: FixtureImage;
let n = 0;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'swarmpull-concurrency-'));
  registry = await startRegistry();
  a = await buildImage(join(work, 'a'), 'a', { layers: [2 * MiB, 1 * MiB, 200 * KiB], seed: 'conc' });
  b = await buildImage(join(work, 'b'), 'b', { layers: [2 * MiB, 700 * KiB], seed: 'conc' });
  assert.equal(a.layers[0]!.digest, b.layers[0]!.digest, 'the fixtures share a layer');
  await pushImage(a.layoutDir, 'a', `${registry.host}/conc/app:a`);
  await pushImage(b.layoutDir, 'b', `${registry.host}/conc/app:b`);
  proxy = await startFaultProxy({ target: registry.host });
  // Slow enough that pulls started together overlap for seconds.
  proxy.plan((req) => (req.url.includes('/blobs/') ? { rateBytesPerSec: 1 * MiB } : undefined));
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

const fresh = (name: string) => join(work, `${name}-${n++}`);
const refOf = (image: FixtureImage) => `${proxy.host}/conc/app:${image.tag}`;
const pullArgs = (image: FixtureImage, ...rest: string[]) => ['pull', '--no-mdns', refOf(image), '-q', '--linger', '0', ...rest];
const sources = (...images: FixtureImage[]) =>
  new Map(images.flatMap((i) => [i.config, ...i.layers].map((d) => [d.digest, join(i.layoutDir, 'blobs/sha256', d.digest.slice(7))] as const)));

/** Body bytes the registry sent per blob digest, from request index `from` on. */
function bytesPerBlob(from: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of blobRequests(proxy, from)) {
    const { digest } = blobRequestInfo(r);
    out.set(digest, (out.get(digest) ?? 0) + r.bytes);
  }
  return out;
}

function assertEachBlobOnce(from: number, ...images: FixtureImage[]) {
  const want = new Map(images.flatMap((i) => [i.config, ...i.layers].map((d) => [d.digest, d.size] as const)));
  assert.deepEqual(bytesPerBlob(from), want, 'the registry sent each blob exactly once');
}

test('two pulls of one image at once, one store: both succeed, each blob fetched once', async () => {
  const store = fresh('store');
  const oci = fresh('oci');
  const tar = fresh('image.tar');
  const from = proxy.requests.length;
  const [first, second] = await Promise.all([
    runCli([...pullArgs(a, '--oci', oci, '--store', store, '--json')]),
    runCli([...pullArgs(a, '-o', tar, '--store', store, '--json')]),
  ]);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(second.code, 0, second.stderr);
  assertEachBlobOnce(from, a);
  const results = [JSON.parse(first.stdout), JSON.parse(second.stdout)];
  assert.equal(results[0].bytes.registry + results[1].bytes.registry, a.size, 'between them, one image from the registry');
  await checkStore(store, sources(a));
  await umociUnpack(oci, 'a', fresh('bundle'));
  await run('skopeo', ['copy', '--quiet', `docker-archive:${tar}`, `dir:${fresh('dir')}`]);
});

test('two images sharing a layer, pulled at once into one store: the shared layer is fetched once', async () => {
  const store = fresh('store');
  const from = proxy.requests.length;
  const [ra, rb] = await Promise.all([
    runCli([...pullArgs(a, '--oci', fresh('oci'), '--store', store)]),
    runCli([...pullArgs(b, '--oci', fresh('oci'), '--store', store)]),
  ]);
  assert.equal(ra.code, 0, ra.stderr);
  assert.equal(rb.code, 0, rb.stderr);
  assertEachBlobOnce(from, a, b);
  await checkStore(store, sources(a, b));
});

test('four pulls naming one store as `s`, `./s`, `/abs/s/` and a symlink to it: one lock, each blob fetched once', async () => {
  const store = fresh('store');
  await mkdir(store);
  const link = fresh('store-link');
  await symlink(store, link);
  const name = basename(store);
  const spellings = [name, `./${name}`, `${store}/`, basename(link)];
  const from = proxy.requests.length;
  // Relative spellings are relative to the directory the CLI runs in.
  const results = await Promise.all(spellings.map((s) => runCli([...pullArgs(a, '--oci', fresh('oci'), '--store', s)], { cwd: work })));
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  assertEachBlobOnce(from, a);
  await checkStore(store, sources(a));
});

test('three pulls into one new --oci directory at once: all succeed, the layout holds both tags once', async () => {
  const store = fresh('store');
  const oci = fresh('oci');
  const from = proxy.requests.length;
  const results = await Promise.all([a, b, a].map((image) => runCli([...pullArgs(image, '--oci', oci, '--store', store)])));
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  assertEachBlobOnce(from, a, b);
  assert.deepEqual((await layoutTags(oci)).sort(), ['a', 'b']);
  await umociUnpack(oci, 'a', fresh('bundle'));
  await umociUnpack(oci, 'b', fresh('bundle'));
  // The losers of the race merged in and cleaned up after themselves.
  const siblings = (await run('ls', ['-a', work])).stdout.split('\n').filter((f) => f.startsWith(oci.slice(work.length + 1) + '.'));
  assert.deepEqual(siblings, [], 'no temporary layout left beside it');
});

test('a pull while `serve` seeds the same store: the pull succeeds from the store and the registry, serve keeps running', async (t) => {
  const store = fresh('store');
  const seeded = await runCli([...pullArgs(a, '--oci', fresh('oci'), '--store', store)]);
  assert.equal(seeded.code, 0, seeded.stderr);

  const serve: ChildProcess = startCli(['serve', '--no-mdns', '--port', '0', '--store', store]);
  const served = collect(serve, 180_000);
  t.after(() => serve.kill('SIGKILL'));
  let log = '';
  serve.stderr!.on('data', (d) => (log += d));
  for (let i = 0; i < 200 && !/serving \d+ blobs/.test(log); i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(log, /serving 5 blobs/, 'serve seeds the manifest, config and layers of a');

  const from = proxy.requests.length;
  const [rb, ra] = await Promise.all([
    runCli([...pullArgs(b, '--oci', fresh('oci'), '--store', store, '--json')]),
    runCli([...pullArgs(a, '-o', fresh('a.tar'), '--store', store, '--json')]),
  ]);
  assert.equal(rb.code, 0, rb.stderr);
  assert.equal(ra.code, 0, ra.stderr);
  assert.equal(JSON.parse(ra.stdout).bytes.registry, 0, 'a came from the store alone');
  const shared = a.layers[0]!.size;
  assert.equal(JSON.parse(rb.stdout).bytes.cached, shared, 'b reused the layer it shares with a');
  assert.deepEqual(bytesPerBlob(from), new Map([b.config, b.layers[1]!].map((d) => [d.digest, d.size])), 'only what the store lacked');
  await checkStore(store, sources(a, b));

  assert.equal(serve.exitCode, null, 'serve is still running');
  serve.kill('SIGTERM');
  const r = await served;
  assert.equal(r.code, 0, r.stderr);
  await stat(join(store, 'blobs/sha256', b.config.digest.slice(7)));
});
