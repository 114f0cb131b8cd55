// Authentication against real docker-registries: htpasswd (Basic challenge) and token auth (Bearer, with the
// tests' own token server); credentials explicit, from DOCKER_CONFIG (auths, credHelpers), REGISTRY_AUTH_FILE.
import { test, before, after, afterEach, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RegistryClient, type RegistryClientOptions } from '../../lib/registry/client.ts';
import { ExitCode } from '../../lib/errors.ts';
import { startRegistry, type Registry } from '../support/registry.ts';
import { startTokenServer, type TokenServer } from '../support/token-server.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { buildImage, pushImage, type FixtureImage } from '../support/fixtures.ts';
import { assertNoSecrets, installCredHelper, logCollector, rejectsWith, setEnv, tempDir, type CredHelper } from './helpers.ts';

const BASIC_USER = 'bob';
const BASIC_PASSWORD = 'htpasswd-secret-1';
const TOKEN_USER = 'carol';
const TOKEN_PASSWORD = 'token-secret-2';
const IDENTITY_TOKEN = 'identity-secret-3';

let work: string;
let image: FixtureImage;
let restoreEnv: () => void;
let dockerConfig: string;
let helper: CredHelper;
const logs = logCollector();
const secrets = [BASIC_PASSWORD, TOKEN_PASSWORD, IDENTITY_TOKEN];

before(async () => {
  work = await tempDir('auth-test');
  image = await buildImage(join(work, 'img'), 'v1', { layers: [40_000] });
  // Credential lookups must see only what each test writes, never the machine's own docker login.
  dockerConfig = join(work, 'docker');
  await mkdir(dockerConfig);
  helper = await installCredHelper(join(work, 'bin'));
  restoreEnv = setEnv({ DOCKER_CONFIG: dockerConfig, REGISTRY_AUTH_FILE: undefined, PATH: `${helper.dir}:${process.env.PATH}` });
});
after(async () => {
  restoreEnv?.();
  await rm(work, { recursive: true, force: true });
});

function client(t: TestContext, host: string, opts: Partial<RegistryClientOptions> = {}): RegistryClient {
  const c = new RegistryClient({ registry: host, retries: 2, backoffMs: 5, log: logs.log, ...opts });
  t.after(() => c.close());
  return c;
}

async function writeDockerConfig(config: object | undefined) {
  if (config) await writeFile(join(dockerConfig, 'config.json'), JSON.stringify(config));
  else await rm(join(dockerConfig, 'config.json'), { force: true });
}

/** Fetch the manifest and a range of the layer: proof that the credentials worked for both endpoints. */
async function pullSomething(c: RegistryClient) {
  const m = await c.getManifest('app', 'v1');
  assert.equal(m.digest, image.digest);
  let got = 0;
  await c.readBlob('app', image.layers[0]!.digest, 0, 1000, (chunk) => void (got += chunk.length));
  assert.equal(got, 1000);
}

