// `swarmpull store ls` and `swarmpull store prune`, run as a user would, against stores filled by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { BlobStore } from '../../lib/store/store.ts';
import { registerInUse } from '../../lib/store/in-use.ts';
import { sha256Digest } from '../../lib/image/digest.ts';
import { MediaType } from '../../lib/image/types.ts';
import { collect, runCli, startCli } from '../support/cli.ts';

const KiB = 1024;
const DAY = 86_400_000;

async function freshStore(t: { after: (fn: () => Promise<void>) => void }): Promise<BlobStore> {
  const dir = await mkdtemp(join(tmpdir(), 'swarmpull-store-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return new BlobStore(join(dir, 'store')).init();
}

/** Deterministic bytes (no two tests share blobs by accident). */
function bytes(seed: string, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0, block = 0; i < n; block++) {
    const h = createHash('sha256').update(`${seed}/${block}`).digest();
    i += h.copy(out, i);
  }
  return out;
}

async function put(store: BlobStore, body: Buffer, ageMs = 0): Promise<string> {
  const digest = sha256Digest(body);
  const path = await store.putBytes(digest, body);
  if (ageMs) await setAge(path, ageMs);
  return digest;
}

async function setAge(path: string, ageMs: number): Promise<void> {
  const when = new Date(Date.now() - ageMs);
  await utimes(path, when, when);
}

/** An index naming one linux/arm64 manifest of a config and a layer. */
async function putImage(store: BlobStore, seed: string) {
  const layer = bytes(`${seed}-layer`, 40 * KiB);
  const config = Buffer.from(JSON.stringify({ architecture: 'arm64', os: 'linux', variant: 'v8', rootfs: { type: 'layers', diff_ids: [] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: sha256Digest(config), size: config.length },
      layers: [{ mediaType: MediaType.ociLayerGzip, digest: sha256Digest(layer), size: layer.length }],
    }),
  );
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [{ mediaType: MediaType.ociManifest, digest: sha256Digest(manifest), size: manifest.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }],
    }),
  );
  return { layer: await put(store, layer), config: await put(store, config), manifest: await put(store, manifest), index: await put(store, index) };
}

