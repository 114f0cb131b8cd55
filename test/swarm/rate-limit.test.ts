// --max-download-rate and --max-upload-rate hold, for the registry and for peers, across every connection of the
// process together: the image is two layers of 2 MiB, fetched at once over two connections, so a limit per
// connection would let it through in half the time. Lower bounds only (a busy machine is only ever slower).
// Loopback, no root: --no-mdns, peers given with --peers.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startRegistry, stopProcess, type Registry } from '../support/registry.ts';
import { buildImage, pushImage, type FixtureImage } from '../support/fixtures.ts';
import { runCli, servingPort, startCli, type CliResult } from '../support/cli.ts';

const run = promisify(execFile);
const MiB = 1024 * 1024;
/** 1 MiB/s with a burst of a quarter second: 4 MiB take at least 3.75 s */
const RATE = '1M';
const AT_LEAST_MS = 3000;

describe('rate limits', () => {
  let work: string;
  let registry: Registry;
  let image: FixtureImage;
  let ref: string;
  let seeded: string;
  const servers: ChildProcess[] = [];
  let n = 0;
  const fresh = (name: string) => join(work, `${name}-${++n}`);

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'swarmpull-rate-'));
    registry = await startRegistry();
    image = await buildImage(join(work, 'src'), 'v1', { layers: [2 * MiB, 2 * MiB], seed: 'rate' });
    ref = `${registry.host}/rate/app:v1`;
    await pushImage(image.layoutDir, 'v1', ref);
    seeded = fresh('seeded');
    const r = await pull([], seeded);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    for (const p of servers) await stopProcess(p);
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
  });

  function pull(args: string[], store = fresh('store'), oci = fresh('oci')): Promise<CliResult> {
    return runCli(['pull', ref, '--no-mdns', '--oci', oci, '--store', store, '--json', '-q', '--linger', '0', ...args], { timeoutMs: 120_000 });
  }

  /** `swarmpull serve` of the seeded store on a free port; resolves with the port once it serves */
  async function serve(args: string[]): Promise<number> {
    const p = startCli(['serve', '--no-mdns', '--port', '0', '--store', seeded, ...args]);
    servers.push(p);
    return servingPort(p);
  }

  /** exit 0, a valid layout, and the --json result */
  async function valid(r: CliResult, oci: string) {
    assert.equal(r.code, 0, r.stderr);
    await run('umoci', ['unpack', '--image', `${oci}:v1`, fresh('bundle')]);
    return JSON.parse(r.stdout) as { bytes: { total: number; registry: number; peers: number }; durationMs: number };
  }

  test('--max-download-rate: registry reads', async (t) => {
    const oci = fresh('oci');
    const j = await valid(await pull(['--max-download-rate', RATE, '--registry-only'], fresh('store'), oci), oci);
    t.diagnostic(`${(j.bytes.total / MiB).toFixed(1)} MiB from the registry at ${RATE}/s: ${j.durationMs} ms`);
    assert.equal(j.bytes.registry, image.size);
    assert.ok(j.durationMs >= AT_LEAST_MS, `${j.durationMs} ms`);
  });

  test('--max-download-rate: reads from a peer', async (t) => {
    const port = await serve([]);
    const oci = fresh('oci');
    const j = await valid(await pull(['--max-download-rate', RATE, '--no-registry', '--peers', `127.0.0.1:${port}`], fresh('store'), oci), oci);
    t.diagnostic(`${(j.bytes.total / MiB).toFixed(1)} MiB from a peer at ${RATE}/s: ${j.durationMs} ms`);
    assert.equal(j.bytes.peers, image.size);
    assert.ok(j.durationMs >= AT_LEAST_MS, `${j.durationMs} ms`);
    // Without the limit the same pull is not held back (no timing asserted: the machine is shared).
    const free = fresh('oci');
    const u = await valid(await pull(['--no-registry', '--peers', `127.0.0.1:${port}`], fresh('store'), free), free);
    t.diagnostic(`the same without a limit: ${u.durationMs} ms`);
  });

  test('serve --max-upload-rate: what a seeder sends', async (t) => {
    const port = await serve(['--max-upload-rate', RATE]);
    const oci = fresh('oci');
    const j = await valid(await pull(['--no-registry', '--peers', `127.0.0.1:${port}`], fresh('store'), oci), oci);
    t.diagnostic(`${(j.bytes.total / MiB).toFixed(1)} MiB from a seeder limited to ${RATE}/s: ${j.durationMs} ms`);
    assert.equal(j.bytes.peers, image.size);
    assert.ok(j.durationMs >= AT_LEAST_MS, `${j.durationMs} ms`);
  });

  test('bad rates are usage errors', async () => {
    for (const bad of ['0', 'fast', '-1M']) {
      const r = await pull(['--max-upload-rate', bad]);
      assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
      assert.match(r.stderr, /--max-upload-rate/);
    }
  });
});
