// Hostile input and secrets: path tricks in references, manifests and indexes are refused before any file is
// touched; oversized manifests and descriptors whose sizes lie are refused; no password or token ever reaches
// stdout, stderr, the store or an output, with --debug and --json on.
import { test, before, after, afterEach, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MediaType } from '../../lib/image/types.ts';
import { startRegistry, type Registry } from '../support/registry.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { startTokenServer, type TokenServer } from '../support/token-server.ts';
import { buildImage, pushImage, type FixtureImage } from '../support/fixtures.ts';
import { runCli, type CliResult } from '../support/cli.ts';
import { checkStore, listFiles, umociUnpack } from './helpers.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const BOUND_MS = 60_000;

let work: string;
let image: FixtureImage;
let n = 0;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'swarmpull-security-'));
  image = await buildImage(join(work, 'src'), 'v1', { layers: [600 * KiB, 40 * KiB], seed: 'security' });
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

const fresh = (name: string) => join(work, `${name}-${n++}`);
const sha256 = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const sources = () => new Map([image.config, ...image.layers].map((d) => [d.digest, join(image.layoutDir, 'blobs/sha256', d.digest.slice(7))]));

function assertOneLine(r: CliResult, code: number, message: RegExp) {
  assert.equal(r.code, code, r.stderr);
  assert.match(r.stderr, message);
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
}

