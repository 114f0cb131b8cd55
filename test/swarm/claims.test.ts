// Registry claims across slow runs, end to end on loopback: two pullers share one image whose registry (the real
// docker-registry behind test/support/fault-proxy.ts) sends each blob answer slowly, so that every registry run
// outlasts CLAIM_MS. The pullers must keep counting each other's claims (each renews its own while its bytes arrive),
// so that neither fetches the other's units: the registry sends the image about once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLAIM_MS } from '../../lib/swarm/fetch-policy.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { buildImage, pushImage, type FixtureImage } from '../support/fixtures.ts';
import { runCli } from '../support/cli.ts';
import { startRegistry, type Registry } from '../support/registry.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
/** per blob answer: a 1 MiB run (the unit of an 8 MiB layer: 4 pieces of 256 KiB) takes ~26 s, past CLAIM_MS, and
 *  each of its pieces ~6.4 s; two pullers x 4 answers send the image in ~26 s */
const RATE = 40 * KiB;

let registry: Registry;
let proxy: FaultProxy;
let work: string;
let image: FixtureImage;
let ref: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'swarmpull-claims-'));
  registry = await startRegistry();
  image = await buildImage(join(work, 'src'), 'v1', { layers: [8 * MiB], seed: 'claims' });
  await pushImage(image.layoutDir, 'v1', `${registry.host}/claims/app:v1`);
  proxy = await startFaultProxy({ target: registry.host });
  proxy.plan((req) => (req.method === 'GET' && req.url.includes('/blobs/') ? { rateBytesPerSec: RATE } : undefined));
  ref = `${proxy.host}/claims/app:v1`;
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

test('registry runs slower than CLAIM_MS keep their claims: no claim lapses, the registry sends the image about once', async (t) => {
  assert.ok((MiB / RATE) * 1000 > CLAIM_MS, 'a run must outlast CLAIM_MS, or nothing is tested');
  const ports = [await freePort(), await freePort()];
  const served0 = proxy.bytesServed;
  const pulls = await Promise.all(
    ports.map((port, i) =>
      runCli(
        ['pull', ref, '--oci', join(work, `oci-${i}`), '--store', join(work, `store-${i}`), '--no-mdns', '--port', String(port), '--peers', `127.0.0.1:${ports[1 - i]}`, '--json', '--debug', '-q', '--linger', '15'],
        { timeoutMs: 180_000 },
      ),
    ),
  );
  for (const [i, r] of pulls.entries()) assert.equal(r.code, 0, `puller ${i} exited ${r.code ?? r.signal}:\n${r.stderr.slice(-4000)}`);
  const json = pulls.map((r) => JSON.parse(r.stdout) as { bytes: { registry: number; peers: number } });
  const egress = proxy.bytesServed - served0;
  t.diagnostic(`registry sent ${(egress / image.size).toFixed(2)}x the image; from the registry ${json.map((j) => j.bytes.registry).join(', ')}, from peers ${json.map((j) => j.bytes.peers).join(', ')}`);
  for (const [i, r] of pulls.entries()) {
    const lapsed = r.stderr.split('\n').filter((l) => /claim lapsed/.test(l));
    assert.deepEqual(lapsed, [], `puller ${i}: an honest peer's claims lapsed`);
    assert.ok(json[i]!.bytes.peers > 0, `puller ${i} got nothing from its peer: nothing was tested`);
  }
  assert.ok(egress <= 1.1 * image.size, `the registry sent ${(egress / image.size).toFixed(2)}x the image`);
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
