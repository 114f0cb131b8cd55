// `node test/bench/tls-http2.ts [ROUNDS]`: HTTP/1.1 against HTTP/2 over TLS, on the real docker-registry serving a
// CA of the bench's own: one 64 MiB blob read as four parallel 16 MiB ranges (how a pull asks the registry), with
// undici Agents set up as lib/registry/http.ts does but for allowH2. Prints MiB/s per round and the protocols the
// registry's access log saw. (Loopback only: this machine's kernel has no netem to add a round-trip time.)
import { rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import { makePki } from '../support/tls.ts';
import { startRegistry } from '../support/registry.ts';
import { buildImage, pushImage } from '../support/fixtures.ts';

const MiB = 1 << 20;
const rounds = Number(process.argv[2] ?? 3);
const pki = await makePki();
const registry = await startRegistry({ accessLog: true, tls: { certificate: pki.serverCert, key: pki.serverKey } });
const work = join(tmpdir(), `swarmpull-bench-tls-${process.pid}`);
try {
  const image = await buildImage(join(work, 'img'), 'v1', { layers: [64 * MiB], seed: 'bench-tls' });
  await pushImage(image.layoutDir, 'v1', `${registry.host}/bench:v1`);
  const digest = image.layers[0]!.digest;
  const ca = readFileSync(pki.caPath, 'utf8');
  for (let round = 0; round < rounds; round++) {
    for (const allowH2 of [false, true]) {
      const agent = new Agent({ allowH2, connect: { ca, timeout: 30_000 }, headersTimeout: 30_000, bodyTimeout: 30_000 });
      const t0 = performance.now();
      await Promise.all([0, 1, 2, 3].map(async (i) => {
        const range = `bytes=${i * 16 * MiB}-${(i + 1) * 16 * MiB - 1}`;
        const res = await agent.request({ origin: `https://${registry.host}`, path: `/v2/bench/blobs/${digest}`, method: 'GET', headers: { range } });
        let n = 0;
        for await (const chunk of res.body) n += (chunk as Buffer).length;
        if (n !== 16 * MiB) throw new Error(`${range}: ${n} bytes`);
      }));
      const s = (performance.now() - t0) / 1000;
      console.log(`round ${round + 1} ${allowH2 ? 'HTTP/2 allowed' : 'HTTP/1.1 only'}: 64 MiB in ${s.toFixed(2)} s, ${(64 / s).toFixed(0)} MiB/s`);
      await agent.close();
    }
  }
  const seen = new Set(registry.log().split('\n').filter((l) => l.includes('/blobs/sha256:') && l.includes('" 206 ')).map((l) => /HTTP\/[\d.]+/.exec(l)?.[0]));
  console.log(`protocols of the range requests: ${[...seen].join(', ')}`);
} finally {
  await registry.stop();
  await pki.remove();
  await rm(work, { recursive: true, force: true });
}
