// Fuzz: manifests and indexes as a registry (or a hostile one) serves them: checked against a digest and a
// content type, parsed, and a platform chosen from an index.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { ExitCode } from '../../lib/errors.ts';
import { choosePlatform, parseManifest, type ImageIndex } from '../../lib/image/manifest.ts';
import { MANIFEST_MEDIA_TYPES, MediaType, type Descriptor } from '../../lib/image/types.ts';
import { checkManifest } from '../../lib/registry/manifest.ts';
import { fc, fuzz, mutated, parsesOrRejects, weirdJson } from './fuzz.ts';

const sha256 = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');

/** A valid value most of the time, a structurally odd one sometimes, or the key left out. */
const field = <T>(valid: fc.Arbitrary<T>) => fc.oneof({ arbitrary: valid, weight: 10 }, { arbitrary: weirdJson, weight: 1 }, { arbitrary: fc.constant(undefined), weight: 1 });

const digestArb = fc.stringMatching(/^[a-f0-9]{64}$/).map((h) => `sha256:${h}`);
const platformArb = fc.record(
  {
    os: field(fc.constantFrom('linux', 'windows', 'unknown')),
    architecture: field(fc.constantFrom('amd64', 'arm64', 'arm', 'unknown')),
    variant: field(fc.constantFrom('v7', 'v8')),
  },
  { requiredKeys: [] },
);
const descriptorArb = (mediaTypes: string[]) =>
  fc.record(
    {
      mediaType: field(fc.constantFrom(...mediaTypes)),
      digest: field(digestArb),
      size: field(fc.oneof(fc.nat(), fc.integer({ min: 0, max: 2 ** 40 }))),
      platform: field(platformArb),
      annotations: field(fc.dictionary(fc.string({ maxLength: 20 }), fc.oneof(fc.string({ maxLength: 20 }), weirdJson), { maxKeys: 3 })),
      urls: fc.option(fc.array(fc.oneof(fc.webUrl(), weirdJson), { maxLength: 2 }), { nil: undefined, freq: 8 }),
    },
    { requiredKeys: ['mediaType', 'digest', 'size'] },
  );
const layerTypes = [MediaType.ociLayerGzip, MediaType.dockerLayerGzip, MediaType.ociLayer];
const manifestArb = fc.record(
  {
    schemaVersion: field(fc.constant(2)),
    mediaType: field(fc.constantFrom(MediaType.ociManifest, MediaType.dockerManifest)),
    config: field(descriptorArb([MediaType.ociConfig, MediaType.dockerConfig])),
    layers: field(fc.array(descriptorArb(layerTypes), { maxLength: 6 })),
    annotations: field(fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 }), { maxKeys: 2 })),
  },
  { requiredKeys: [] },
);
const indexArb = fc.record(
  {
    schemaVersion: field(fc.constant(2)),
    mediaType: field(fc.constantFrom(MediaType.ociIndex, MediaType.dockerList)),
    manifests: field(fc.array(descriptorArb([MediaType.ociManifest, MediaType.dockerManifest, 'application/vnd.in-toto+json']), { maxLength: 6 })),
  },
  { requiredKeys: [] },
);

const docArb = fc.oneof(manifestArb, indexArb).map((o) => Buffer.from(JSON.stringify(o)));
const CORPUS = [
  { schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: MediaType.ociConfig, digest: 'sha256:' + 'a'.repeat(64), size: 10 }, layers: [] },
  { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [{ mediaType: MediaType.ociManifest, digest: 'sha256:' + 'b'.repeat(64), size: 5, platform: { os: 'linux', architecture: 'amd64' } }] },
].map((o) => Buffer.from(JSON.stringify(o)));

