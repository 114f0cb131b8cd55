// End to end under faults: a fault-injecting proxy in front of a real registry, htpasswd auth, SIGKILL + resume.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startRegistry, type Registry } from '../support/registry.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { buildImage, pushImage, type FixtureImage } from '../support/fixtures.ts';
import { collect, runCli, startCli } from '../support/cli.ts';

const run = promisify(execFile);
const KiB = 1024;

let registry: Registry;
let proxy: FaultProxy;
let work: string;
let image: FixtureImage;
const repo = 'faults/app';

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'swarmpull-faults-'));
  registry = await startRegistry();
  image = await buildImage(join(work, 'src'), 'v1', { layers: [2048 * KiB, 100 * KiB], seed: 'faults' });
  await pushImage(image.layoutDir, 'v1', `${registry.host}/${repo}:v1`);
  proxy = await startFaultProxy({ target: registry.host });
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

const fresh = (name: string) => join(work, `${name}-${Math.random().toString(16).slice(2, 8)}`);
const big = () => image.layers[0]!;
const isBlob = (url: string, digest: string) => url.includes(`/blobs/${digest}`);

test('429 and 503 from the registry are retried; the pull succeeds', async () => {
  let n = 0;
  proxy.plan((req) => {
    if (!req.url.includes('/blobs/')) return;
    n++;
    if (n === 1) return { status: 429, retryAfter: 1 };
    if (n <= 3) return { status: 503 };
  });
  const out = fresh('oci');
  const r = await runCli(['pull', '--no-mdns', `${proxy.host}/${repo}:v1`, '--oci', out, '--store', fresh('store'), '-q']);
  proxy.plan();
  assert.equal(r.code, 0, r.stderr);
  await run('umoci', ['unpack', '--image', `${out}:v1`, fresh('bundle')]);
});

test('SIGKILL mid-pull, then resume: fewer bytes fetched than a full pull, and a valid image', async () => {
  const store = fresh('store');
  let cut = false;
  proxy.plan((req) => {
    if (!isBlob(req.url, big().digest)) return;
    if (!cut) {
      cut = true;
      return { cutAfterBytes: 1200 * KiB };
    }
    return { delayMs: 60_000 };
  });
  const proc = startCli(['pull', '--no-mdns', `${proxy.host}/${repo}:v1`, '--oci', fresh('oci'), '--store', store, '-q']);
  const done = collect(proc, 60_000);
  // wait until the cut happened and the retry hangs, then past the bitfield's 200 ms write-back
  for (let i = 0; i < 100 && !cut; i++) await sleep(100);
  await sleep(1500);
  proc.kill('SIGKILL');
  await done;
  proxy.plan();

  const out = fresh('oci');
  const r = await runCli(['pull', '--no-mdns', `${proxy.host}/${repo}:v1`, '--oci', out, '--store', store, '--json', '-q']);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  // The first request starts at a random piece, so at least one 256 KiB piece landed before the cut.
  assert.ok(result.bytes.cached >= 256 * KiB, `resumed pieces: ${result.bytes.cached}`);
  assert.ok(result.bytes.registry <= image.size - 256 * KiB, `fetched ${result.bytes.registry} of ${image.size}`);
  assert.equal(result.bytes.registry + result.bytes.cached, image.size, 'no byte fetched twice');
  await run('umoci', ['unpack', '--image', `${out}:v1`, fresh('bundle')]);
});

test('a corrupted blob fails with exit 5 and writes nothing', async () => {
  proxy.plan((req) => {
    if (isBlob(req.url, big().digest)) return { mutateBody: (b) => { const c = Buffer.from(b); c[c.length >> 1]! ^= 0xff; return c; } };
  });
  const out = fresh('oci');
  const r = await runCli(['pull', '--no-mdns', `${proxy.host}/${repo}:v1`, '--oci', out, '--store', fresh('store')]);
  proxy.plan();
  assert.equal(r.code, 5, r.stderr);
  assert.match(r.stderr, /failed verification/);
  await assert.rejects(stat(out));
  const tar = fresh('x.tar');
  const t = await runCli(['pull', '--no-mdns', `${proxy.host}/${repo}:v1`, '-o', tar, '--store', fresh('store')]);
  assert.equal(t.code, 0, 'the same pull is fine once the registry is');
});

test('htpasswd registry: good credentials pull, bad ones exit 4, none exit 4', async () => {
  const secured = await startRegistry({ htpasswd: [{ user: 'ops', password: 's3cret-pw' }] });
  try {
    await pushImage(image.layoutDir, 'v1', `${secured.host}/${repo}:v1`, { creds: 'ops:s3cret-pw' });
    const ref = `${secured.host}/${repo}:v1`;
    const env = { ...process.env, DOCKER_CONFIG: fresh('no-docker-config') };
    const ok = await runCli(['pull', '--no-mdns', ref, '--creds', 'ops:s3cret-pw', '--oci', fresh('oci'), '--store', fresh('store'), '--debug'], { env });
    assert.equal(ok.code, 0, ok.stderr);
    assert.doesNotMatch(ok.stderr + ok.stdout, /s3cret-pw/, 'the password never appears in output');
    const bad = await runCli(['pull', '--no-mdns', ref, '--creds', 'ops:wrong', '--oci', fresh('oci'), '--store', fresh('store')], { env });
    assert.equal(bad.code, 4, bad.stderr);
    const none = await runCli(['pull', '--no-mdns', ref, '--oci', fresh('oci'), '--store', fresh('store')], { env });
    assert.equal(none.code, 4, none.stderr);
  } finally {
    await secured.stop();
  }
});