describe('hostile references, manifests and indexes', () => {
  let registry: Registry;
  let proxy: FaultProxy;
  let manifest: Record<string, unknown>;

  before(async () => {
    registry = await startRegistry();
    await pushImage(image.layoutDir, 'v1', `${registry.host}/sec/app:v1`);
    proxy = await startFaultProxy({ target: registry.host });
    manifest = JSON.parse(await readFile(join(image.layoutDir, 'blobs/sha256', image.manifest.digest.slice(7)), 'utf8'));
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
  });
  afterEach(() => proxy.plan());

  /** Serve `body` for the tag's manifest, with a Docker-Content-Digest that vouches for it. */
  function serveManifest(body: Buffer, mediaType: string = MediaType.ociManifest, chunked = false) {
    proxy.plan((req) =>
      req.url.includes('/manifests/')
        ? { mutateBody: () => body, chunked, headers: { 'content-type': mediaType, 'docker-content-digest': sha256(body) } }
        : undefined,
    );
  }

  async function pullAndTime(args: string[]): Promise<CliResult & { store: string; out: string }> {
    const store = fresh('store');
    const out = fresh('oci');
    const t0 = performance.now();
    const r = await runCli(['pull', '--no-mdns', `${proxy.host}/sec/app:v1`, '--oci', out, '--store', store, '-q', '--linger', '0', ...args], { timeoutMs: BOUND_MS * 2 });
    assert.ok(performance.now() - t0 < BOUND_MS, 'bounded time');
    return { ...r, store, out };
  }

  test('path tricks in references: usage error (exit 2), nothing created', async () => {
    const host = registry.host;
    const refs = [
      `${host}/sec/app@sha256:../../../../tmp/x`,
      `${host}/sec/app@sha256:${'A'.repeat(64)}`,
      `${host}/sec/app@sha512:${'a'.repeat(128)}`,
      `${host}/sec/app@sha256:${'a'.repeat(64)}/../../x`,
      `${host}/../../etc/passwd:v1`,
      `${host}/sec/..:v1`,
      `${host}/sec/app:../../x`,
      `${host}/sec/app:v1/../../x`,
      `${host}/sec/app%2f..%2f..:v1`,
      `/etc/passwd`,
    ];
    for (const ref of refs) {
      const store = fresh('store');
      const out = fresh('oci');
      const r = await runCli(['pull', '--no-mdns', ref, '--oci', out, '--store', store]);
      assertOneLine(r, 2, /invalid image reference/);
      await assert.rejects(stat(store), `${ref}: no store created`);
      await assert.rejects(stat(out), `${ref}: no output created`);
      const resolved = await runCli(['resolve', ref]);
      assertOneLine(resolved, 2, /invalid image reference/);
    }
  });

  test('path tricks in a manifest\'s descriptors: refused (exit 1) before any blob is fetched or written', async () => {
    const trap = fresh('pwned');
    const bad = [`sha256:../../../../../..${trap}`, `sha256:${'a'.repeat(64)}/../x`, `sha256:${'A'.repeat(64)}`, 'sha256:', `md5:${'a'.repeat(32)}`];
    for (const digest of bad) {
      for (const where of ['config', 'layer'] as const) {
        const m = structuredClone(manifest) as { config: { digest: string }; layers: { digest: string }[] };
        if (where === 'config') m.config.digest = digest;
        else m.layers[1]!.digest = digest;
        serveManifest(Buffer.from(JSON.stringify(m)));
        const from = proxy.requests.length;
        const r = await pullAndTime([]);
        assertOneLine(r, 1, /malformed manifest.*digest is not sha256/);
        assert.deepEqual(proxy.requests.slice(from).filter((q) => q.url.includes('/blobs/')), [], `${digest}: no blob asked for`);
        assert.deepEqual((await listFiles(r.store)).filter((f) => !f.startsWith('in-use/')), [], `${digest} in ${where}: nothing written to the store`);
        await assert.rejects(stat(r.out));
      }
    }
    await assert.rejects(stat(trap), 'nothing written outside');
  });

  test('path tricks in an index entry: refused (exit 1), nothing fetched or written', async () => {
    for (const digest of [`sha256:../../${'a'.repeat(58)}`, `sha256:${'a'.repeat(64)}/..`]) {
      const index = {
        schemaVersion: 2,
        mediaType: MediaType.ociIndex,
        manifests: [{ mediaType: MediaType.ociManifest, digest, size: 500, platform: { os: 'linux', architecture: 'amd64' } }],
      };
      serveManifest(Buffer.from(JSON.stringify(index)), MediaType.ociIndex);
      const from = proxy.requests.length;
      const r = await pullAndTime([]);
      assertOneLine(r, 1, /malformed manifest.*digest is not sha256/);
      assert.equal(proxy.requests.length - from, 1, 'only the index was asked for');
      assert.deepEqual((await listFiles(r.store)).filter((f) => !f.startsWith('in-use/')), []);
    }
  });

  test('manifests over 4 MiB, with or without Content-Length: refused (exit 1)', async () => {
    const huge = Buffer.from(JSON.stringify({ ...manifest, annotations: { padding: 'x'.repeat(4 * MiB + 1) } }));
    for (const chunked of [false, true]) {
      serveManifest(huge, MediaType.ociManifest, chunked);
      const r = await pullAndTime([]);
      assertOneLine(r, 1, /larger than the 4 MiB/);
      assert.deepEqual((await listFiles(r.store)).filter((f) => !f.startsWith('in-use/')), []);
    }
  });

  test('descriptor sizes that lie (blob larger, smaller, empty): integrity error (exit 5), nothing written', async () => {
    const layer = image.layers[0]!;
    for (const size of [layer.size - 1000, layer.size + 1000, 0]) {
      const m = structuredClone(manifest) as { layers: { size: number }[] };
      m.layers[0]!.size = size;
      serveManifest(Buffer.from(JSON.stringify(m)));
      const r = await pullAndTime([]);
      assertOneLine(r, 5, new RegExp(layer.digest.slice(7)));
      await assert.rejects(stat(r.out), 'no layout');
      await assert.rejects(stat(join(r.store, 'blobs/sha256', layer.digest.slice(7))), 'the blob is not in the store as complete');
      await checkStore(r.store, sources());
    }
  });
});