const bodyArb = fc.oneof(
  { arbitrary: docArb, weight: 4 },
  { arbitrary: mutated(fc.oneof(docArb, fc.constantFrom(...CORPUS)), CORPUS, 1 << 20), weight: 4 },
  { arbitrary: fc.constantFrom('[', '{', '"', 'null', '[]', '{"schemaVersion":1}', '\ufeff{}', '['.repeat(200_000), '{"layers":' + '['.repeat(100_000) + ']'.repeat(100_000) + '}').map((s) => Buffer.from(s)), weight: 1 },
);
const contentTypeArb = fc.oneof(
  fc.constantFrom(...MANIFEST_MEDIA_TYPES),
  fc.constantFrom(...MANIFEST_MEDIA_TYPES).map((t) => `${t.toUpperCase()}; charset=utf-8`),
  fc.constantFrom(undefined, '', 'application/json', 'text/html', 'application/vnd.docker.distribution.manifest.v1+prettyjws'),
  fc.string({ maxLength: 60 }),
);
const inputArb = fc.record({
  body: bodyArb,
  contentType: contentTypeArb,
  digest: fc.constantFrom('actual', 'actual', 'none', 'other'),
  wanted: fc.record({ os: fc.constantFrom('linux', 'windows'), architecture: fc.constantFrom('amd64', 'arm64', 'arm') }),
});

function assertDescriptor(d: Descriptor, what: string): void {
  assert.equal(typeof d.mediaType, 'string', what);
  assert.ok(d.mediaType.length <= 256, what);
  assert.match(d.digest, /^sha256:[a-f0-9]{64}$/, what);
  assert.ok(Number.isSafeInteger(d.size) && d.size >= 0, `${what}: size ${d.size}`);
  if (d.platform) {
    assert.equal(typeof d.platform.os, 'string', what);
    assert.equal(typeof d.platform.architecture, 'string', what);
    if (d.platform.variant !== undefined) assert.equal(typeof d.platform.variant, 'string', what);
  }
  if (d.annotations !== undefined) {
    assert.ok(typeof d.annotations === 'object' && d.annotations !== null && !Array.isArray(d.annotations), `${what}: annotations`);
    for (const [k, v] of Object.entries(d.annotations)) assert.equal(typeof v, 'string', `${what}: annotation ${k} is ${JSON.stringify(v)?.slice(0, 40)}`);
  }
  if (d.urls !== undefined) for (const u of d.urls) assert.equal(typeof u, 'string', what);
}

test('fuzz: a served manifest is checked, parsed and its platform chosen, or rejected with exit 1, 3 or 5', async (t) => {
  const outcomes = { rejectedAtCheck: 0, rejectedAtParse: 0, manifests: 0, indexes: 0 };
  const r = await fuzz('manifests', inputArb, ({ body, contentType, digest, wanted }) => {
    const expected = digest === 'actual' ? sha256(body) : digest === 'other' ? 'sha256:' + '0'.repeat(64) : undefined;
    const blob = parsesOrRejects(() => checkManifest(body, contentType, expected, 'manifest'), [ExitCode.failure, ExitCode.integrity], 'checkManifest');
    if (!blob) return void outcomes.rejectedAtCheck++;
    assert.equal(digest === 'other', false, 'a digest mismatch must be refused');
    assert.equal(blob.digest, sha256(body));
    assert.ok(MANIFEST_MEDIA_TYPES.includes(blob.mediaType), blob.mediaType);
    const parsed = parsesOrRejects(() => parseManifest(blob), [ExitCode.failure], 'parseManifest');
    if (!parsed) return void outcomes.rejectedAtParse++;
    if (parsed.kind === 'manifest') {
      outcomes.manifests++;
      assertDescriptor(parsed.config, 'config');
      for (const l of parsed.layers) assertDescriptor(l, 'layer');
      return;
    }
    outcomes.indexes++;
    for (const m of parsed.manifests) assertDescriptor(m, 'index entry');
    const chosen = parsesOrRejects(() => choosePlatform(parsed as ImageIndex, wanted, 'image'), [ExitCode.notFound], 'choosePlatform');
    if (chosen) assert.ok(parsed.manifests.includes(chosen));
  });
  t.diagnostic(`${r.runs} inputs in ${r.seconds.toFixed(1)} s (slowest ${r.slowestMs.toFixed(0)} ms): ${JSON.stringify(outcomes)}`);
  assert.ok(outcomes.manifests > 0 && outcomes.indexes > 0, 'some inputs should have parsed');
});
