import { test } from 'node:test';
import assert from 'node:assert/strict';
import { choosePlatform, parseManifest } from '../../lib/image/manifest.ts';
import { parsePlatform, platformMatches, formatPlatform } from '../../lib/image/platform.ts';
import { parseDigest, sha256Digest } from '../../lib/image/digest.ts';
import { MediaType } from '../../lib/image/types.ts';
import { ExitCode, SwarmpullError } from '../../lib/errors.ts';

const d = (c: string) => 'sha256:' + c.repeat(64);
const blob = (mediaType: string, json: unknown) => {
  const body = Buffer.from(JSON.stringify(json));
  return { mediaType, body, digest: sha256Digest(body) };
};
const code = (c: number) => (e: unknown) => e instanceof SwarmpullError && e.exitCode === c;

test('platforms parse, format and match with implied variants', () => {
  assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64' });
  assert.equal(formatPlatform(parsePlatform('linux/amd64')), 'linux/amd64');
  assert.ok(platformMatches({ os: 'linux', architecture: 'arm64' }, parsePlatform('linux/arm64/v8')));
  assert.ok(!platformMatches({ os: 'linux', architecture: 'arm', variant: 'v6' }, parsePlatform('linux/arm')));
  assert.throws(() => parsePlatform('linux'), code(ExitCode.usage));
  assert.throws(() => parsePlatform('a/b/c/d'), code(ExitCode.usage));
  assert.throws(() => parsePlatform('toaster'), code(ExitCode.usage));
});

test('platforms as operators type them become the OCI names (containerd normalisation)', () => {
  const canonical: [string, string][] = [
    ['linux/aarch64', 'linux/arm64'],
    ['linux/x86_64', 'linux/amd64'],
    ['linux/x86-64', 'linux/amd64'],
    ['linux/armhf', 'linux/arm/v7'],
    ['linux/armel', 'linux/arm/v6'],
    ['linux/arm', 'linux/arm/v7'],
    ['linux/arm/7', 'linux/arm/v7'],
    ['linux/arm/6', 'linux/arm/v6'],
    ['linux/i386', 'linux/386'],
    ['linux/aarch64/8', 'linux/arm64'],
    ['linux/arm64/v9.0', 'linux/arm64/v9'],
    ['linux/amd64/v1', 'linux/amd64'],
    ['linux/amd64/v3', 'linux/amd64/v3'],
    ['arm64/v8', 'linux/arm64'],
    ['arm/v6', 'linux/arm/v6'],
    ['aarch64', 'linux/arm64'],
    ['x86_64', 'linux/amd64'],
    ['armhf', 'linux/arm/v7'],
    ['Linux/AMD64', 'linux/amd64'],
  ];
  for (const [typed, oci] of canonical) assert.equal(formatPlatform(parsePlatform(typed)), oci, typed);
  // Index entries are matched through the same normalisation, whichever spelling either side uses.
  assert.ok(platformMatches({ os: 'linux', architecture: 'arm64', variant: 'v8' }, parsePlatform('linux/aarch64')));
  assert.ok(platformMatches({ os: 'linux', architecture: 'arm64' }, parsePlatform('arm64/v8')));
  assert.ok(platformMatches({ os: 'linux', architecture: 'arm', variant: 'v7' }, parsePlatform('linux/armhf')));
  assert.ok(platformMatches({ os: 'linux', architecture: 'amd64' }, parsePlatform('linux/x86_64')));
  assert.ok(!platformMatches({ os: 'linux', architecture: 'arm', variant: 'v7' }, parsePlatform('linux/armel')));
  assert.ok(!platformMatches({ os: 'linux', architecture: 'arm64', variant: 'v9' }, parsePlatform('linux/aarch64')));
});

test('digests are strict sha256 (no path tricks)', () => {
  assert.equal(parseDigest(d('a')), d('a'));
  for (const bad of ['sha256:../../x', 'sha256:' + 'A'.repeat(64), 'sha512:' + 'a'.repeat(128), d('a') + '/x']) {
    assert.throws(() => parseDigest(bad), code(ExitCode.usage));
  }
});