describe('Basic (htpasswd)', () => {
  let registry: Registry;
  let proxy: FaultProxy;
  before(async () => {
    registry = await startRegistry({ htpasswd: [{ user: BASIC_USER, password: BASIC_PASSWORD }] });
    proxy = await startFaultProxy({ target: registry.host });
    await pushImage(image.layoutDir, 'v1', `${registry.host}/app:v1`, { creds: `${BASIC_USER}:${BASIC_PASSWORD}` });
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
  });
  afterEach(async () => {
    proxy.plan();
    proxy.requests.length = 0;
    await writeDockerConfig(undefined);
    delete process.env.REGISTRY_AUTH_FILE;
  });

  test('good credentials; after the first challenge they are sent up front', async (t) => {
    const c = client(t, proxy.host, { creds: { username: BASIC_USER, password: BASIC_PASSWORD } });
    await pullSomething(c);
    await pullSomething(c);
    assert.deepEqual(proxy.requests.map((r) => r.status), [401, 200, 206, 200, 206]);
    assert.equal(proxy.requests[0]!.headers.authorization, undefined, 'anonymous first');
  });

  test('wrong password: auth error (exit 4) saying credentials were sent', async (t) => {
    const c = client(t, registry.host, { creds: { username: BASIC_USER, password: 'wrong-password' } });
    await rejectsWith(c.getManifest('app', 'v1'), ExitCode.auth, /authentication failed for app \(HTTP 401; credentials for user "bob" were sent\)/);
  });

  test('no credentials anywhere: auth error (exit 4) saying none were sent', async (t) => {
    await rejectsWith(client(t, registry.host).getManifest('app', 'v1'), ExitCode.auth, /no credentials were sent/);
    await rejectsWith(client(t, registry.host).readBlob('app', image.layers[0]!.digest, 0, 10, () => {}), ExitCode.auth, /no credentials were sent/);
  });

  test('credentials from $DOCKER_CONFIG/config.json auths', async (t) => {
    await writeDockerConfig({ auths: { [`http://${registry.host}`]: { auth: Buffer.from(`${BASIC_USER}:${BASIC_PASSWORD}`).toString('base64') } } });
    await pullSomething(client(t, registry.host));
  });

  test('credentials from a credHelpers entry (docker-credential-swarmtest on PATH)', async (t) => {
    await writeDockerConfig({ credHelpers: { [registry.host]: 'swarmtest' } });
    await helper.set(registry.host, BASIC_USER, BASIC_PASSWORD);
    await pullSomething(client(t, registry.host));
    assert.ok((await helper.asked()).includes(registry.host));
  });

  test('a failing credential helper means anonymous (exit 4), not a crash', async (t) => {
    await writeDockerConfig({ credHelpers: { [registry.host]: 'swarmtest', ['other:1']: 'x' }, credsStore: 'nosuchstore' });
    await helper.set(registry.host, '', '');
    const local = logCollector();
    await rejectsWith(client(t, registry.host, { log: local.log }).getManifest('app', 'v1'), ExitCode.auth, /no credentials were sent/);
    assert.match(local.lines.join('\n'), /docker-credential-swarmtest gave no Username\/Secret/);
  });

  test('credentials from REGISTRY_AUTH_FILE, before DOCKER_CONFIG', async (t) => {
    await writeDockerConfig({ auths: { [registry.host]: { auth: Buffer.from(`${BASIC_USER}:wrong`).toString('base64') } } });
    process.env.REGISTRY_AUTH_FILE = join(work, 'auth.json');
    await writeFile(process.env.REGISTRY_AUTH_FILE, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${BASIC_USER}:${BASIC_PASSWORD}`).toString('base64') } } }));
    await pullSomething(client(t, registry.host));
  });

  test('explicit creds win over stored ones', async (t) => {
    await writeDockerConfig({ auths: { [registry.host]: { auth: Buffer.from(`${BASIC_USER}:${BASIC_PASSWORD}`).toString('base64') } } });
    await rejectsWith(client(t, registry.host, { creds: { username: 'mallory', password: 'nope' } }).getManifest('app', 'v1'), ExitCode.auth, /user "mallory"/);
  });

  test('odd challenges: none, unsupported scheme, garbage', async (t) => {
    const c = client(t, proxy.host, { creds: { username: BASIC_USER, password: BASIC_PASSWORD } });
    proxy.plan(() => ({ status: 401 }));
    await rejectsWith(c.getManifest('app', 'v1'), ExitCode.auth, /401 without a WWW-Authenticate challenge/);
    proxy.plan(() => ({ status: 401, headers: { 'www-authenticate': 'Negotiate abc==' } }));
    await rejectsWith(c.getManifest('app', 'v1'), ExitCode.auth, /unsupported authentication scheme \(negotiate\)/);
    proxy.plan(() => ({ status: 401, headers: { 'www-authenticate': 'Bearer realm="unterminated' } }));
    await rejectsWith(c.getManifest('app', 'v1'), ExitCode.failure, /malformed WWW-Authenticate/);
    proxy.plan(() => ({ status: 401, headers: { 'www-authenticate': 'Bearer realm="file:///etc/passwd"' } }));
    await rejectsWith(c.getManifest('app', 'v1'), ExitCode.auth, /realm is not an http\(s\) URL/);
  });
});

describe('Bearer (token server)', () => {
  let tokens: TokenServer;
  let registry: Registry;
  let proxy: FaultProxy;
  const creds = { username: TOKEN_USER, password: TOKEN_PASSWORD };
  before(async () => {
    tokens = await startTokenServer({ users: { [TOKEN_USER]: TOKEN_PASSWORD }, identityTokens: { [IDENTITY_TOKEN]: TOKEN_USER } });
    registry = await startRegistry({ token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certPem } });
    proxy = await startFaultProxy({ target: registry.host });
    await pushImage(image.layoutDir, 'v1', `${registry.host}/app:v1`, { creds: `${TOKEN_USER}:${TOKEN_PASSWORD}` });
    await pushImage(image.layoutDir, 'v1', `${registry.host}/other:v1`, { creds: `${TOKEN_USER}:${TOKEN_PASSWORD}` });
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
    await tokens?.stop();
    // Nothing secret reached any log line of any client in this file, tokens included.
    assertNoSecrets(logs.lines, [...secrets, ...tokens.issued]);
  });
  afterEach(async () => {
    proxy.plan();
    tokens.expiresIn = 300;
    tokens.tokenField = 'token';
    await writeDockerConfig(undefined);
  });

  test('token flow with credentials; one token per repository scope, reused', async (t) => {
    const c = client(t, registry.host, { creds });
    const before = tokens.requests.length;
    await pullSomething(c);
    await pullSomething(c);
    await c.resolveManifest('app', 'v1');
    const mine = tokens.requests.slice(before);
    assert.deepEqual(mine, [{ method: 'GET', user: TOKEN_USER, scopes: ['repository:app:pull'] }]);
    await c.getManifest('other', 'v1');
    assert.deepEqual(tokens.requests.slice(before + 1).map((r) => r.scopes), [['repository:other:pull']]);
  });

  test('many requests at once share one token request', async (t) => {
    const c = client(t, registry.host, { creds });
    const before = tokens.requests.length;
    await Promise.all(Array.from({ length: 8 }, (_, i) => c.readBlob('app', image.layers[0]!.digest, i * 100, i * 100 + 100, () => {})));
    assert.equal(tokens.requests.length - before, 1);
  });

  test('tokens are renewed after expires_in', async (t) => {
    tokens.expiresIn = 2; // cached for 1.5 s (a margin is kept before the deadline)
    const c = client(t, registry.host, { creds });
    const before = tokens.requests.length;
    await c.getManifest('app', 'v1');
    await c.getManifest('app', 'v1');
    assert.equal(tokens.requests.length - before, 1);
    await new Promise((r) => setTimeout(r, 1600));
    await c.getManifest('app', 'v1');
    assert.equal(tokens.requests.length - before, 2);
  });

  test('a token refused with 401 is replaced once', async (t) => {
    const challenge = (await fetch(`http://${registry.host}/v2/app/manifests/v1`)).headers.get('www-authenticate')!;
    assert.match(challenge, /^Bearer realm=/);
    const c = client(t, proxy.host, { creds });
    await c.getManifest('app', 'v1');
    const before = tokens.requests.length;
    let revoke = true;
    proxy.plan(() => (revoke ? ((revoke = false), { status: 401, headers: { 'www-authenticate': challenge } }) : undefined));
    await c.getManifest('app', 'v1');
    assert.equal(tokens.requests.length - before, 1, 'a fresh token was fetched');
    // A registry that keeps refusing fresh tokens: auth error, not a loop.
    proxy.plan(() => ({ status: 401, headers: { 'www-authenticate': challenge } }));
    await rejectsWith(c.getManifest('app', 'v1'), ExitCode.auth, /credentials for user "carol" were sent/);
  });

  test('a caller that aborts stops waiting for a shared token request without failing the others', async (t) => {
    const tokenProxy = await startFaultProxy({ target: new URL(tokens.realm).host });
    t.after(() => tokenProxy.stop());
    tokenProxy.plan(() => ({ delayMs: 300 }));
    const challenge = `Bearer realm="http://${tokenProxy.host}/token",service="${tokens.service}"`;
    proxy.plan((req) => (req.headers.authorization ? undefined : { status: 401, headers: { 'www-authenticate': challenge } }));
    const c = client(t, proxy.host, { creds });
    const ac = new AbortController();
    const first = c.getManifest('app', 'v1', ac.signal);
    const second = c.getManifest('app', 'v1');
    setTimeout(() => ac.abort(), 50);
    await assert.rejects(first, { name: 'AbortError' });
    assert.equal((await second).digest, image.digest);
    assert.equal(tokenProxy.requests.length, 1);
  });

  test('access_token (OAuth2 style) is accepted too', async (t) => {
    tokens.tokenField = 'access_token';
    await pullSomething(client(t, registry.host, { creds }));
  });

  test('wrong password: the token server refuses (exit 4)', async (t) => {
    await rejectsWith(
      client(t, registry.host, { creds: { username: TOKEN_USER, password: 'wrong' } }).getManifest('app', 'v1'),
      ExitCode.auth,
      /token server 127\.0\.0\.1:\d+ refused the credentials \(HTTP 401\)/,
    );
  });

  test('anonymous: a token without access, then an auth error (exit 4) saying no credentials were sent', async (t) => {
    const before = tokens.requests.length;
    await rejectsWith(client(t, registry.host).getManifest('app', 'v1'), ExitCode.auth, /no credentials were sent/);
    assert.equal(tokens.requests[before]!.user, '');
  });

  test('an identity token from the docker config uses the refresh-token grant', async (t) => {
    await writeDockerConfig({ auths: { [registry.host]: { identitytoken: IDENTITY_TOKEN } } });
    const before = tokens.requests.length;
    await pullSomething(client(t, registry.host));
    assert.deepEqual(tokens.requests.slice(before), [{ method: 'POST', user: TOKEN_USER, scopes: ['repository:app:pull'] }]);
  });

  test('token server down: unreachable (exit 6) after retries', async (t) => {
    const stopped = await startFaultProxy({ target: registry.host });
    await stopped.stop(); // a port nobody answers on any more
    // Point the client at a challenge whose realm is that dead port.
    proxy.plan(() => ({ status: 401, headers: { 'www-authenticate': `Bearer realm="http://${stopped.host}/token",service="x"` } }));
    await rejectsWith(client(t, proxy.host, { creds }).getManifest('app', 'v1'), ExitCode.unreachable, /token server .*connection refused/);
  });
});
