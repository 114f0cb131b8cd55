// Store maintenance: SIZE and DURATION parsing, the partial-blob header reader, in-use registrations, prune.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExitCode, SwarmpullError } from '../../lib/errors.ts';
import { sha256Digest } from '../../lib/image/digest.ts';
import { prune } from '../../lib/store/gc.ts';
import { parseDuration, parseSize } from '../../lib/units.ts';
import { maintenanceLock, readRegistrations, registerInUse, registerSeeding } from '../../lib/store/in-use.ts';
import { readInventory, readPieces } from '../../lib/store/inventory.ts';
import { BlobStore } from '../../lib/store/store.ts';

const KiB = 1024;

async function freshStore(t: { after: (fn: () => Promise<void>) => void }): Promise<BlobStore> {
  const dir = await mkdtemp(join(tmpdir(), 'swarmpull-gc-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return new BlobStore(dir).init();
}

const isUsage = (err: unknown) => err instanceof SwarmpullError && err.exitCode === ExitCode.usage;

test('parseSize: bytes, or K/M/G/T as powers of 1024, with an optional B or iB', () => {
  const cases: [string, number][] = [
    ['0', 0],
    ['123', 123],
    ['1024K', 1024 * 1024],
    ['500M', 500 * 2 ** 20],
    ['10G', 10 * 2 ** 30],
    ['10g', 10 * 2 ** 30],
    ['1.5GiB', 1.5 * 2 ** 30],
    ['2T', 2 * 2 ** 40],
    ['100B', 100],
    ['7 MB', 7 * 2 ** 20],
  ];
  for (const [s, n] of cases) assert.equal(parseSize(s), n, s);
  for (const s of ['', 'G', '10X', '-5', '1e6', '10GG', 'ten']) assert.throws(() => parseSize(s), isUsage, s);
});

test('parseDuration: s, m, h, d, w, combined; a bare number is refused', () => {
  const cases: [string, number][] = [
    ['30s', 30_000],
    ['30m', 30 * 60_000],
    ['12h', 12 * 3_600_000],
    ['7d', 7 * 86_400_000],
    ['2w', 14 * 86_400_000],
    ['1d12h', 36 * 3_600_000],
    ['1.5h', 90 * 60_000],
    ['0d', 0],
  ];
  for (const [s, n] of cases) assert.equal(parseDuration(s), n, s);
  for (const s of ['', '7', 'd', '3 days', '-1d', '1y', 'h12']) assert.throws(() => parseDuration(s), isUsage, s);
});

test('readPieces reads the bitfield file PartialBlob writes (same header format)', async (t) => {
  const store = await freshStore(t);
  const data = randomBytes(700 * KiB); // 3 pieces of 256 KiB
  const desc = { digest: sha256Digest(data), size: data.length };
  const p = await store.openPartial(desc);
  await p.write(data.subarray(256 * KiB, 512 * KiB), 256 * KiB);
  await p.close();
  assert.deepEqual(await readPieces(store.partialPath(desc.digest) + '.pieces'), { size: data.length, done: 1, total: 3 });
  const empty = { digest: sha256Digest(''), size: 0 };
  await (await store.openPartial(empty)).close();
  assert.deepEqual(await readPieces(store.partialPath(empty.digest) + '.pieces'), { size: 0, done: 1, total: 1 });
  assert.equal(await readPieces(join(store.root, 'no-such-file')), null);
});

test('reading the inventory does not update access times (LRU stays honest)', async (t) => {
  const store = await freshStore(t);
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] }));
  const digest = sha256Digest(body);
  const path = await store.putBytes(digest, body);
  const past = new Date(Date.now() - 5 * 86_400_000);
  await utimes(path, past, past);
  const inv = await readInventory(store.root);
  assert.equal(inv.blobs[0]!.kind, 'index');
  assert.equal(Math.round((await stat(path)).atimeMs / 1000), Math.round(past.getTime() / 1000));
});

