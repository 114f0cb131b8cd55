// What answers to peers may hold (lib/swarm/upload-budget.ts): bounds per process and per address, waiters woken
// when bytes come back, buffers used again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UploadBudget } from '../../lib/swarm/upload-budget.ts';

const KiB = 1024;

test('bounds per process and per address; a waiter is woken when bytes come back; buffers are reused', async () => {
  const b = new UploadBudget(256 * KiB, 64 * KiB);
  let woken = 0;
  // one per connection
  const wake = () => woken++;
  const wake2 = () => woken++;
  const a1 = b.take('10.0.0.1', 48 * KiB, wake)!;
  assert.equal(a1.length, 48 * KiB);
  // the address's bound: 48 + 32 > 64
  assert.equal(b.take('10.0.0.1', 32 * KiB, wake), null);
  // an address that holds nothing may take one read larger than its bound
  const big = b.take('10.0.0.2', 128 * KiB, wake)!;
  assert.equal(big.length, 128 * KiB);
  // the process's bound: 48 + 128 + 96 > 256
  assert.equal(b.take('10.0.0.3', 96 * KiB, wake2), null);
  assert.equal(b.bytes, 176 * KiB);
  b.give('10.0.0.1', a1, true);
  await new Promise((r) => setImmediate(r));
  assert.equal(woken, 2, 'each waiter woken once');
  // the buffer given back is the one taken next for that size
  assert.equal(b.take('10.0.0.4', 48 * KiB, wake), a1);
  assert.equal(b.bytes, 176 * KiB);
});
