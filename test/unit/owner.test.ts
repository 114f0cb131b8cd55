import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { pieceLayout } from '../../lib/store/pieces.ts';
import { blobSalt, hostKey, unitOwner, unitPieces } from '../../lib/swarm/owner.ts';

const MiB = 1 << 20;
const digest = (seed: string) => `sha256:${createHash('sha256').update(seed).digest('hex')}`;
const peerId = (seed: string) => createHash('sha1').update(seed).digest('hex');
const hosts = Array.from({ length: 8 }, (_, i) => hostKey(peerId(`host ${i}`)));

test('registry runs: 1 MiB units, but at least 8 units in a small blob', () => {
  assert.equal(unitPieces(pieceLayout(128 * MiB)), 4); // 256 KiB pieces, 1 MiB runs
  assert.equal(unitPieces(pieceLayout(4 * MiB)), 2); // 16 pieces: 8 units of 2
  assert.equal(unitPieces(pieceLayout(MiB + 10_000)), 1); // 5 pieces: 5 one-piece units
  assert.equal(unitPieces(pieceLayout(1000)), 1);
});

test('every host computes the same owner, whatever order it knows its peers in', () => {
  const salt = blobSalt(digest('layer'));
  for (let unit = 0; unit < 64; unit++) {
    const owner = hosts[unitOwner(unit, salt, hosts)];
    const reversed = [...hosts].reverse();
    assert.equal(reversed[unitOwner(unit, salt, reversed)], owner, `unit ${unit}`);
  }
});

test('the first unit of different blobs falls to different hosts (each layer is not fetched by one host alone)', () => {
  const owners = new Set<number>();
  for (let b = 0; b < 64; b++) owners.add(unitOwner(0, blobSalt(digest(`layer ${b}`)), hosts));
  assert.equal(owners.size, hosts.length, `unit 0 of 64 blobs had only ${owners.size} owners among ${hosts.length} hosts`);
});

test('units of one blob spread over the hosts', () => {
  const salt = blobSalt(digest('big layer'));
  const count = new Map<number, number>();
  for (let unit = 0; unit < 512; unit++) {
    const owner = unitOwner(unit, salt, hosts);
    count.set(owner, (count.get(owner) ?? 0) + 1);
  }
  assert.equal(count.size, hosts.length);
  for (const [host, n] of count) assert.ok(n > 32 && n < 100, `host ${host} owns ${n} of 512 units`);
});
