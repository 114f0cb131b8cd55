// TLS as registries run it, through the CLI: the real docker-registry serving HTTPS (and so HTTP/2, which Go offers
// over TLS) with a CA of the tests' own. Trust comes from a certs.d tree in a temp dir (SWARMPULL_CERTS_D stands in
// for /etc/docker/certs.d and /etc/containers/certs.d) or from the OS store (SSL_CERT_FILE stands in for the file
// update-ca-certificates writes, /etc/ssl/certs/ca-certificates.crt: OpenSSL reads one or the other, and so does
// Node's system store), so the machine's real trust is never touched.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type Registry } from '../support/registry.ts';
import { startTokenServer, type TokenServer } from '../support/token-server.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { buildImage, pushImage, type FixtureImage } from '../support/fixtures.ts';
import { makePki, writeCertsD, type TestPki } from '../support/tls.ts';
import { runCli, type CliResult } from '../support/cli.ts';
import { umociUnpack } from '../reliability/helpers.ts';

const KiB = 1024;
const repo = 'tls/app';
const USER = 'carol';
const PASSWORD = 'tls-test-password-3';
const basic = 'Basic ' + Buffer.from(`${USER}:${PASSWORD}`).toString('base64');

let work: string;
let pki: TestPki;
let image: FixtureImage;
/** HTTPS, no auth, access log on (to see the protocol of each request) */
let registry: Registry;
/** HTTPS that requires a client certificate signed by the test CA */
let mtls: Registry;
let n = 0;

const fresh = (name: string) => join(work, `${name}-${n++}`);
/** an empty certs.d root, so nothing from the machine's /etc/docker/certs.d can help */
const emptyCertsD = async () => {
  const dir = fresh('certs.d');
  await mkdir(dir, { recursive: true });
  return dir;
};

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'swarmpull-tls-'));
  pki = await makePki();
  image = await buildImage(join(work, 'src'), 'v1', { layers: [700 * KiB, 30 * KiB], seed: 'tls' });
  registry = await startRegistry({ tls: { certificate: pki.serverCert, key: pki.serverKey }, accessLog: true });
  mtls = await startRegistry({ tls: { certificate: pki.serverCert, key: pki.serverKey, clientCas: [pki.caPath] } });
  const clientDir = await writeCertsD(join(work, 'skopeo-certs'), 'mtls', { 'client.cert': pki.clientCert, 'client.key': pki.clientKey });
  await pushImage(image.layoutDir, 'v1', `${registry.host}/${repo}:v1`);
  await pushImage(image.layoutDir, 'v1', `${mtls.host}/${repo}:v1`, { certDir: clientDir });
});

after(async () => {
  await registry?.stop();
  await mtls?.stop();
  await pki?.remove();
  await rm(work, { recursive: true, force: true });
});

async function pull(ref: string, env: NodeJS.ProcessEnv, ...extra: string[]): Promise<CliResult & { out: string }> {
  const out = fresh('oci');
  const r = await runCli(['pull', '--no-mdns', '--registry-only', ref, '--oci', out, '--store', fresh('store'), '-q', ...extra], {
    env: { ...process.env, SSL_CERT_FILE: pki.otherCaPath, ...env },
    timeoutMs: 60_000,
  });
  return { ...r, out };
}

async function assertPulled(r: CliResult & { out: string }) {
  assert.equal(r.code, 0, r.stderr);
  await umociUnpack(r.out, 'v1', fresh('bundle'));
}

function assertOneLine(r: CliResult, code: number, message: RegExp) {
  assert.equal(r.code, code, r.stderr);
  assert.match(r.stderr, message);
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /unreachable|pull by digest|\n\s+at /);
}

