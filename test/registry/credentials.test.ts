// Credential lookup on its own (no registry): file order, key forms, helpers and their failures.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { lookupCredentials, matchKey, IDENTITY_TOKEN_USER } from '../../lib/registry/credentials.ts';
import { assertNoSecrets, installCredHelper, logCollector, tempDir } from './helpers.ts';

const root = await tempDir('creds');
after(() => rm(root, { recursive: true, force: true }));
const logs = logCollector();
after(() => assertNoSecrets(logs.lines, ['pw-auths', 'pw-fields', 'pw-podman', 'pw-helper', 'pw-store', 'idtok-1']));

let n = 0;
/** A fresh DOCKER_CONFIG dir (and optionally a REGISTRY_AUTH_FILE) with PATH holding the test helper. */
async function setup(dockerConfig: object | string | undefined, authFile?: object) {
  const dir = join(root, String(n++));
  await mkdir(dir, { recursive: true });
  const helper = await installCredHelper(join(dir, 'bin'));
  if (dockerConfig !== undefined) {
    await writeFile(join(dir, 'config.json'), typeof dockerConfig === 'string' ? dockerConfig : JSON.stringify(dockerConfig));
  }
  const env: NodeJS.ProcessEnv = { PATH: `${helper.dir}:${process.env.PATH}`, DOCKER_CONFIG: dir, HOME: dir };
  if (authFile) {
    env.REGISTRY_AUTH_FILE = join(dir, 'auth.json');
    await writeFile(env.REGISTRY_AUTH_FILE, JSON.stringify(authFile));
  }
  return { env, helper, dir };
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

test('auths: base64 auth under the exact host', async () => {
  const { env } = await setup({ auths: { 'reg.example:5000': { auth: b64('alice:pw-auths') } } });
  assert.deepEqual(await lookupCredentials('reg.example:5000', { env, log: logs.log }), { username: 'alice', password: 'pw-auths' });
  assert.equal(await lookupCredentials('other.example', { env, log: logs.log }), undefined);
});

test('auths: a password may hold colons; username/password fields work too', async () => {
  const { env } = await setup({
    auths: { 'a.example': { auth: b64('bob:pw:with:colons') }, 'b.example': { username: 'carol', password: 'pw-fields' } },
  });
  assert.deepEqual(await lookupCredentials('a.example', { env, log: logs.log }), { username: 'bob', password: 'pw:with:colons' });
  assert.deepEqual(await lookupCredentials('b.example', { env, log: logs.log }), { username: 'carol', password: 'pw-fields' });
});

test('key forms: https://host, http://host/v1/, and Docker Hub under https://index.docker.io/v1/', async () => {
  assert.equal(matchKey({ 'https://reg.example': {} }, 'reg.example'), 'https://reg.example');
  assert.equal(matchKey({ 'http://reg.example:5000/v1/': {} }, 'reg.example:5000'), 'http://reg.example:5000/v1/');
  assert.equal(matchKey({ 'https://index.docker.io/v1/': {} }, 'docker.io'), 'https://index.docker.io/v1/');
  assert.equal(matchKey({ 'https://reg.example.evil': {}, 'reg.example:5000': {} }, 'reg.example'), undefined);
  // exact keys win over URL forms
  assert.equal(matchKey({ 'https://reg.example/v1/': {}, 'reg.example': {} }, 'reg.example'), 'reg.example');
  const { env } = await setup({ auths: { 'https://index.docker.io/v1/': { auth: b64('hubuser:pw-auths') } } });
  assert.deepEqual(await lookupCredentials('docker.io', { env, log: logs.log }), { username: 'hubuser', password: 'pw-auths' });
});

test('identity tokens are returned as the <token> user', async () => {
  const { env } = await setup({ auths: { 'reg.example': { identitytoken: 'idtok-1' } } });
  assert.deepEqual(await lookupCredentials('reg.example', { env, log: logs.log }), { username: IDENTITY_TOKEN_USER, password: 'idtok-1' });
});

test('REGISTRY_AUTH_FILE comes first, DOCKER_CONFIG is the fallback', async () => {
  const { env } = await setup(
    { auths: { 'reg.example': { auth: b64('docker:pw-auths') }, 'only-docker.example': { auth: b64('d2:pw-auths') } } },
    { auths: { 'reg.example': { auth: b64('podman:pw-podman') } } },
  );
  assert.deepEqual(await lookupCredentials('reg.example', { env, log: logs.log }), { username: 'podman', password: 'pw-podman' });
  assert.deepEqual(await lookupCredentials('only-docker.example', { env, log: logs.log }), { username: 'd2', password: 'pw-auths' });
});

test('without DOCKER_CONFIG, ~/.docker/config.json is read', async () => {
  const { env, dir } = await setup(undefined);
  await mkdir(join(dir, '.docker'));
  await writeFile(join(dir, '.docker', 'config.json'), JSON.stringify({ auths: { 'reg.example': { auth: b64('home:pw-auths') } } }));
  delete env.DOCKER_CONFIG;
  assert.deepEqual(await lookupCredentials('reg.example', { env, log: logs.log }), { username: 'home', password: 'pw-auths' });
});

test('credHelpers[host] runs docker-credential-<name> get with the server URL on stdin', async () => {
  const { env, helper } = await setup({
    credHelpers: { 'reg.example:5000': 'swarmtest', 'docker.io': 'swarmtest' },
    auths: { 'reg.example:5000': { auth: b64('stale:pw-auths') } },
  });
  await helper.set('reg.example:5000', 'helperuser', 'pw-helper');
  await helper.set('https://index.docker.io/v1/', 'hub', 'pw-helper');
  assert.deepEqual(await lookupCredentials('reg.example:5000', { env, log: logs.log }), { username: 'helperuser', password: 'pw-helper' });
  assert.deepEqual(await lookupCredentials('docker.io', { env, log: logs.log }), { username: 'hub', password: 'pw-helper' });
  assert.deepEqual(await helper.asked(), ['reg.example:5000', 'https://index.docker.io/v1/']);
});

test('credsStore is used for hosts without a credHelper', async () => {
  const { env, helper } = await setup({ credsStore: 'swarmtest', auths: { 'reg.example': {} } });
  await helper.set('reg.example', 'storeuser', 'pw-store');
  assert.deepEqual(await lookupCredentials('reg.example', { env, log: logs.log }), { username: 'storeuser', password: 'pw-store' });
});

test('a helper that fails, is missing, hangs or prints garbage means anonymous, with a debug line', async () => {
  const { env, dir } = await setup({ credHelpers: { 'fails.example': 'swarmtest', 'missing.example': 'nosuchhelper', 'odd.example': '../evil', 'hangs.example': 'hang', 'garbage.example': 'garbage' } });
  await installCredHelper(join(dir, 'bin'), 'hang', { sleep: true });
  await writeFile(join(dir, 'bin', 'docker-credential-garbage'), '#!/bin/sh\necho not json\n', { mode: 0o755 });
  const local = logCollector();
  assert.equal(await lookupCredentials('fails.example', { env, log: local.log }), undefined);
  assert.equal(await lookupCredentials('missing.example', { env, log: local.log }), undefined);
  assert.equal(await lookupCredentials('odd.example', { env, log: local.log }), undefined);
  const t0 = performance.now();
  assert.equal(await lookupCredentials('hangs.example', { env, log: local.log, helperTimeoutMs: 300 }), undefined);
  assert.ok(performance.now() - t0 < 3000, 'the helper timeout bounds the wait');
  assert.equal(await lookupCredentials('garbage.example', { env, log: local.log }), undefined);
  const text = local.lines.join('\n');
  assert.match(text, /docker-credential-swarmtest failed \(exit 1: credentials not found in native keychain\)/);
  assert.match(text, /docker-credential-nosuchhelper not found on PATH/);
  assert.match(text, /odd name/);
  assert.match(text, /docker-credential-hang gave no answer within 300 ms/);
  assert.match(text, /docker-credential-garbage did not print JSON/);
});

test('unreadable or malformed config files are skipped with a debug line', async () => {
  const { env } = await setup('{ not json', { auths: 'nope' });
  const local = logCollector();
  assert.equal(await lookupCredentials('reg.example', { env, log: local.log }), undefined);
  assert.match(local.lines.join('\n'), /config\.json is not a JSON object/);
});
