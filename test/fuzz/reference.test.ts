// Fuzz: image references, platforms and digests typed by users or read from manifests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExitCode } from '../../lib/errors.ts';
import { parseDigest } from '../../lib/image/digest.ts';
import { formatPlatform, parsePlatform } from '../../lib/image/platform.ts';
import { formatReference, parseReference } from '../../lib/reference.ts';
import { fc, fuzz, parsesOrRejects, textInputs } from './fuzz.ts';

const component = fc.stringMatching(/^[a-z0-9]{1,6}(?:(?:[._]|__|-{1,3})[a-z0-9]{1,6}){0,2}$/);
const domain = fc.oneof(
  fc.constantFrom('localhost', 'docker.io', 'index.docker.io', 'registry.example.com', '127.0.0.1:5000', '[::1]:5000', 'ghcr.io'),
  fc.tuple(fc.stringMatching(/^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?\.[a-z]{2,6}$/), fc.option(fc.integer({ min: 1, max: 65535 }))).map(([d, p]) => (p ? `${d}:${p}` : d)),
);
const tag = fc.stringMatching(/^\w[\w.-]{0,20}$/);
const digest = fc.stringMatching(/^[a-f0-9]{64}$/).map((h) => `sha256:${h}`);
const validReference = fc
  .tuple(fc.option(domain), fc.array(component, { minLength: 1, maxLength: 4 }), fc.option(tag), fc.option(digest))
  // without a domain, a first component with a dot would be read as one (as docker does)
  .filter(([d, path]) => d !== null || !path[0]!.includes('.'))
  .map(([d, path, t, dg]) => `${d ? d + '/' : ''}${path.join('/')}${t ? ':' + t : ''}${dg ? '@' + dg : ''}`);
const CORPUS = [
  'alpine',
  'library/alpine:3.20',
  'docker.io/library/alpine:latest',
  '127.0.0.1:5000/team/app:1.4@sha256:' + 'a'.repeat(64),
  '[::1]:5000/x/y',
  'registry.example.com/a/b/c__d---e.f:tag_1.2-3',
];

const REF_SYNTAX = {
  registry: /^(?:docker\.io|[a-zA-Z0-9.-]+(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?)$/,
  repository: /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/,
  tag: /^\w[\w.-]{0,127}$/,
  digest: /^sha256:[a-f0-9]{64}$/,
};

test('fuzz: references parse to a valid, canonical reference or a usage error (exit 2)', async (t) => {
  let parsed = 0;
  const r = await fuzz('references', textInputs(validReference, CORPUS, 2000), (input) => {
    const ref = parsesOrRejects(() => parseReference(input), [ExitCode.usage], `reference ${JSON.stringify(input.slice(0, 80))}`);
    if (!ref) return;
    parsed++;
    assert.match(ref.registry, REF_SYNTAX.registry);
    assert.match(ref.repository, REF_SYNTAX.repository);
    assert.ok(ref.repository.length <= 255);
    assert.ok(ref.tag !== undefined || ref.digest !== undefined);
    if (ref.tag !== undefined) assert.match(ref.tag, REF_SYNTAX.tag);
    if (ref.digest !== undefined) assert.match(ref.digest, REF_SYNTAX.digest);
    // The canonical form parses back to the same reference.
    assert.deepEqual(parseReference(formatReference(ref)), ref);
  });
  t.diagnostic(`${r.runs} inputs (${parsed} parsed) in ${r.seconds.toFixed(1)} s`);
});

test('fuzz: generated valid references always parse', async () => {
  await fuzz('valid references', validReference, (input) => {
    parseReference(input);
  }, { seconds: 1 });
});

test('fuzz: platforms and digests parse or give a usage error (exit 2)', async () => {
  const platform = fc.tuple(fc.constantFrom('linux', 'windows'), fc.constantFrom('amd64', 'arm64', 'arm', '386'), fc.option(fc.constantFrom('v6', 'v7', 'v8'))).map(([o, a, v]) => `${o}/${a}${v ? '/' + v : ''}`);
  await fuzz('platforms', textInputs(platform, ['linux/amd64', 'linux/arm/v7'], 1000), (input) => {
    const p = parsesOrRejects(() => parsePlatform(input), [ExitCode.usage], `platform ${JSON.stringify(input.slice(0, 80))}`);
    if (p) assert.deepEqual(parsePlatform(formatPlatform(p)), p);
  }, { seconds: 1 });
  await fuzz('digests', textInputs(digest, ['sha256:' + '0'.repeat(64)], 1000), (input) => {
    const d = parsesOrRejects(() => parseDigest(input), [ExitCode.usage], `digest ${JSON.stringify(input.slice(0, 80))}`);
    if (d !== undefined) assert.match(d, REF_SYNTAX.digest);
  }, { seconds: 1 });
});
