// Manifests from a real anonymous docker-registry, directly and through the fault proxy.
import { test, before, after, afterEach, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { RegistryClient, type RegistryClientOptions } from '../../lib/registry/client.ts';
import { ExitCode } from '../../lib/errors.ts';
import { sha256Digest } from '../../lib/image/digest.ts';
import { MediaType } from '../../lib/image/types.ts';
import { startRegistry, type Registry } from '../support/registry.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { buildImage, buildMultiArch, pushImage, type FixtureImage } from '../support/fixtures.ts';
import { rejectsWith, tempDir } from './helpers.ts';

let registry: Registry;
let proxy: FaultProxy;
let work: string;
let image: FixtureImage;
let v2s2Digest: string;
let indexDigest: string;
let listDigest: string;

before(async () => {
  work = await tempDir('manifest-test');
  registry = await startRegistry();
  proxy = await startFaultProxy({ target: registry.host });
  image = await buildImage(join(work, 'single'), 'v1', { layers: [3000, 5000] });
  await pushImage(image.layoutDir, 'v1', `${registry.host}/app:oci`);
  v2s2Digest = await pushImage(image.layoutDir, 'v1', `${registry.host}/app:v2s2`, { format: 'v2s2' });
  const multi = await buildMultiArch(join(work, 'multi'), 'v1', [
    { layers: [1000], platform: { os: 'linux', architecture: 'amd64' } },
    { layers: [1000], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
  ]);
  indexDigest = await pushImage(multi.layoutDir, 'v1', `${registry.host}/multi:oci`, { all: true });
  listDigest = await pushImage(multi.layoutDir, 'v1', `${registry.host}/multi:list`, { all: true, format: 'v2s2' });
});
after(async () => {
  await proxy?.stop();
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});
afterEach(() => proxy.plan());

function client(t: TestContext, host: string, opts: Partial<RegistryClientOptions> = {}): RegistryClient {
  const c = new RegistryClient({ registry: host, retries: 2, backoffMs: 5, ...opts });
  t.after(() => c.close());
  return c;
}

test('OCI manifest by tag: exact bytes, digest and media type', async (t) => {
  const m = await client(t, registry.host).getManifest('app', 'oci');
  assert.equal(m.digest, image.digest);
  assert.equal(m.mediaType, MediaType.ociManifest);
  assert.deepEqual(m.body, await readFile(join(image.layoutDir, 'blobs/sha256', image.digest.slice(7))));
});

test('Docker schema2 manifest (pushed with --format v2s2)', async (t) => {
  const m = await client(t, registry.host).getManifest('app', 'v2s2');
  assert.equal(m.digest, v2s2Digest);
  assert.equal(m.mediaType, MediaType.dockerManifest);
  assert.equal(sha256Digest(m.body), v2s2Digest);
});

test('OCI index and Docker manifest list', async (t) => {
  const c = client(t, registry.host);
  const index = await c.getManifest('multi', 'oci');
  assert.equal(index.digest, indexDigest);
  assert.equal(index.mediaType, MediaType.ociIndex);
  const list = await c.getManifest('multi', 'list');
  assert.equal(list.digest, listDigest);
  assert.equal(list.mediaType, MediaType.dockerList);
  assert.equal((JSON.parse(list.body.toString()) as { manifests: unknown[] }).manifests.length, 2);
});

test('by digest: verified against the digest asked for', async (t) => {
  const c = client(t, registry.host);
  const m = await c.getManifest('app', image.digest);
  assert.equal(m.digest, image.digest);
  const list = await c.getManifest('multi', listDigest);
  assert.equal(list.mediaType, MediaType.dockerList);
});

test('resolveManifest uses HEAD: digest, media type and size without the body', async (t) => {
  const c = client(t, proxy.host);
  const r = await c.resolveManifest('app', 'oci');
  assert.deepEqual(r, { digest: image.digest, mediaType: MediaType.ociManifest, size: image.manifest.size });
  assert.deepEqual(proxy.requests.map((q) => q.method), ['HEAD']);
  assert.deepEqual(await c.resolveManifest('multi', listDigest), {
    digest: listDigest,
    mediaType: MediaType.dockerList,
    size: (await c.getManifest('multi', listDigest)).body.length,
  });
});

test('resolveManifest falls back to GET when HEAD gives no Docker-Content-Digest', async (t) => {
  proxy.requests.length = 0;
  proxy.plan((req) => (req.method === 'HEAD' ? { headers: { 'docker-content-digest': '' } } : undefined));
  const r = await client(t, proxy.host).resolveManifest('app', 'v2s2');
  assert.deepEqual(r, { digest: v2s2Digest, mediaType: MediaType.dockerManifest, size: r.size });
  assert.deepEqual(proxy.requests.map((q) => q.method), ['HEAD', 'GET']);
});

test('missing tag and missing repository: not found (exit 3)', async (t) => {
  const c = client(t, registry.host);
  await rejectsWith(c.getManifest('app', 'nosuchtag'), ExitCode.notFound, new RegExp(`${registry.host}/app: manifest nosuchtag: .*not found`));
  await rejectsWith(c.getManifest('nosuchrepo', 'v1'), ExitCode.notFound, /nosuchrepo/);
  await rejectsWith(c.getManifest('app', 'sha256:' + 'a'.repeat(64)), ExitCode.notFound);
  await rejectsWith(c.resolveManifest('app', 'nosuchtag'), ExitCode.notFound, /not found/);
});

test('a malformed tag or digest is a usage error (exit 2), sent nowhere', async (t) => {
  const c = client(t, proxy.host);
  proxy.requests.length = 0;
  await rejectsWith(c.getManifest('app', '../../etc'), ExitCode.usage);
  await rejectsWith(c.getManifest('app', 'sha256:xyz'), ExitCode.usage);
  assert.equal(proxy.requests.length, 0);
});

test('a body altered on the way (Docker-Content-Digest kept) is an integrity error (exit 5)', async (t) => {
  const flip = (b: Buffer) => {
    const copy = Buffer.from(b);
    copy[copy.indexOf('"size"') + 2] ^= 0x01;
    return copy;
  };
  proxy.plan((req) => (req.url.includes('/manifests/') ? { mutateBody: flip } : undefined));
  const c = client(t, proxy.host);
  await rejectsWith(c.getManifest('app', 'oci'), ExitCode.integrity, /digest mismatch/);
  await rejectsWith(c.getManifest('app', image.digest), ExitCode.integrity, new RegExp(`expected ${image.digest}`));
});

test('a manifest over 4 MiB is refused with a clear error, with or without Content-Length', async (t) => {
  const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc(4 << 20, ' ')]);
  for (const chunked of [false, true]) {
    proxy.requests.length = 0;
    proxy.plan((req) => (req.url.includes('/manifests/') ? { mutateBody: pad, chunked } : undefined));
    await rejectsWith(client(t, proxy.host).getManifest('app', 'oci'), ExitCode.failure, /larger than the 4 MiB/);
    assert.equal(proxy.requests.length, 1, 'not retried');
  }
});

