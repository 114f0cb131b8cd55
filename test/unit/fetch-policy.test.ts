// The claim rules of lib/swarm/fetch-policy.ts: when a registry run renews its claims, and how long a peer's claim holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLAIM_MESSAGE_PIECES, CLAIM_MS, claimCounts, CLAIM_REFRESH_MS, claimMessages, claimsToRefresh, claimUntil, MAX_CLAIM_HOLD_MS } from '../../lib/swarm/fetch-policy.ts';

test('a run renews the claims of its pieces while its bytes arrive, each CLAIM_REFRESH_MS', () => {
  const run = { claimedAt: 1000, progressedAt: 1000, pieces: [4, 5, 6, 7], done: false };
  // bytes came, but too soon after the last claim
  assert.equal(claimsToRefresh({ ...run, progressedAt: 2000 }, 1000 + CLAIM_REFRESH_MS - 1), null);
  // pieces already here too: their announcements may still be on the way
  assert.deepEqual(claimsToRefresh({ ...run, progressedAt: 2000 }, 1000 + CLAIM_REFRESH_MS), [[4, 5, 6, 7]]);
  // all here: nothing to claim
  assert.equal(claimsToRefresh({ ...run, progressedAt: 2000, done: true }, 1000 + CLAIM_REFRESH_MS), null);
});

test('a run whose bytes stopped renews nothing: its claims lapse at the peers', () => {
  const run = { claimedAt: 1000, progressedAt: 1000, pieces: [4], done: false };
  for (const now of [1000 + CLAIM_REFRESH_MS, 1000 + CLAIM_MS, 1000 + 10 * CLAIM_MS]) assert.equal(claimsToRefresh(run, now), null);
});

test('a claim on a piece the peer announced counts for nothing (nothing would end it)', () => {
  const has = new Set([3]);
  assert.equal(claimCounts((i) => has.has(i), 3), false);
  assert.equal(claimCounts((i) => has.has(i), 4), true);
});

test('claims go out in messages a peer reads whole', () => {
  const pieces = Array.from({ length: 2 * CLAIM_MESSAGE_PIECES + 1 }, (_, i) => i);
  const messages = claimMessages(pieces);
  assert.deepEqual(messages.map((m) => m.length), [CLAIM_MESSAGE_PIECES, CLAIM_MESSAGE_PIECES, 1]);
  assert.deepEqual(messages.flat(), pieces);
});

test('a claim holds CLAIM_MS from its last renewal, and never past MAX_CLAIM_HOLD_MS from the first claim', () => {
  assert.equal(claimUntil(0, 0), CLAIM_MS);
  assert.equal(claimUntil(10_000, 0), 10_000 + CLAIM_MS);
  // a peer renewing its claim for ever
  let until = 0;
  for (let now = 0; now < 10 * MAX_CLAIM_HOLD_MS; now += CLAIM_REFRESH_MS) until = claimUntil(now, 0);
  assert.equal(until, MAX_CLAIM_HOLD_MS);
});