test('a loopback registry serving TLS: HTTPS is tried first; its CA from certs.d/HOST:PORT/ca.crt; HTTP/1.1 only', async () => {
  const certsD = await emptyCertsD();
  await writeCertsD(certsD, registry.host, { 'ca.crt': pki.caPath });
  const logFrom = registry.log().length;
  const r = await pull(`${registry.host}/${repo}:v1`, { SWARMPULL_CERTS_D: certsD });
  await assertPulled(r);
  // Go offers HTTP/2 over TLS; swarmpull asks for HTTP/1.1 (http.ts ALLOW_HTTP2: one TCP connection per range).
  const lines = registry.log().slice(logFrom).split('\n').filter((l) => / "(GET|HEAD) \/v2\//.test(l));
  assert.ok(lines.some((l) => l.includes('/blobs/sha256:')), `the blobs came from this registry:\n${lines.join('\n')}`);
  for (const l of lines) assert.match(l, /HTTP\/1\.1"/, l);
});

test('the certs.d directory is per name as written: localhost:PORT', async () => {
  const certsD = await emptyCertsD();
  const host = registry.host.replace('127.0.0.1', 'localhost');
  await writeCertsD(certsD, host, { 'registry-ca.crt': pki.caPath });
  await assertPulled(await pull(`${host}/${repo}:v1`, { SWARMPULL_CERTS_D: certsD }));
});

test('a CA in the OS trust store (the file update-ca-certificates writes, here SSL_CERT_FILE) is trusted', async () => {
  await assertPulled(await pull(`${registry.host}/${repo}:v1`, { SWARMPULL_CERTS_D: await emptyCertsD(), SSL_CERT_FILE: pki.caPath }));
});

test('a certificate nobody vouches for: one line naming the host and what to do, exit 1, not "unreachable"', async () => {
  const t0 = performance.now();
  const r = await pull(`${registry.host}/${repo}:v1`, { SWARMPULL_CERTS_D: await emptyCertsD() });
  assertOneLine(r, 1, new RegExp(`registry ${registry.host}: TLS certificate not trusted \\(.*UNABLE_TO_VERIFY_LEAF_SIGNATURE\\).*certs\\.d/${registry.host}/ca\\.crt.*--insecure`));
  assert.ok(performance.now() - t0 < 20_000, 'not retried through the back-off');
});

test('a certificate issued for another name: one line saying so (exit 1)', async (t) => {
  const other = await makePki({ serverSan: 'DNS:registry.example.com' });
  const reg = await startRegistry({ tls: { certificate: other.serverCert, key: other.serverKey } });
  t.after(async () => {
    await reg.stop();
    await other.remove();
  });
  const certsD = await emptyCertsD();
  await writeCertsD(certsD, reg.host, { 'ca.crt': other.caPath });
  assertOneLine(await pull(`${reg.host}/${repo}:v1`, { SWARMPULL_CERTS_D: certsD }), 1, new RegExp(`registry ${reg.host}: TLS certificate not trusted \\(issued for another name, ERR_TLS_CERT_ALTNAME_INVALID\\)`));
});

test('a CA in certs.d of another host does not help', async () => {
  const certsD = await emptyCertsD();
  await writeCertsD(certsD, 'registry.example.com', { 'ca.crt': pki.caPath });
  assertOneLine(await pull(`${registry.host}/${repo}:v1`, { SWARMPULL_CERTS_D: certsD }), 1, /TLS certificate not trusted/);
});

test('--insecure: no verification, as before', async () => {
  await assertPulled(await pull(`${registry.host}/${repo}:v1`, { SWARMPULL_CERTS_D: await emptyCertsD() }, '--insecure'));
});

test('a registry that requires a client certificate: none is one line (exit 1); client.cert/client.key in certs.d pull', async () => {
  const certsD = await emptyCertsD();
  await writeCertsD(certsD, mtls.host, { 'ca.crt': pki.caPath });
  assertOneLine(await pull(`${mtls.host}/${repo}:v1`, { SWARMPULL_CERTS_D: certsD }), 1, new RegExp(`registry ${mtls.host}: .*requires a client certificate.*client\\.cert`));
  await writeCertsD(certsD, mtls.host, { 'client.cert': pki.clientCert, 'client.key': pki.clientKey });
  await assertPulled(await pull(`${mtls.host}/${repo}:v1`, { SWARMPULL_CERTS_D: certsD }));
});

test('a client certificate without its key in certs.d: one line (exit 1)', async () => {
  const certsD = await emptyCertsD();
  await writeCertsD(certsD, mtls.host, { 'ca.crt': pki.caPath, 'client.cert': pki.clientCert });
  assertOneLine(await pull(`${mtls.host}/${repo}:v1`, { SWARMPULL_CERTS_D: certsD }), 1, /client certificate without its key client\.key/);
});

test('a loopback registry without TLS still pulls without --plain-http (HTTPS first, then HTTP)', async (t) => {
  const plain = await startRegistry();
  t.after(() => plain.stop());
  await pushImage(image.layoutDir, 'v1', `${plain.host}/${repo}:v1`);
  await assertPulled(await pull(`${plain.host}/${repo}:v1`, { SWARMPULL_CERTS_D: await emptyCertsD() }));
});

test('TLS token auth: a token server on HTTPS gets the credentials; one on plain HTTP is refused them (exit 1)', async (t) => {
  const certsD = await emptyCertsD();
  const tokens: TokenServer[] = [];
  for (const tls of [{ cert: pki.serverCert, key: pki.serverKey }, undefined]) {
    const token = await startTokenServer({ users: { [USER]: PASSWORD }, ...(tls ? { tls } : {}) });
    tokens.push(token);
    const reg = await startRegistry({
      tls: { certificate: pki.serverCert, key: pki.serverKey },
      token: { realm: token.realm, service: token.service, issuer: token.issuer, rootCertBundle: token.certPem },
    });
    t.after(async () => {
      await reg.stop();
      await token.stop();
    });
    await writeCertsD(certsD, reg.host, { 'ca.crt': pki.caPath });
    await pushImage(image.layoutDir, 'v1', `${reg.host}/${repo}:v1`, { creds: `${USER}:${PASSWORD}` });
    const r = await pull(`${reg.host}/${repo}:v1`, { SWARMPULL_CERTS_D: certsD }, '--creds', `${USER}:${PASSWORD}`);
    if (tls) {
      await assertPulled(r);
    } else {
      const sentBefore = token.requests.length;
      assertOneLine(r, 1, new RegExp(`${reg.host}: its token server http://127\\.0\\.0\\.1:\\d+ is plain HTTP; credentials are not sent`));
      assert.equal(token.requests.slice(sentBefore).filter((q) => q.user).length, 0);
      assert.ok(tokens[1]!.requests.every((q) => q.user !== USER || q.scopes.some((s) => s.includes('push'))), 'only skopeo sent the password');
    }
  }
});

test('a redirect from https to http on the same host and port: Authorization is not sent in clear text', async (t) => {
  const reg = await startRegistry({ htpasswd: [{ user: USER, password: PASSWORD }] });
  const proxy: FaultProxy = await startFaultProxy({ target: reg.host, tls: { cert: pki.serverCert, key: pki.serverKey } });
  t.after(async () => {
    await proxy.stop();
    await reg.stop();
  });
  await pushImage(image.layoutDir, 'v1', `${reg.host}/${repo}:v1`, { creds: `${USER}:${PASSWORD}` });
  proxy.plan((req) => {
    if (req.method !== 'GET' || !req.url.includes('/blobs/')) return;
    // The plain leg stands in for storage that authenticates by URL: it adds the credentials upstream itself.
    return req.tls ? { redirectTo: `http://${proxy.host}${req.url}` } : { upstreamAuthorization: basic };
  });
  const certsD = await emptyCertsD();
  await writeCertsD(certsD, proxy.host, { 'ca.crt': pki.caPath });
  await assertPulled(await pull(`${proxy.host}/${repo}:v1`, { SWARMPULL_CERTS_D: certsD }, '--creds', `${USER}:${PASSWORD}`));
  const blobs = proxy.requests.filter((q) => q.url.includes('/blobs/'));
  assert.ok(blobs.some((q) => q.tls && q.headers.authorization === basic), 'credentials went to the registry over TLS');
  const plainLeg = blobs.filter((q) => !q.tls);
  assert.ok(plainLeg.length > 0, 'the redirects were followed');
  for (const q of plainLeg) assert.equal(q.headers.authorization, undefined, `Authorization over plain HTTP: ${q.url}`);
});