describe('secrets never reach output, logs, the store or the image', () => {
  const USER = 'deploy';
  const PASSWORD = 'pw-9f3c-secret-Zq';
  let basic: Registry;
  let tokens: TokenServer;
  let tokenRegistry: Registry;

  before(async () => {
    basic = await startRegistry({ htpasswd: [{ user: USER, password: PASSWORD }] });
    await pushImage(image.layoutDir, 'v1', `${basic.host}/sec/app:v1`, { creds: `${USER}:${PASSWORD}` });
    tokens = await startTokenServer({ users: { [USER]: PASSWORD } });
    tokenRegistry = await startRegistry({ token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certPem } });
    await pushImage(image.layoutDir, 'v1', `${tokenRegistry.host}/sec/app:v1`, { creds: `${USER}:${PASSWORD}` });
  });
  after(async () => {
    await basic?.stop();
    await tokenRegistry?.stop();
    await tokens?.stop();
  });

  /** The secrets as they could leak: plain, base64 as in Basic auth and docker's config, and every bearer token. */
  const secrets = () => [
    PASSWORD,
    Buffer.from(`${USER}:${PASSWORD}`).toString('base64'),
    Buffer.from(PASSWORD).toString('base64'),
    ...tokens.issued,
  ];

  /** No secret in these texts, nor in any file under `dirs`. */
  async function assertNothingLeaks(what: string, texts: [string, string][], dirs: string[]) {
    const all = [...texts];
    for (const dir of dirs) {
      for (const file of await listFiles(dir)) all.push([join(dir, file), (await readFile(join(dir, file))).toString('latin1')]);
    }
    for (const secret of secrets()) {
      for (const [where, text] of all) assert.ok(!text.includes(secret), `${what}: a secret (${secret.slice(0, 6)}…) in ${where}`);
    }
  }

  /** Pull into an OCI layout with --json --debug, then into a tar with --debug; nothing secret anywhere. */
  async function pullWith(what: string, ref: string, args: string[], env: NodeJS.ProcessEnv, code = 0): Promise<void> {
    const store = fresh('store');
    const oci = fresh('oci');
    const tar = fresh('image.tar');
    const common = ['--no-mdns', '--store', store, '--debug', '--linger', '0', ...args];
    const r = await runCli(['pull', ref, '--oci', oci, '--json', ...common], { env });
    assert.equal(r.code, code, `${what}: ${r.stderr}`);
    assert.match(r.stderr, /swarmpull\[debug\]/, 'debug output was on');
    await assertNothingLeaks(what, [['stdout', r.stdout], ['stderr', r.stderr]], [store, oci]);
    if (code !== 0) return;
    JSON.parse(r.stdout);
    await umociUnpack(oci, 'v1', fresh('bundle'));
    const t = await runCli(['pull', ref, '-o', tar, ...common], { env });
    assert.equal(t.code, 0, `${what} -o: ${t.stderr}`);
    await assertNothingLeaks(`${what} -o`, [['stdout', t.stdout], ['stderr', t.stderr], [tar, (await readFile(tar)).toString('latin1')]], [store]);
  }

  /** An environment without any stored credentials, or with this docker config. */
  async function envWith(config?: object): Promise<NodeJS.ProcessEnv> {
    const dir = fresh('docker-config');
    await mkdir(dir, { recursive: true });
    if (config) await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_CONFIG: dir };
    delete env.REGISTRY_AUTH_FILE;
    return env;
  }

  test('htpasswd registry: --creds, the docker config, and a wrong password', async () => {
    const ref = `${basic.host}/sec/app:v1`;
    await pullWith('--creds', ref, ['--creds', `${USER}:${PASSWORD}`], await envWith());
    const auth = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');
    await pullWith('docker config auths', ref, [], await envWith({ auths: { [basic.host]: { auth } } }));
    await pullWith('wrong password', ref, ['--creds', `${USER}:${PASSWORD}-wrong`], await envWith(), 4);
  });

  test('token registry: --creds and the docker config; the bearer tokens stay secret too', async () => {
    const ref = `${tokenRegistry.host}/sec/app:v1`;
    const issued = tokens.issued.length;
    await pullWith('token --creds', ref, ['--creds', `${USER}:${PASSWORD}`], await envWith());
    assert.ok(tokens.issued.length > issued, 'tokens were issued');
    const auth = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');
    await pullWith('token docker config', ref, [], await envWith({ auths: { [tokenRegistry.host]: { auth } } }));
    await pullWith('token wrong password', ref, ['--creds', `${USER}:nope`], await envWith(), 4);
  });
});