test('in-use registrations: add, list, release; a registration is written under the maintenance lock', async (t) => {
  const store = await freshStore(t);
  const [a, b] = [sha256Digest('a'), sha256Digest('b')];
  const inUse = await registerInUse(store, [a]);
  let regs = await readRegistrations(store.root);
  assert.equal(regs.length, 1);
  assert.deepEqual(regs[0]!.digests, [a]);
  assert.equal(regs[0]!.pid, process.pid);

  // While prune holds the maintenance lock, a registration waits for it.
  const maintenance = await maintenanceLock(store.root);
  let added = false;
  const adding = inUse.add([b]).then(() => (added = true));
  await sleep(400);
  assert.equal(added, false);
  await maintenance.release();
  await adding;
  regs = await readRegistrations(store.root);
  assert.deepEqual(regs[0]!.digests.sort(), [a, b].sort());

  const release = await registerSeeding(store, [b]);
  assert.equal((await readRegistrations(store.root)).length, 2);
  await release();
  await inUse.release();
  assert.deepEqual(await readRegistrations(store.root), []);
  assert.deepEqual(await readdir(join(store.root, 'in-use')), []);
});

test('in-use registrations end with their process, even on SIGKILL', async (t) => {
  const store = await freshStore(t);
  const digest = sha256Digest('held by a child');
  const inUseModule = new URL('../../lib/store/in-use.ts', import.meta.url).href;
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { registerInUse } = await import(${JSON.stringify(inUseModule)});
       await registerInUse({ root: ${JSON.stringify(store.root)} }, [${JSON.stringify(digest)}]);
       process.stdout.write('ready\\n');
       setInterval(() => {}, 1000);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.after(() => child.kill('SIGKILL'));
  await once(child.stdout!, 'data');
  assert.deepEqual((await readRegistrations(store.root)).flatMap((r) => r.digests), [digest]);
  child.kill('SIGKILL');
  await once(child, 'exit');
  assert.equal((await readdir(join(store.root, 'in-use'))).length, 1, 'the file outlives the process');
  assert.deepEqual(await readRegistrations(store.root), [], 'but it is not live');
  assert.equal((await readdir(join(store.root, 'in-use'))).length, 1, 'listing removes nothing');
  await readRegistrations(store.root, { removeStale: true });
  assert.deepEqual(await readdir(join(store.root, 'in-use')), []);
});

test('prune: age and size rules together, registrations respected, dry run reports the same plan', async (t) => {
  const store = await freshStore(t);
  const now = Date.now();
  const put = async (seed: string, size: number, ageDays: number) => {
    const body = Buffer.alloc(size, seed);
    const digest = sha256Digest(body);
    const path = await store.putBytes(digest, body);
    const when = new Date(now - ageDays * 86_400_000);
    await utimes(path, when, when);
    return digest;
  };
  const ancient = await put('a', 10 * KiB, 30);
  const held = await put('h', 10 * KiB, 20);
  const older = await put('o', 10 * KiB, 3);
  const newer = await put('n', 10 * KiB, 2);
  const newest = await put('x', 10 * KiB, 1);
  const inUse = await registerInUse(store, [held]);
  t.after(() => inUse.release());

  const opts = { olderThanMs: 10 * 86_400_000, maxSize: 25 * KiB, now };
  const plan = await prune(store.root, { ...opts, dryRun: true });
  assert.equal((await readdir(join(store.root, 'blobs/sha256'))).length, 5, 'a dry run deletes nothing');
  const result = await prune(store.root, opts);
  for (const r of [plan, result]) {
    assert.deepEqual(
      r.deleted.map((d) => [d.digest, d.reason]),
      [
        [ancient, 'age'],
        [older, 'size'],
        [newer, 'size'],
      ],
    );
    assert.deepEqual(r.kept, [{ digest: held, what: 'blob', reason: 'in use' }]);
    assert.equal(r.sizeBefore, 50 * KiB);
    assert.equal(r.sizeAfter, 20 * KiB);
    assert.equal(r.overMaxSize, false);
  }
  assert.equal(plan.dryRun, true);
  assert.deepEqual((await readdir(join(store.root, 'blobs/sha256'))).sort(), [held, newest].map((d) => d.slice(7)).sort());
});