test('manifests and indexes parse; the host platform is chosen, attestations skipped', () => {
  const m = parseManifest(blob(MediaType.ociManifest, {
    schemaVersion: 2, mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: d('c'), size: 10 },
    layers: [{ mediaType: MediaType.ociLayerGzip, digest: d('1'), size: 100 }],
  }));
  assert.equal(m.kind, 'manifest');
  const idx = parseManifest(blob(MediaType.ociIndex, {
    schemaVersion: 2,
    manifests: [
      { mediaType: MediaType.ociManifest, digest: d('3'), size: 5, platform: { os: 'unknown', architecture: 'unknown' } },
      { mediaType: MediaType.ociManifest, digest: d('4'), size: 5, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { mediaType: MediaType.ociManifest, digest: d('5'), size: 5, platform: { os: 'linux', architecture: 'amd64' } },
    ],
  }));
  assert.equal(idx.kind, 'index');
  if (idx.kind !== 'index') return;
  assert.equal(choosePlatform(idx, parsePlatform('linux/arm64'), 'x').digest, d('4'));
  assert.equal(choosePlatform(idx, parsePlatform('linux/amd64'), 'x').digest, d('5'));
  assert.throws(() => choosePlatform(idx, parsePlatform('linux/s390x'), 'x'), (e: unknown) =>
    code(ExitCode.notFound)(e) && /available: linux\/arm64\/v8, linux\/amd64/.test((e as Error).message));
});

test('malformed manifests are rejected with a clear error', () => {
  const cases: unknown[] = [
    'not json',
    [],
    { schemaVersion: 1 },
    { schemaVersion: 2, mediaType: MediaType.ociIndex },
    { schemaVersion: 2, config: { mediaType: 'x', digest: 'sha256:../../x', size: 1 }, layers: [] },
    { schemaVersion: 2, config: { mediaType: 'x', digest: d('a'), size: -1 }, layers: [] },
    { schemaVersion: 2, config: { mediaType: 'x', digest: d('a'), size: 1 }, layers: 'no' },
    { schemaVersion: 2, config: { mediaType: 'x', digest: d('a'), size: 1 }, layers: Array(1001).fill({ mediaType: 'x', digest: d('b'), size: 1 }) },
  ];
  for (const c of cases) {
    const b = typeof c === 'string' ? { mediaType: MediaType.ociManifest, body: Buffer.from(c), digest: sha256Digest(c) } : blob(MediaType.ociManifest, c);
    assert.throws(() => parseManifest(b), code(ExitCode.failure), JSON.stringify(c).slice(0, 80));
  }
  assert.throws(() => parseManifest(blob('application/vnd.docker.distribution.manifest.v1+prettyjws', { schemaVersion: 2 })), /unsupported media type/);
});

test('what a registry chooses to put in a manifest stays out of the error at any length (found by the fuzzer)', () => {
  const short = (e: unknown) => e instanceof SwarmpullError && e.exitCode === ExitCode.failure && e.message.length < 300;
  assert.throws(() => parseManifest(blob(MediaType.ociManifest, { schemaVersion: 'x'.repeat(70_000) })), short);
  assert.throws(() => parseManifest(blob(MediaType.ociManifest, { schemaVersion: 2, mediaType: '\0'.repeat(5000) })), short);
  const many = Array.from({ length: 400 }, (_, i) => ({ mediaType: MediaType.ociManifest, digest: d('a'), size: 1, platform: { os: 'linux', architecture: `a${i}`.repeat(30) } }));
  const index = parseManifest(blob(MediaType.ociIndex, { schemaVersion: 2, manifests: many }));
  assert.throws(
    () => choosePlatform(index as Extract<typeof index, { kind: 'index' }>, { os: 'linux', architecture: 'riscv64' }, 'img'),
    (e: unknown) => e instanceof SwarmpullError && e.exitCode === ExitCode.notFound && e.message.length < 1000 && /and 388 more/.test(e.message),
  );
});
