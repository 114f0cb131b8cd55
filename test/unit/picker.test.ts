import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bitfield } from '../../lib/store/bitfield.ts';
import { PiecePicker } from '../../lib/swarm/picker.ts';

const bits = (n: number, set: number[]) => {
  const b = new Bitfield(n);
  for (const i of set) b.set(i);
  return b;
};

test('rarest first among the pieces a peer has', () => {
  const have = bits(6, [0]);
  const p = new PiecePicker(have);
  const a = bits(6, [0, 1, 2, 3]);
  const b = bits(6, [1, 2]);
  const c = bits(6, [2]);
  p.addPeer(a);
  p.addPeer(b);
  p.addPeer(c);
  // piece 3 is held by one peer only
  assert.equal(p.pickFromPeer(a), 3);
  p.start(3);
  assert.equal(p.pickFromPeer(a), 1);
  assert.equal(p.pickFromPeer(c), 2);
  p.removePeer(a);
  assert.equal(p.available(3), 0);
});

test('random tie-break spreads picks', () => {
  const have = bits(100, []);
  const peer = bits(100, Array.from({ length: 100 }, (_, i) => i));
  const seen = new Set<number>();
  for (let k = 0; k < 50; k++) seen.add(new PiecePicker(have).pickFromPeer(peer)!);
  assert.ok(seen.size > 20, `only ${seen.size} distinct picks`);
});

test('registry gets only pieces no peer has, nobody fetches and no peer claimed', () => {
  const have = bits(5, [0]);
  const p = new PiecePicker(have, () => 0);
  p.addPeer(bits(5, [1]));
  p.start(2);
  p.claimedByPeer(3, Date.now() + 10_000);
  assert.equal(p.pickForRegistry(), 4);
  p.start(4);
  assert.equal(p.pickForRegistry(), null);
  // a lapsed claim frees the piece
  p.claimedByPeer(3, Date.now() - 1);
  assert.equal(p.pickForRegistry(), 3);
  assert.ok(!p.extendsRegistryRun(4));
  assert.ok(p.extendsRegistryRun(3));
});

test('endgame duplicates active pieces, but not from the same peer', () => {
  const have = bits(3, [0, 1]);
  const p = new PiecePicker(have);
  const peer = bits(3, [2]);
  p.addPeer(peer);
  assert.ok(!p.inEndgame());
  p.start(2);
  assert.ok(p.inEndgame());
  assert.equal(p.pickFromPeer(peer), 2);
  assert.equal(p.pickFromPeer(peer, (i) => i === 2), null);
  p.finish(2);
  assert.ok(!p.isActive(2));
});
