// The swarm-key proof (lib/swarm/swarm-key.ts): the documented test vector (docs/protocol.md), and what the proof
// binds: the sender's role, both ids and both nonces; nonces we issued are known as ours.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { checkProof, isOurNonce, issueNonce, proof, type Transcript } from '../../lib/swarm/swarm-key.ts';

const key = Buffer.from('0123456789abcdef');
const t: Transcript = {
  infoHash: Buffer.from('47a78d754fe57e4143a48eca13ac34870f29e67f', 'hex'),
  initiatorId: Buffer.alloc(20, 0xaa),
  responderId: Buffer.alloc(20, 0xbb),
  initiatorNonce: Buffer.alloc(16, 1),
  responderNonce: Buffer.alloc(16, 2),
};

test('the documented test vector', () => {
  assert.equal(proof(key, 'initiator', t).toString('hex'), '4f27ebe1bccd6fa3a9c97aa4e8567620c9e1d538ee8150a989c00435e31d9327');
  assert.equal(proof(key, 'responder', t).toString('hex'), 'f08727291c8bf54177f120fda2a24b5c79ed57c05cb76cc259dec75a1f3a0af0');
});

test("a proof checks only for its sender's role, its key and its exact transcript", () => {
  const mac = proof(key, 'initiator', t);
  assert.ok(checkProof(key, 'initiator', t, mac));
  assert.ok(!checkProof(key, 'responder', t, mac), 'the mirror role');
  assert.ok(!checkProof(Buffer.from('another-key-0123456'), 'initiator', t, mac));
  const swapped = { ...t, initiatorNonce: t.responderNonce, responderNonce: t.initiatorNonce };
  assert.ok(!checkProof(key, 'initiator', swapped, mac), 'swapped nonces');
  assert.ok(!checkProof(key, 'initiator', { ...t, responderId: randomBytes(20) }, mac), 'another peer id');
  assert.ok(!checkProof(key, 'initiator', t, mac.subarray(0, 31)), 'a short MAC');
  assert.ok(!checkProof(key, 'initiator', t, 'not bytes'));
});

test('nonces we issue are known as ours; others are not', () => {
  const nonce = issueNonce();
  assert.equal(nonce.length, 16);
  assert.ok(isOurNonce(nonce));
  assert.ok(!isOurNonce(randomBytes(16)));
});
