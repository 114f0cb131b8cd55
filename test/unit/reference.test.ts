import { test } from 'node:test';
import assert from 'node:assert/strict';
import { apiHost, formatReference, isLoopbackHost, manifestReference, parseReference } from '../../lib/reference.ts';
import { ExitCode, SwarmpullError } from '../../lib/errors.ts';

const D = 'sha256:' + 'a'.repeat(64);

test('docker hub names are normalised like docker does', () => {
  assert.deepEqual(parseReference('alpine'), { registry: 'docker.io', repository: 'library/alpine', tag: 'latest' });
  assert.deepEqual(parseReference('bitnami/redis:7'), { registry: 'docker.io', repository: 'bitnami/redis', tag: '7' });
  assert.deepEqual(parseReference('index.docker.io/library/alpine:3'), { registry: 'docker.io', repository: 'library/alpine', tag: '3' });
  assert.equal(apiHost('docker.io'), 'registry-1.docker.io');
});

test('registries with ports, localhost, digests and tags', () => {
  assert.deepEqual(parseReference('127.0.0.1:5000/team/app:1.2'), { registry: '127.0.0.1:5000', repository: 'team/app', tag: '1.2' });
  assert.deepEqual(parseReference('localhost/app'), { registry: 'localhost', repository: 'app', tag: 'latest' });
  assert.deepEqual(parseReference(`ghcr.io/o/r@${D}`), { registry: 'ghcr.io', repository: 'o/r', digest: D });
  const both = parseReference(`ghcr.io/o/r:v1@${D}`);
  assert.equal(both.tag, 'v1');
  assert.equal(manifestReference(both), D);
  assert.equal(formatReference(both), `ghcr.io/o/r:v1@${D}`);
  assert.equal(manifestReference(parseReference('a/b:c')), 'c');
});

test('bad references are usage errors (exit 2)', () => {
  for (const bad of ['', 'UPPER/case', 'a//b', 'a:b:c:d', `x@sha256:${'g'.repeat(64)}`, 'x@sha256:../../etc', 'x:-bad', 'a/b:' + 't'.repeat(200), 'x@md5:abc', ' ']) {
    assert.throws(() => parseReference(bad), (e: unknown) => e instanceof SwarmpullError && e.exitCode === ExitCode.usage, bad);
  }
});

test('loopback registries', () => {
  assert.ok(isLoopbackHost('127.0.0.1:5000'));
  assert.ok(isLoopbackHost('localhost:80'));
  assert.ok(isLoopbackHost('[::1]:5000'));
  assert.ok(!isLoopbackHost('registry.example.com'));
  assert.ok(!isLoopbackHost('10.0.0.1:5000'));
});
