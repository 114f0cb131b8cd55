// Registry faults over TLS, end to end: the CLI talks HTTPS (CA from a temp certs.d) to a fault-injecting proxy
// in front of the real registry. A body that trickles, and a server that ignores Range.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type Registry } from '../support/registry.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { buildImage, pushImage, type FixtureImage } from '../support/fixtures.ts';
import { makePki, writeCertsD, type TestPki } from '../support/tls.ts';
import { runCli, type CliResult } from '../support/cli.ts';
import { blobBytes, blobRequestInfo, blobRequests, checkStore, umociUnpack } from './helpers.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const repo = 'tls-faults/app';

let work: string;
let pki: TestPki;
let registry: Registry;
let proxy: FaultProxy;
let image: FixtureImage;
let certsD: string;
let n = 0;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'swarmpull-tls-faults-'));
  pki = await makePki();
  registry = await startRegistry();
  // 20 MiB: without peers a pull asks the registry for runs of 4, 8, then 16 MiB (blob-swarm.ts), so a server that
  // ignores Range would be read from byte 0 three times.
  image = await buildImage(join(work, 'src'), 'v1', { layers: [20 * MiB, 40 * KiB], seed: 'tls-faults' });
  await pushImage(image.layoutDir, 'v1', `${registry.host}/${repo}:v1`);
  proxy = await startFaultProxy({ target: registry.host, tls: { cert: pki.serverCert, key: pki.serverKey } });
  certsD = join(work, 'certs.d');
  await writeCertsD(certsD, proxy.host, { 'ca.crt': pki.caPath });
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
  await pki?.remove();
  await rm(work, { recursive: true, force: true });
});

afterEach(() => proxy.plan());

const fresh = (name: string) => join(work, `${name}-${n++}`);
const big = () => image.layers[0]!;
const sources = () => new Map([image.config, ...image.layers].map((d) => [d.digest, join(image.layoutDir, 'blobs/sha256', d.digest.slice(7))]));

async function pull(boundMs: number, ...extra: string[]): Promise<CliResult & { out: string; store: string }> {
  const out = fresh('oci');
  const store = fresh('store');
  const t0 = performance.now();
  const r = await runCli(['pull', '--no-mdns', `${proxy.host}/${repo}:v1`, '--oci', out, '--store', store, '-q', '--linger', '0', ...extra], {
    env: { ...process.env, SWARMPULL_CERTS_D: certsD },
    timeoutMs: boundMs * 2,
  });
  const ms = performance.now() - t0;
  assert.ok(ms < boundMs, `the pull ended within ${boundMs} ms (took ${Math.round(ms)}): ${r.stderr}`);
  assert.equal(r.code, 0, r.stderr);
  await umociUnpack(out, 'v1', fresh('bundle'));
  await checkStore(store, sources());
  return { ...r, out, store };
}

test('a body that trickles a byte every 2 s (never idle for the 30 s timeout): dropped after the pace window and resumed', async () => {
  let first = true;
  proxy.plan((req) => {
    if (req.method !== 'GET' || !req.url.includes(`/blobs/${big().digest}`) || !first) return;
    first = false;
    return { trickle: { afterBytes: 16 * KiB, bytes: 1, everyMs: 2000 } };
  });
  const from = proxy.requests.length;
  // 30 s of waiting for 32 KiB, then the retry: well within 90 s. Before the bound the pull never ended.
  await pull(90_000, '--registry-only');
  const asked = blobRequests(proxy, from).filter((r) => r.url.includes(big().digest));
  assert.ok(asked.length >= 2, 'the trickling request was dropped and the range asked again');
  assert.ok(asked[0]!.bytes < 64 * KiB, `the trickle was cut short (${asked[0]!.bytes} bytes)`);
  assert.ok(blobRequestInfo(asked[1]!).start >= 16 * KiB, `resumed after the bytes that arrived (at ${blobRequestInfo(asked[1]!).start})`);
});

test('a server that ignores Range (200 for every range): each blob crosses the network once', async () => {
  proxy.plan((req) => (req.url.includes('/blobs/') ? { dropRequestHeaders: ['range'] } : undefined));
  const from = proxy.requests.length;
  await pull(60_000);
  const served = blobBytes(proxy, from);
  const size = image.config.size + image.layers.reduce((a, l) => a + l.size, 0);
  assert.ok(blobRequests(proxy, from).filter((r) => r.url.includes(big().digest)).length >= 1);
  assert.ok(served <= size * 1.1, `served ${(served / MiB).toFixed(1)} MiB for ${(size / MiB).toFixed(1)} MiB of blobs`);
});
