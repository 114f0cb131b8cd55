// Blob ranges from a real docker-registry (htpasswd), directly and through the fault proxy:
// exact bytes, retries, resumption after cut connections, redirects to another host.
import { test, before, after, afterEach, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { RegistryClient, type RegistryClientOptions } from '../../lib/registry/client.ts';
import { ExitCode } from '../../lib/errors.ts';
import { startRegistry, type Registry } from '../support/registry.ts';
import { startFaultProxy, type FaultProxy, type ProxyRequest } from '../support/fault-proxy.ts';
import { buildImage, pushImage } from '../support/fixtures.ts';
import { assertNoSecrets, logCollector, rejectsWith, tempDir } from './helpers.ts';

const USER = 'alice';
const PASSWORD = 'blob-test-password-7';
const creds = { username: USER, password: PASSWORD };

let registry: Registry;
let proxy: FaultProxy;
/** "another host": same registry behind 127.0.0.2, authenticating by URL like a presigned storage link */
let storage: FaultProxy;
let work: string;
let big: { digest: string; data: Buffer };
let small: { digest: string; data: Buffer };
const logs = logCollector();

before(async () => {
  work = await tempDir('blob-test');
  registry = await startRegistry({ htpasswd: [{ user: USER, password: PASSWORD }] });
  proxy = await startFaultProxy({ target: registry.host });
  storage = await startFaultProxy({
    target: registry.host,
    address: '127.0.0.2',
    upstreamAuthorization: 'Basic ' + Buffer.from(`${USER}:${PASSWORD}`).toString('base64'),
  });
  const image = await buildImage(join(work, 'img'), 'v1', { layers: [1_500_000, 20_000] });
  await pushImage(image.layoutDir, 'v1', `${registry.host}/app:v1`, { creds: `${USER}:${PASSWORD}` });
  const load = async (digest: string) => ({ digest, data: await readFile(join(image.layoutDir, 'blobs/sha256', digest.slice(7))) });
  big = await load(image.layers[0]!.digest);
  small = await load(image.layers[1]!.digest);
});
after(async () => {
  await proxy?.stop();
  await storage?.stop();
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
  assertNoSecrets(logs.lines, [PASSWORD]);
});
afterEach(() => {
  proxy.plan();
  storage.plan();
  proxy.requests.length = 0;
  storage.requests.length = 0;
});

function client(t: TestContext, host: string, opts: Partial<RegistryClientOptions> = {}): RegistryClient {
  const c = new RegistryClient({ registry: host, creds, retries: 5, backoffMs: 5, log: logs.log, ...opts });
  t.after(() => c.close());
  return c;
}

/** Read [start, end) and check the deliveries: in order, contiguous, never twice, exactly the file's bytes. */
async function readRange(c: RegistryClient, blob: { digest: string; data: Buffer }, start: number, end: number, signal?: AbortSignal) {
  const chunks: Buffer[] = [];
  let next = start;
  let busy = false;
  await c.readBlob('app', blob.digest, start, end, async (chunk, offset) => {
    assert.equal(busy, false, 'onData called again before its promise settled');
    assert.equal(offset, next, 'deliveries are contiguous and never repeat');
    busy = true;
    chunks.push(Buffer.from(chunk));
    next += chunk.length;
    await new Promise((r) => setImmediate(r));
    busy = false;
  }, signal);
  assert.equal(next, end);
  assert.ok(Buffer.concat(chunks).equals(blob.data.subarray(start, end)), `bytes ${start}-${end} differ`);
}

/** A blob request past the registry's auth check (a real registry answers 401 before anything else). */
const isAuthedBlob = (req: ProxyRequest) => req.url.includes('/blobs/') && req.headers.authorization !== undefined;

/** Blob requests a proxy saw, leaving out the anonymous first try each new client makes (answered 401). */
const blobRequests = (p: FaultProxy) => p.requests.filter((r) => r.url.includes('/blobs/') && r.status !== 401);

test('whole blobs and ranges are byte-exact', async (t) => {
  const c = client(t, registry.host);
  await readRange(c, small, 0, small.data.length);
  await readRange(c, big, 0, big.data.length);
  await readRange(c, big, 0, 1);
  await readRange(c, big, 100, 5000);
  await readRange(c, big, big.data.length - 10, big.data.length);
  await c.readBlob('app', big.digest, 7, 7, () => assert.fail('nothing to deliver'));
});

test('Range is sent as bytes=start-(end-1)', async (t) => {
  await readRange(client(t, proxy.host), big, 1000, 2000);
  assert.deepEqual(blobRequests(proxy).map((r) => r.headers.range), ['bytes=1000-1999']);
});

test('a server that ignores Range (200): the client skips forward and stops at the end', async (t) => {
  proxy.plan(() => ({ dropRequestHeaders: ['range'] }));
  const c = client(t, proxy.host);
  await readRange(c, big, 700_000, 700_100);
  await readRange(c, small, 0, small.data.length);
});

test('a server that ignores Range: pieces asked in order stream the blob once, not once per piece from byte 0', async (t) => {
  proxy.plan((req) => (req.url.includes('/blobs/') ? { dropRequestHeaders: ['range'] } : undefined));
  const c = client(t, proxy.host);
  const piece = 256 * 1024;
  for (let at = 0; at < big.data.length; at += piece) await readRange(c, big, at, Math.min(at + piece, big.data.length));
  const served = blobRequests(proxy).reduce((a, r) => a + r.bytes, 0);
  assert.ok(served <= big.data.length * 1.1, `served ${served} bytes for a blob of ${big.data.length}`);
});

test('a server that ignores Range: ranges in parallel and out of order share one pass; a range behind it gets another', async (t) => {
  proxy.plan((req) => (req.url.includes('/blobs/') ? { dropRequestHeaders: ['range'] } : undefined));
  const c = client(t, proxy.host);
  const k = 256 * 1024;
  await readRange(c, big, 10, 20); // the first 200: the stream is now at byte 20
  await Promise.all([[3 * k, 4 * k], [k, 2 * k], [5 * k, big.data.length], [2 * k, 3 * k]].map(([s, e]) => readRange(c, big, s!, e!)));
  await readRange(c, big, 0, 100); // behind: a second pass
  const served = blobRequests(proxy).reduce((a, r) => a + r.bytes, 0);
  assert.ok(served <= big.data.length * 2.2, `served ${served} bytes for a blob of ${big.data.length}`);
});

test('a body that trickles (a byte every 300 ms, under the bodyTimeout): dropped after the pace window, resumed', { timeout: 30_000 }, async (t) => {
  let first = true;
  proxy.plan((req) => (isAuthedBlob(req) && first ? ((first = false), { trickle: { afterBytes: 1000, bytes: 1, everyMs: 300 } }) : undefined));
  const t0 = performance.now();
  await readRange(client(t, proxy.host, { timeoutMs: 1500 }), small, 0, small.data.length);
  assert.ok(performance.now() - t0 < 10_000);
  const ranges = blobRequests(proxy).map((r) => Number(/^bytes=(\d+)-/.exec(String(r.headers.range))?.[1]));
  assert.equal(ranges.length, 2);
  assert.ok(ranges[1]! >= 1000, `resumed at ${ranges[1]}`);
});

test('a body that always trickles: unreachable (exit 6) in bounded time; its bytes do not renew the retries', { timeout: 60_000 }, async (t) => {
  proxy.plan((req) => (isAuthedBlob(req) ? { trickle: { afterBytes: 0, bytes: 1, everyMs: 200 } } : undefined));
  const t0 = performance.now();
  await rejectsWith(client(t, proxy.host, { timeoutMs: 1000, retries: 2 }).readBlob('app', small.digest, 0, small.data.length, () => {}), ExitCode.unreachable, /body too slow/);
  assert.ok(performance.now() - t0 < 15_000);
});

test('429 with Retry-After: waits as told, then succeeds', async (t) => {
  let first = true;
  proxy.plan((req) => (req.url.includes('/blobs/') && first ? ((first = false), { status: 429, retryAfter: 1 }) : undefined));
  const t0 = performance.now();
  await readRange(client(t, proxy.host), small, 0, small.data.length);
  assert.ok(performance.now() - t0 >= 950, 'Retry-After honoured');
  assert.deepEqual(blobRequests(proxy).map((r) => r.status), [429, 206]);
});

test('a 503 storm that then recovers', async (t) => {
  let storm = 4;
  proxy.plan((req) => (req.url.includes('/blobs/') && storm-- > 0 ? { status: 503 } : undefined));
  await readRange(client(t, proxy.host), big, 0, big.data.length);
  assert.deepEqual(blobRequests(proxy).map((r) => r.status), [503, 503, 503, 503, 206]);
});

test('connections cut mid-body: resumed from the first byte not delivered, never twice', async (t) => {
  let cuts = 3;
  proxy.plan((req) => (isAuthedBlob(req) && cuts-- > 0 ? { cutAfterBytes: 300_000 } : undefined));
  await readRange(client(t, proxy.host), big, 10, big.data.length);
  const ranges = blobRequests(proxy).map((r) => r.headers.range);
  assert.equal(ranges.length, 4);
  assert.equal(ranges[0], `bytes=10-${big.data.length - 1}`);
  // Every byte the cut connections carried was delivered, so each resumed range starts where the cut was.
  assert.deepEqual(ranges, [10, 300_010, 600_010, 900_010].map((s) => `bytes=${s}-${big.data.length - 1}`));
});

test('a permanent 503 ends as unreachable (exit 6) in bounded time', async (t) => {
  proxy.plan(() => ({ status: 503 }));
  const t0 = performance.now();
  await rejectsWith(client(t, proxy.host, { retries: 3, backoffMs: 10 }).readBlob('app', small.digest, 0, 10, () => {}), ExitCode.unreachable, /HTTP 503.*gave up after 4 attempts/);
  assert.ok(performance.now() - t0 < 3000);
  assert.equal(blobRequests(proxy).length, 4);
});

test('a closed port or an unknown host name: unreachable (exit 6)', async (t) => {
  const port = await closedPort();
  await rejectsWith(client(t, `127.0.0.1:${port}`, { retries: 2, backoffMs: 5 }).getManifest('app', 'v1'), ExitCode.unreachable, /connection refused/);
  await rejectsWith(client(t, '127.0.0.1:' + port, { retries: 1, backoffMs: 5 }).readBlob('app', small.digest, 0, 10, () => {}), ExitCode.unreachable);
  await rejectsWith(client(t, 'registry.swarmpull-test.invalid', { retries: 2, backoffMs: 5 }).getManifest('app', 'v1'), ExitCode.unreachable, /host name not found/);
});

test('a registry that does not answer in time: unreachable (exit 6)', async (t) => {
  proxy.plan(() => ({ delayMs: 3000 }));
  const t0 = performance.now();
  await rejectsWith(client(t, proxy.host, { retries: 1, backoffMs: 5, timeoutMs: 300 }).readBlob('app', small.digest, 0, 10, () => {}), ExitCode.unreachable, /no response headers in time/);
  assert.ok(performance.now() - t0 < 2500);
});

test('redirect to another host: no Authorization there, URL reused for later ranges, re-asked after 403/410', async (t) => {
  proxy.plan((req) =>
    isAuthedBlob(req) ? { redirectTo: `http://${storage.host}${req.url}?X-Amz-Signature=presigned-secret-42` } : undefined,
  );
  const c = client(t, proxy.host);
  await readRange(c, big, 0, 1000);
  assert.equal(blobRequests(proxy).length, 1);
  assert.match(String(blobRequests(proxy)[0]!.headers.authorization), /^Basic /, 'the registry got the credentials');
  assert.equal(storage.requests.length, 1);
  assert.equal(storage.requests[0]!.headers.authorization, undefined, 'the other host did not');
  assert.equal(storage.requests[0]!.headers.range, 'bytes=0-999');

  // Later ranges go straight to the cached URL.
  await readRange(c, big, 1000, 50_000);
  await readRange(c, big, 50_000, big.data.length);
  assert.equal(blobRequests(proxy).length, 1);
  assert.deepEqual(storage.requests.map((r) => r.headers.range), ['bytes=0-999', 'bytes=1000-49999', `bytes=50000-${big.data.length - 1}`]);
  assert.ok(storage.requests.every((r) => r.headers.authorization === undefined && r.url.includes('X-Amz-Signature')));

  // The link expires: 403, then (after a fresh redirect) 410. Each time the registry is asked again.
  for (const expired of [403, 410]) {
    let once = true;
    storage.plan(() => (once ? ((once = false), { status: expired }) : undefined));
    const before = blobRequests(proxy).length;
    await readRange(c, big, 5, 500);
    assert.equal(blobRequests(proxy).length, before + 1, `asked the registry again after ${expired}`);
    assert.deepEqual(storage.requests.slice(-2).map((r) => r.status), [expired, 206]);
  }
  assert.ok(!logs.lines.join('\n').includes('presigned-secret-42'), 'presigned URL queries stay out of the log');
});

test('a redirect that stays on the registry host keeps Authorization; a loop ends with a clear error', async (t) => {
  proxy.plan((req) => (isAuthedBlob(req) && !req.url.includes('hop') ? { redirectTo: `${req.url}?hop=1` } : undefined));
  await readRange(client(t, proxy.host), small, 0, 100);
  assert.ok(blobRequests(proxy).every((r) => String(r.headers.authorization).startsWith('Basic ')));
  proxy.plan((req) => (isAuthedBlob(req) ? { redirectTo: req.url } : undefined));
  await rejectsWith(client(t, proxy.host).readBlob('app', small.digest, 0, 100, () => {}), ExitCode.failure, /more than 5 redirects/);
});

test('more bytes than asked: rejected', async (t) => {
  proxy.plan((req) => (req.url.includes('/blobs/') ? { mutateBody: (b) => Buffer.concat([b, Buffer.from('extra')]) } : undefined));
  await rejectsWith(client(t, proxy.host).readBlob('app', small.digest, 0, 100, () => {}), ExitCode.integrity, /more bytes than/);
});

test('a missing blob is not found (exit 3)', async (t) => {
  await rejectsWith(client(t, registry.host).readBlob('app', 'sha256:' + 'b'.repeat(64), 0, 10, () => {}), ExitCode.notFound, /blob sha256:b+ .*not found/);
});

test("onData's errors are the caller's: passed through, never retried", async (t) => {
  const boom = new Error('disk full');
  await assert.rejects(client(t, proxy.host).readBlob('app', big.digest, 0, big.data.length, () => { throw boom; }), (err) => err === boom);
  assert.equal(blobRequests(proxy).length, 1);
});

test('abort during a transfer or a back-off stops at once', async (t) => {
  const ac = new AbortController();
  const c = client(t, proxy.host);
  await assert.rejects(c.readBlob('app', big.digest, 0, big.data.length, () => ac.abort(), ac.signal), { name: 'AbortError' });
  proxy.plan(() => ({ status: 503, retryAfter: 30 }));
  const ac2 = new AbortController();
  setTimeout(() => ac2.abort(), 100);
  const t0 = performance.now();
  await assert.rejects(c.readBlob('app', small.digest, 0, 10, () => {}, ac2.signal), { name: 'AbortError' });
  assert.ok(performance.now() - t0 < 2000);
});

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}
