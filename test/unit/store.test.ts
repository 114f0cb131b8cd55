import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Bitfield } from '../../lib/store/bitfield.ts';
import { pieceLayout, pieceLength, pieceRange } from '../../lib/store/pieces.ts';
import { BlobStore } from '../../lib/store/store.ts';
import { tryLock } from '../../lib/store/lock.ts';
import { sha256Digest } from '../../lib/image/digest.ts';
import { ExitCode, SwarmpullError } from '../../lib/errors.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

test('piece length depends on size only: 256 KiB minimum, at most 1024 pieces', () => {
  assert.equal(pieceLength(0), 256 * KiB);
  assert.equal(pieceLength(100 * MiB), 256 * KiB);
  assert.equal(pieceLength(256 * MiB), 256 * KiB);
  assert.equal(pieceLength(256 * MiB + 1), 512 * KiB);
  assert.equal(pieceLength(1024 * MiB), 1 * MiB);
  assert.equal(pieceLength(5 * 1024 * MiB), 8 * MiB);
  for (const size of [1, 1000, 300 * MiB + 7, 3000 * MiB]) assert.ok(pieceLayout(size).count <= 1024);
  const l = pieceLayout(600 * KiB);
  assert.equal(l.count, 3);
  assert.deepEqual(pieceRange(l, 2), { start: 512 * KiB, end: 600 * KiB });
});

test('bitfield uses BitTorrent bit order', () => {
  const b = new Bitfield(10);
  b.set(0);
  b.set(9);
  assert.deepEqual([...b.buffer], [0x80, 0x40]);
  assert.equal(b.count(), 2);
  assert.ok(!b.isComplete());
  b.set(0, false);
  assert.ok(!b.get(0));
});

test('partial blob: resumes from its bitfield after close, verifies before commit', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'swarmpull-store-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = await new BlobStore(dir).init();
  const data = randomBytes(700 * KiB);
  const desc = { digest: sha256Digest(data), size: data.length };

  let p = await store.openPartial(desc);
  assert.deepEqual(p.missingRanges(), [{ start: 0, end: data.length }]);
  // first piece and half of the second
  await p.write(data.subarray(0, 384 * KiB), 0);
  await p.close();

  p = await store.openPartial(desc);
  assert.equal(p.completedBytes, 256 * KiB);
  assert.deepEqual(p.missingRanges(), [{ start: 256 * KiB, end: data.length }]);
  await p.write(data.subarray(256 * KiB), 256 * KiB);
  assert.ok(await p.verify());
  const path = await p.commit();
  assert.deepEqual(await readFile(path), data);
  assert.ok(await store.has(desc));
  await assert.rejects(stat(store.partialPath(desc.digest) + '.pieces'));
});

test('partial blob: a digest mismatch forgets every piece and is an integrity error', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'swarmpull-store-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = await new BlobStore(dir).init();
  const data = randomBytes(300 * KiB);
  const desc = { digest: sha256Digest(data), size: data.length };
  const p = await store.openPartial(desc);
  const bad = Buffer.from(data);
  bad[1000]! ^= 1;
  await p.write(bad, 0);
  assert.equal(await p.verify(), false);
  await assert.rejects(p.commit(), (e: unknown) => e instanceof SwarmpullError && e.exitCode === ExitCode.integrity);
  p.resetPieces();
  assert.equal(p.completedBytes, 0);
  assert.ok(!(await store.has(desc)));
  await p.close();
  // bytes beyond the declared size are refused
  const q = await store.openPartial(desc);
  await assert.rejects(q.write(Buffer.alloc(10), data.length - 5), /beyond its declared size/);
  await q.close();
});

test('partial blob: duplicate blocks count once, an abandoned piece starts afresh, onPiece fires once', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'swarmpull-store-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = await new BlobStore(dir).init();
  const data = randomBytes(512 * KiB);
  const desc = { digest: sha256Digest(data), size: data.length };
  const p = await store.openPartial(desc);
  const done: number[] = [];
  p.onPiece = (i) => done.push(i);
  const block = (i: number) => data.subarray(i * 16 * KiB, (i + 1) * 16 * KiB);
  // piece 0: every block but the last, some twice (two peers in the endgame)
  for (let b = 0; b < 15; b++) await p.write(block(b), b * 16 * KiB);
  await p.write(block(3), 3 * 16 * KiB);
  assert.deepEqual(done, []);
  await p.write(block(15), 15 * 16 * KiB);
  assert.deepEqual(done, [0]);
  await p.write(block(15), 15 * 16 * KiB);
  assert.deepEqual(done, [0], 'a complete piece is not reported again');
  // piece 1: half from one source, abandoned, then all of it from another (concurrently)
  await p.write(data.subarray(256 * KiB, 384 * KiB), 256 * KiB);
  p.abandon(1);
  await Promise.all(Array.from({ length: 16 }, (_, b) => p.write(block(16 + b), (16 + b) * 16 * KiB)));
  assert.deepEqual(done, [0, 1]);
  assert.ok(await p.verify());
  await p.commit();
  assert.deepEqual(await readFile(store.blobPath(desc.digest)), data);
});

test('partial blob: a block rewritten after it was hashed in order is verified from disk', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'swarmpull-store-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = await new BlobStore(dir).init();
  const data = randomBytes(256 * KiB);
  const desc = { digest: sha256Digest(data), size: data.length };
  const p = await store.openPartial(desc);
  // half a block of good bytes (hashed in order), then a whole bad block over it from another source
  await p.write(data.subarray(0, 8 * KiB), 0);
  await p.write(Buffer.alloc(16 * KiB, 7), 0);
  await p.write(data.subarray(16 * KiB), 16 * KiB);
  assert.equal(p.completedBytes, data.length);
  assert.equal(await p.verify(), false, 'the disk holds the bad block: verification must fail');
  await p.close();
});

test('putBytes refuses bytes that do not match the digest', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'swarmpull-store-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = await new BlobStore(dir).init();
  const body = Buffer.from('{"a":1}');
  await store.putBytes(sha256Digest(body), body);
  assert.deepEqual(await store.readBytes(sha256Digest(body), 100), body);
  await assert.rejects(store.putBytes(sha256Digest('other'), body), /digest mismatch/);
});

test('locks are exclusive and released', async () => {
  const key = 'test-' + Math.random();
  const a = await tryLock(key);
  assert.ok(a);
  assert.equal(await tryLock(key), null);
  await a.release();
  const b = await tryLock(key);
  assert.ok(b);
  await b.release();
});