/** Answer manifest requests with this body and content type, with a matching Docker-Content-Digest. */
function serveManifest(body: string, contentType: string) {
  proxy.plan((req) =>
    req.url.includes('/manifests/')
      ? { status: 200, body, headers: { 'content-type': contentType, 'docker-content-digest': sha256Digest(body) } }
      : undefined,
  );
}

test('a schema1 manifest is refused with a clear error', async (t) => {
  serveManifest(
    JSON.stringify({ schemaVersion: 1, name: 'app', tag: 'old', architecture: 'amd64', fsLayers: [], history: [], signatures: [] }),
    'application/vnd.docker.distribution.manifest.v1+prettyjws',
  );
  await rejectsWith(client(t, proxy.host).getManifest('app', 'old'), ExitCode.failure, /schema 1 manifests are not supported/);
});

test('unsupported media types and non-JSON bodies are refused', async (t) => {
  const c = client(t, proxy.host);
  serveManifest(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.artifact.manifest.v1+json' }), 'application/vnd.oci.artifact.manifest.v1+json');
  await rejectsWith(c.getManifest('app', 'x'), ExitCode.failure, /unsupported manifest media type "application\/vnd\.oci\.artifact\.manifest\.v1\+json"/);
  serveManifest('<html>hello</html>', 'text/html');
  await rejectsWith(c.getManifest('app', 'x'), ExitCode.failure, /not valid JSON/);
  serveManifest(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] }), MediaType.ociManifest);
  await rejectsWith(c.getManifest('app', 'x'), ExitCode.failure, /says .*but the manifest says/);
});

test('media type from the body when Content-Type is generic', async (t) => {
  const body = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] });
  serveManifest(body, 'application/json; charset=utf-8');
  const m = await client(t, proxy.host).getManifest('app', 'x');
  assert.equal(m.mediaType, MediaType.ociIndex);
  assert.equal(m.digest, sha256Digest(body));
});

test('503 then recovery: the manifest arrives after retries', async (t) => {
  let failures = 2;
  proxy.requests.length = 0;
  proxy.plan(() => (failures-- > 0 ? { status: 503 } : undefined));
  const m = await client(t, proxy.host).getManifest('app', 'oci');
  assert.equal(m.digest, image.digest);
  assert.deepEqual(proxy.requests.map((r) => r.status), [503, 503, 200]);
});

test('a manifest body that trickles (a byte every 300 ms, under the bodyTimeout): dropped after the pace window, asked again', { timeout: 30_000 }, async (t) => {
  let first = true;
  proxy.requests.length = 0;
  proxy.plan((req) => (req.method === 'GET' && first ? ((first = false), { trickle: { afterBytes: 10, bytes: 1, everyMs: 300 } }) : undefined));
  const t0 = performance.now();
  const m = await client(t, proxy.host, { timeoutMs: 1500 }).getManifest('app', 'oci');
  assert.equal(m.digest, image.digest);
  assert.ok(performance.now() - t0 < 10_000);
  assert.equal(proxy.requests.filter((r) => r.method === 'GET').length, 2);
});

test('an aborted signal stops the request', async (t) => {
  await assert.rejects(client(t, registry.host).getManifest('app', 'oci', AbortSignal.abort()), { name: 'AbortError' });
  const ac = new AbortController();
  proxy.plan(() => ({ status: 503, retryAfter: 30 }));
  setTimeout(() => ac.abort(), 100);
  const t0 = performance.now();
  await assert.rejects(client(t, proxy.host).getManifest('app', 'oci', ac.signal), { name: 'AbortError' });
  assert.ok(performance.now() - t0 < 2000);
});