/** A partial blob of 5 pieces (1 MiB + 5 bytes) with its first two pieces written. */
async function putPartial(store: BlobStore, seed: string, ageMs = 0): Promise<string> {
  const data = bytes(seed, 1024 * KiB + 5);
  const desc = { digest: sha256Digest(data), size: data.length };
  const p = await store.openPartial(desc);
  await p.write(data.subarray(0, 512 * KiB), 0);
  await p.close();
  if (ageMs) for (const f of [store.partialPath(desc.digest), store.partialPath(desc.digest) + '.pieces']) await setAge(f, ageMs);
  return desc.digest;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

const store_ = (store: BlobStore) => ['--store', store.root];

test('store ls: blobs with their kind and images, partials with their pieces; --json', async (t) => {
  const store = await freshStore(t);
  const image = await putImage(store, 'ls');
  const other = await put(store, bytes('other', 3000));
  const partial = await putPartial(store, 'ls-partial');

  const human = await runCli(['store', 'ls', ...store_(store)]);
  assert.equal(human.code, 0, human.stderr);
  const lines = human.stdout.split('\n');
  const row = (digest: string) => lines.find((l) => l.startsWith(digest.slice(7, 19))) ?? '';
  assert.match(lines[0]!, /^DIGEST\s+KIND\s+SIZE\s+LAST USED\s+IMAGES$/);
  assert.match(row(image.layer), /layer\s+40\.0 KiB\s+just now\s+/);
  assert.ok(row(image.layer).includes(`${image.manifest.slice(7, 19)} (linux/arm64/v8)`), row(image.layer));
  assert.ok(row(image.layer).includes(image.index.slice(7, 19)), row(image.layer));
  assert.match(row(image.config), /config/);
  assert.match(row(image.manifest), new RegExp(`manifest .* ${image.index.slice(7, 19)}$`));
  assert.match(row(image.index), /index\s+.*\s+-$/);
  assert.match(row(other), /blob\s+2\.9 KiB\s+just now\s+-$/);
  assert.match(row(partial), /^\S+\s+1\.0 MiB\s+2\/5 \(40%\)\s+\S+ \S+\s+just now\s+paused$/);
  assert.match(human.stdout, /5 blobs \(2 images\), 1 partial; .* in /);

  const json = await runCli(['store', 'ls', '--json', ...store_(store)]);
  assert.equal(json.code, 0, json.stderr);
  const doc = JSON.parse(json.stdout);
  assert.equal(doc.root, store.root);
  const blob = (d: string) => doc.blobs.find((b: { digest: string }) => b.digest === d);
  assert.deepEqual(blob(image.layer).images, [image.index, image.manifest].sort());
  assert.equal(blob(image.layer).kind, 'layer');
  assert.equal(blob(image.layer).size, 40 * KiB);
  assert.equal(blob(image.layer).inUse, false);
  assert.ok(!Number.isNaN(Date.parse(blob(image.layer).lastUsed)));
  assert.deepEqual(blob(image.manifest).images, [image.index]);
  assert.equal(blob(other).kind, 'blob');
  assert.deepEqual(blob(other).images, []);
  assert.equal(doc.partials.length, 1);
  assert.deepEqual(doc.partials[0].pieces, { done: 2, total: 5 });
  assert.equal(doc.partials[0].digest, partial);
  assert.equal(doc.partials[0].size, 1024 * KiB + 5);
  assert.equal(doc.partials[0].downloading, false);
  const images = Object.fromEntries(doc.images.map((i: { digest: string }) => [i.digest, i]));
  assert.equal(images[image.index].kind, 'index');
  assert.deepEqual(images[image.index].blobs, [image.manifest]);
  assert.equal(images[image.manifest].platform, 'linux/arm64/v8');
  assert.deepEqual(images[image.manifest].blobs, [image.config, image.layer]);
  assert.deepEqual(images[image.manifest].missing, []);
});

test('store ls: a partial whose lock a pull holds is downloading; blobs a process registered are in use', async (t) => {
  const store = await freshStore(t);
  const partial = await putPartial(store, 'ls-lock');
  const blob = await put(store, bytes('ls-inuse', 100));
  const lock = await store.lockBlob(partial, { timeoutMs: 1000 });
  t.after(() => lock.release());
  const inUse = await registerInUse(store, [blob]);
  t.after(() => inUse.release());
  const r = await runCli(['store', 'ls', '--json', ...store_(store)]);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  assert.equal(doc.partials[0].downloading, true);
  assert.equal(doc.blobs[0].inUse, true);
  const human = await runCli(['store', 'ls', ...store_(store)]);
  assert.match(human.stdout, /downloading/);
  assert.match(human.stdout, /\[in use\]/);
});

test('store ls: an empty or missing store lists nothing', async (t) => {
  const store = await freshStore(t);
  const r = await runCli(['store', 'ls', ...store_(store)]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `no blobs in ${store.root}\n`);
  const missing = await runCli(['store', 'ls', '--json', '--store', join(store.root, 'nope')]);
  assert.equal(missing.code, 0, missing.stderr);
  assert.deepEqual(JSON.parse(missing.stdout).blobs, []);
  // SWARMPULL_STORE is the default store, as for pull and serve
  const env = await runCli(['store', 'ls', '--json'], { env: { ...process.env, SWARMPULL_STORE: store.root } });
  assert.equal(JSON.parse(env.stdout).root, store.root);
});

/** Three 100 KiB blobs, last used 10, 5 and 1 days ago. */
async function threeBlobs(store: BlobStore) {
  return {
    old: await put(store, bytes('old', 100 * KiB), 10 * DAY),
    mid: await put(store, bytes('mid', 100 * KiB), 5 * DAY),
    recent: await put(store, bytes('recent', 100 * KiB), 1 * DAY),
  };
}

test('store prune --max-size: least recently used blobs go first, until the store fits', async (t) => {
  const store = await freshStore(t);
  const b = await threeBlobs(store);
  const r = await runCli(['store', 'prune', '--max-size', '150K', ...store_(store)]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!(await store.has({ digest: b.old, size: 100 * KiB })));
  assert.ok(!(await store.has({ digest: b.mid, size: 100 * KiB })));
  assert.ok(await store.has({ digest: b.recent, size: 100 * KiB }));
  assert.match(r.stdout, new RegExp(`^deleted ${b.old} blob 100\\.0 KiB \\(size, last used 10d ago\\)$`, 'm'));
  assert.match(r.stdout, new RegExp(`^deleted ${b.mid} blob`, 'm'));
  assert.match(r.stdout, /^freed 200\.0 KiB: 300\.0 KiB -> 100\.0 KiB in /m);

  // Already under the limit: nothing to do.
  const again = await runCli(['store', 'prune', '--max-size', '1G', '--json', ...store_(store)]);
  assert.equal(again.code, 0, again.stderr);
  const doc = JSON.parse(again.stdout);
  assert.deepEqual(doc.deleted, []);
  assert.equal(doc.sizeBefore, 100 * KiB);
  assert.equal(doc.sizeAfter, 100 * KiB);
});

test('store prune --older-than: blobs and partials unused for that long go', async (t) => {
  const store = await freshStore(t);
  const b = await threeBlobs(store);
  const oldPartial = await putPartial(store, 'age-old', 8 * DAY);
  const newPartial = await putPartial(store, 'age-new');
  const r = await runCli(['store', 'prune', '--older-than', '3d', '--json', ...store_(store)]);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  assert.deepEqual(
    doc.deleted.map((d: { digest: string; what: string; reason: string }) => [d.digest, d.what, d.reason]).sort(),
    [[b.old, 'blob', 'age'], [b.mid, 'blob', 'age'], [oldPartial, 'partial', 'age']].sort(),
  );
  assert.ok(await store.has({ digest: b.recent, size: 100 * KiB }));
  assert.ok(!(await exists(store.partialPath(oldPartial))));
  assert.ok(!(await exists(store.partialPath(oldPartial) + '.pieces')));
  assert.ok(await exists(store.partialPath(newPartial)));
  // The blob used a day ago: kept by 2d, deleted by 12h.
  const keep = await runCli(['store', 'prune', '--older-than', '2d', ...store_(store)]);
  assert.equal(keep.code, 0, keep.stderr);
  assert.ok(await store.has({ digest: b.recent, size: 100 * KiB }));
  const drop = await runCli(['store', 'prune', '--older-than', '12h', ...store_(store)]);
  assert.equal(drop.code, 0, drop.stderr);
  assert.ok(!(await store.has({ digest: b.recent, size: 100 * KiB })));
});

test('store prune never deletes a blob or partial whose download lock a running pull holds', async (t) => {
  const store = await freshStore(t);
  const b = await threeBlobs(store);
  const partial = await putPartial(store, 'locked-partial', 9 * DAY);
  const locks = [await store.lockBlob(b.old, { timeoutMs: 1000 }), await store.lockBlob(partial, { timeoutMs: 1000 })];
  t.after(async () => {
    for (const l of locks) await l.release();
  });
  const r = await runCli(['store', 'prune', '--max-size', '0', ...store_(store)]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(await store.has({ digest: b.old, size: 100 * KiB }), 'the locked blob is kept');
  assert.ok(await exists(store.partialPath(partial)), 'the locked partial is kept');
  assert.ok(!(await store.has({ digest: b.mid, size: 100 * KiB })));
  assert.ok(!(await store.has({ digest: b.recent, size: 100 * KiB })));
  assert.match(r.stdout, new RegExp(`^kept ${b.old} blob: a pull is downloading it$`, 'm'));
  assert.match(r.stdout, new RegExp(`^kept ${partial} partial: a pull is downloading it$`, 'm'));
  assert.match(r.stdout, /^still over --max-size 0 B: the rest is in use$/m);

  // Released: the next prune deletes them.
  for (const l of locks) await l.release();
  const after = await runCli(['store', 'prune', '--max-size', '0', ...store_(store)]);
  assert.equal(after.code, 0, after.stderr);
  assert.ok(!(await store.has({ digest: b.old, size: 100 * KiB })));
  assert.ok(!(await exists(store.partialPath(partial))));
});

test('store prune never deletes blobs a running serve or pull registered as in use; dead registrations are cleared', async (t) => {
  const store = await freshStore(t);
  const b = await threeBlobs(store);
  const inUse = await registerInUse(store, [b.old]);
  t.after(() => inUse.release());
  // The registration of a process that died (its lock is gone with it): it protects nothing.
  await mkdir(join(store.root, 'in-use'), { recursive: true });
  const dead = join(store.root, 'in-use', '999999-0123456789abcdef');
  await writeFile(dead, JSON.stringify({ pid: 999999, since: new Date().toISOString(), digests: [b.mid] }));

  const r = await runCli(['store', 'prune', '--older-than', '3d', '--json', ...store_(store)]);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  assert.deepEqual(doc.kept, [{ digest: b.old, what: 'blob', reason: 'in use' }]);
  assert.deepEqual(doc.deleted.map((d: { digest: string }) => d.digest), [b.mid]);
  assert.ok(await store.has({ digest: b.old, size: 100 * KiB }));
  assert.ok(!(await exists(dead)), 'the dead registration is removed');
  assert.equal((await readdir(join(store.root, 'in-use'))).length, 1, 'the live registration stays');

  await inUse.release();
  assert.deepEqual(await readdir(join(store.root, 'in-use')), []);
  const after = await runCli(['store', 'prune', '--older-than', '3d', ...store_(store)]);
  assert.equal(after.code, 0, after.stderr);
  assert.ok(!(await store.has({ digest: b.old, size: 100 * KiB })));
});

test('store prune --dry-run deletes nothing and says what it would delete', async (t) => {
  const store = await freshStore(t);
  const b = await threeBlobs(store);
  const partial = await putPartial(store, 'dry', 30 * DAY);
  await writeFile(join(store.root, 'tmp', 'leftover'), 'x');
  await setAge(join(store.root, 'tmp', 'leftover'), DAY);
  const before = (await readdir(join(store.root, 'blobs/sha256'))).length;
  const r = await runCli(['store', 'prune', '--dry-run', '--max-size', '0', '--older-than', '1m', ...store_(store)]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await readdir(join(store.root, 'blobs/sha256'))).length, before);
  assert.ok(await exists(store.partialPath(partial)));
  assert.ok(await exists(join(store.root, 'tmp', 'leftover')));
  for (const d of Object.values(b)) assert.match(r.stdout, new RegExp(`^would delete ${d} blob`, 'm'));
  assert.match(r.stdout, new RegExp(`^would delete ${partial} partial`, 'm'));
  assert.match(r.stdout, new RegExp(`^would delete ${join(store.root, 'tmp', 'leftover')} leftover 1 B \\(stale`, 'm'));
  assert.match(r.stdout, /^would free /m);
  assert.doesNotMatch(r.stdout, /^deleted /m);
});

test('store prune removes leftovers of crashed processes: old temporary files, bitfields without data, unreadable partials', async (t) => {
  const store = await freshStore(t);
  const keep = await put(store, bytes('keep', 10));
  const tmpOld = join(store.root, 'tmp', 'abc.1234');
  const tmpNew = join(store.root, 'tmp', 'def.5678');
  await writeFile(tmpOld, 'old');
  await setAge(tmpOld, 2 * 3_600_000);
  await writeFile(tmpNew, 'new'); // may be a write in progress
  const orphan = store.partialPath(sha256Digest('orphan')) + '.pieces';
  await writeFile(orphan, 'SPB1');
  await setAge(orphan, 2 * 3_600_000);
  const torn = store.partialPath(sha256Digest('torn'));
  await writeFile(torn, Buffer.alloc(100));
  await writeFile(torn + '.pieces', 'garbage');
  const r = await runCli(['store', 'prune', ...store_(store)]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!(await exists(tmpOld)));
  assert.ok(await exists(tmpNew));
  assert.ok(!(await exists(orphan)));
  assert.ok(!(await exists(torn)));
  assert.ok(!(await exists(torn + '.pieces')));
  assert.ok(await store.has({ digest: keep, size: 10 }), 'without --max-size or --older-than no blob goes');
});

test('store prune: a bad SIZE or DURATION is a usage error (exit 2, one line)', async (t) => {
  const store = await freshStore(t);
  for (const args of [
    ['--max-size', '10X'],
    ['--max-size', '-5'],
    ['--max-size', 'G'],
    ['--older-than', '7'],
    ['--older-than', '3 days'],
    ['--older-than', 'd'],
  ]) {
    const r = await runCli(['store', 'prune', ...args, ...store_(store)]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^swarmpull: ${args[0]} .*: expected a `));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  const unknown = await runCli(['store', 'prune', '--max-age', '3d', ...store_(store)]);
  assert.equal(unknown.code, 2, unknown.stderr);
});

test('store prune leaves alone every blob a running `swarmpull serve` seeds, and deletes them once it stops', async (t) => {
  const store = await freshStore(t);
  const b = await putImage(store, 'served');
  const serve = startCli(['serve', '--no-mdns', '--port', '0', ...store_(store)]);
  t.after(() => serve.kill('SIGKILL'));
  const done = collect(serve, 60_000);
  // serve logs once its blobs are registered and seeded
  await new Promise<void>((resolve, reject) => {
    let err = '';
    serve.stderr!.on('data', (d) => ((err += d), /serving \d+ blobs/.test(err) && resolve()));
    serve.once('exit', () => reject(new Error(`serve exited: ${err}`)));
  });
  const r = await runCli(['store', 'prune', '--max-size', '0', '--json', ...store_(store)]);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  assert.deepEqual(doc.deleted, []);
  assert.deepEqual(doc.kept.map((k: { digest: string }) => k.digest).sort(), Object.values(b).sort());

  serve.kill('SIGTERM');
  assert.equal((await done).code, 0, 'serve stops cleanly on SIGTERM');
  const after = await runCli(['store', 'prune', '--max-size', '0', '--json', ...store_(store)]);
  assert.equal(after.code, 0, after.stderr);
  assert.equal(JSON.parse(after.stdout).deleted.length, 4);
});
