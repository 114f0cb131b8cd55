// End to end with the registry gone: a pull pinned by digest gets its manifests (an index and the chosen platform's
// manifest too) and its blobs from peers alone; a pull by tag fails with exit 6 and says why; a registry that dies
// mid-pull leaves the rest to peers; what neither can supply fails with exit 6 in bounded time.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { copyFile, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { buildMultiArch, pushImage } from '../support/fixtures.ts';
import { createSwarmLan, ok, skipWithoutNetns, MiB, type PullOutcome, type PullRun, type SwarmLan } from './swarm-lan.ts';

const skip = skipWithoutNetns;
const CORRUPT_SEEDER = fileURLToPath(new URL('./fixtures/corrupt-seeder.ts', import.meta.url));

/** the lines a failed pull printed as `swarmpull: …` */
const errorLines = (o: PullOutcome) => o.stderr.split('\n').filter((l) => l.startsWith('swarmpull: '));

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

describe('the registry gone: pulls by digest from peers', { skip }, () => {
  let s: SwarmLan;
  const servers: PullRun[] = [];
  /** the single-platform image, tag and digest: REGISTRY/e2e/app:v1@sha256:… */
  let pinned: string;
  /** a multi-arch image pinned by its index digest */
  let multi: Awaited<ReturnType<typeof buildMultiArch>>;
  let multiPinned: string;

  before(async () => {
    s = await createSwarmLan({ hosts: 3, rateMbit: 100, layers: [3 * MiB, 2 * MiB], seed: 'offline' });
    pinned = `${s.ref}@${s.image.digest}`;
    multi = await buildMultiArch(join(s.work, 'multi'), 'v1', [
      { layers: [MiB], seed: 'offline-multi' },
      { layers: [MiB], seed: 'offline-multi', platform: { os: 'linux', architecture: 'arm64' } },
    ]);
    const multiRef = `${s.registry.host}/e2e/multi:v1`;
    assert.equal(await pushImage(multi.layoutDir, 'v1', multiRef, { all: true }), multi.digest);
    multiPinned = `${multiRef}@${multi.digest}`;
    // h0 holds both images (the amd64 one of the index) while the registry is up.
    for (const ref of [pinned, multiPinned]) ok(await s.pull(0, ['--linger', '0'], { ref }).done, `h0 ${ref}`);
  });
  after(async () => {
    for (const r of servers) r.proc.kill('SIGTERM');
    await s?.destroy();
  });

  async function serve(host: number, args: string[] = [], store?: string): Promise<PullRun> {
    const r = s.serve(host, args, store ? { store } : {});
    servers.push(r);
    await r.waitForStderr(/serving \d+ blobs/, 20_000);
    return r;
  }

  test('the registry dies mid-pull: peers supply the rest', async (t) => {
    // Slowed down so that the registry is stopped with most of the image still to come.
    const r = s.pull(1, ['--max-download-rate', '1M', '--linger', '0'], { ref: pinned, store: 'midway', timeoutMs: 120_000 });
    const rx0 = s.lan.rxBytes(1);
    const deadline = Date.now() + 30_000;
    while (s.lan.rxBytes(1) - rx0 < MiB && Date.now() < deadline && r.proc.exitCode === null) await sleep(50);
    assert.equal(r.proc.exitCode, null, `h1 ended before the registry was stopped:\n${r.stderr}`);
    await s.stopRegistry();
    const stoppedAt = performance.now();
    // A seeder appears; mDNS (lookups repeat with back-off) finds it.
    await serve(0);
    const o = await r.done;
    const j = ok(o, 'h1');
    await s.validate(r);
    t.diagnostic(`registry stopped after ${(j.bytes.registry / MiB).toFixed(2)} MiB; ${(j.bytes.peers / MiB).toFixed(2)} MiB from the seeder; done ${secs(performance.now() - stoppedAt)} after the stop`);
    assert.equal(j.bytes.total, s.image.size);
    assert.ok(j.bytes.registry > 0 && j.bytes.peers > 0, JSON.stringify(j.bytes));
    // (bytes of a registry run that the registry cut off are counted, and the piece fetched again from the seeder)
    assert.ok(j.bytes.registry + j.bytes.peers >= s.image.size, JSON.stringify(j.bytes));
  });

  test('by digest, mDNS: the manifest and every blob from peers', async (t) => {
    const r = s.pull(1, ['--linger', '0'], { ref: pinned, store: 'offline' });
    const o = await r.done;
    const j = ok(o, 'h1');
    await s.validate(r);
    t.diagnostic(`pull ${secs(j.durationMs)} (process ${secs(o.ms)}): ${JSON.stringify(j.bytes)}`);
    assert.equal(j.digest, s.image.digest);
    assert.equal(j.bytes.peers, j.bytes.total);
    assert.equal(j.bytes.registry, 0);
    assert.match(o.stderr, /manifest sha256:\w+ from peers/);
    // Progress without a terminal: a line per blob saying where its bytes came from.
    for (const d of [s.image.config, ...s.image.layers]) assert.match(o.stderr, new RegExp(`blob ${d.digest.slice(7, 19)} done, .*\\(peers `));
    // Peers were asked at the registry's first refused connection, not after the client's retries ran out.
    const retries = o.stderr.slice(0, o.stderr.search(/manifest sha256:\w+ from peers/)).match(/; retry \d+\/\d+ in/g)?.length ?? 0;
    assert.ok(retries < 5, `${retries} registry retries before peers answered:\n${o.stderr}`);
    assert.ok(o.ms < 45_000, `took ${secs(o.ms)}:\n${o.stderr}`);
  });

  test('a multi-arch image by its index digest: index, platform manifest and blobs from peers', async () => {
    const r = s.pull(1, ['--linger', '0'], { ref: multiPinned, store: 'offline-multi' });
    const o = await r.done;
    const j = ok(o, 'h1 multi');
    await s.validate(r);
    assert.equal(j.digest, multi.digest);
    assert.equal(j.manifestDigest, multi.platforms[0]!.manifest.digest);
    assert.equal(j.bytes.peers, j.bytes.total);
    assert.equal(j.bytes.registry, 0);
    assert.equal(o.stderr.match(/manifest sha256:\w+ from peers/g)?.length, 2, o.stderr);
  });

  test('static peers (--no-mdns --peers) work the same', async () => {
    const r = s.pull(2, ['--no-mdns', '--peers', s.hosts[0]!.address, '--linger', '0'], { ref: pinned, store: 'static' });
    const j = ok(await r.done, 'h2');
    await s.validate(r);
    assert.equal(j.bytes.peers, j.bytes.total);
  });

  test('a peer serving a forged manifest is caught by the digest and banned; an honest one is then used', async (t) => {
    // h2 claims to hold the manifest (and nothing else) and flips a byte in what it sends.
    const layout = join(s.work, 'liar');
    await mkdir(join(layout, 'blobs/sha256'), { recursive: true });
    const hex = s.image.digest.slice('sha256:'.length);
    await copyFile(join(s.image.layoutDir, 'blobs/sha256', hex), join(layout, 'blobs/sha256', hex));
    const liar: ChildProcess = s.lan.spawn(2, process.execPath, [CORRUPT_SEEDER, '--layout', layout, '--port', '7882', '--corrupt-every', '1'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      await once(createInterface({ input: liar.stdout! }), 'line'); // listening
      const liarAddr = `${s.hosts[2]!.address}:7882`;
      // The liar alone: nothing to pull, and it is banned.
      const alone = await s.pull(1, ['--no-mdns', '--peers', liarAddr], { ref: pinned, store: 'liar-alone', timeoutMs: 120_000, debug: false }).done;
      assert.equal(alone.code, 6, `exit ${alone.code ?? alone.signal}:\n${alone.stderr}`);
      assert.match(alone.stderr, new RegExp(`banning peer ${s.hosts[2]!.address}: sent \\d+ bytes that do not match ${s.image.digest}`));
      assert.match(errorLines(alone).at(-1)!, /no peer sent manifest/);
      // The liar and an honest seeder: the pull succeeds whichever is asked first.
      const r = s.pull(1, ['--no-mdns', '--peers', `${liarAddr},${s.hosts[0]!.address}`, '--linger', '0'], { ref: pinned, store: 'liar-and-honest' });
      const j = ok(await r.done, 'h1');
      await s.validate(r);
      assert.equal(j.bytes.peers, j.bytes.total);
      t.diagnostic(`with both: ${/banning peer/.test(r.stderr) ? 'the liar was asked first and banned' : 'the honest seeder answered first'}`);
    } finally {
      liar.kill('SIGKILL');
    }
  });

  test('by tag: exit 6, one line saying tags are resolved only at the registry', async () => {
    const r = s.pull(2, [], { store: 'by-tag', timeoutMs: 120_000, debug: false });
    const o = await r.done;
    assert.equal(o.code, 6, `exit ${o.code ?? o.signal}:\n${o.stderr}`);
    assert.equal(o.stdout, '');
    const lines = errorLines(o);
    assert.equal(lines.length, 1, o.stderr);
    assert.match(lines[0]!, /registry \S+ is unreachable/);
    assert.match(lines[0]!, /tags are resolved only at the registry.*pull by digest/);
  });

  test('a manifest no peer has: exit 6 in bounded time', async () => {
    const unknown = `${s.registry.host}/e2e/app@sha256:${randomBytes(32).toString('hex')}`;
    const r = s.pull(2, ['-q'], { ref: unknown, store: 'unknown', timeoutMs: 120_000, debug: false });
    const o = await r.done;
    assert.equal(o.code, 6, `exit ${o.code ?? o.signal}:\n${o.stderr}`);
    const lines = errorLines(o);
    assert.equal(lines.length, 1, o.stderr);
    assert.match(lines[0]!, /no peer sent manifest sha256:\w+ either/);
    assert.ok(o.ms < 60_000, `took ${secs(o.ms)}`);
  });

  test('a layer no peer has: exit 6 in bounded time, saying so', async (t) => {
    // h2 serves h0's blobs but one layer; h1 knows only h2.
    const holey = s.storeOf(2, 'holey');
    const from = join(s.storeOf(0), 'blobs/sha256');
    await mkdir(join(holey, 'blobs/sha256'), { recursive: true });
    const missing = s.image.layers[0]!.digest.slice('sha256:'.length);
    for (const hex of await readdir(from)) if (hex !== missing) await copyFile(join(from, hex), join(holey, 'blobs/sha256', hex));
    await serve(2, ['--no-mdns'], 'holey');
    const r = s.pull(1, ['--no-mdns', '--peers', s.hosts[2]!.address, '-q'], { ref: pinned, store: 'holey-pull', timeoutMs: 120_000, debug: false });
    const o = await r.done;
    t.diagnostic(`failed after ${secs(o.ms)}: ${o.stderr.trim()}`);
    assert.equal(o.code, 6, `exit ${o.code ?? o.signal}:\n${o.stderr}`);
    const lines = errorLines(o);
    assert.equal(lines.length, 1, o.stderr);
    assert.match(lines[0]!, new RegExp(`blob sha256:${missing}: the registry is unreachable and no peer`));
    assert.ok(o.ms < 90_000, `took ${secs(o.ms)}`);
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
