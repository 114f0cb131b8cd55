import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, formatEta, formatRate, overallLine } from '../../lib/progress.ts';

test('sizes and rates are rounded as sizes: whole bytes, one decimal above', () => {
  assert.equal(formatRate(846.376811594203), '846 B/s');
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1023.6), '1.0 KiB');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatRate(12.34 * 2 ** 20), '12.3 MiB/s');
  assert.equal(formatBytes(3 * 2 ** 30), '3.0 GiB');
});

test('ETA in seconds, minutes or hours; unknown without a rate', () => {
  assert.equal(formatEta(0), '0s');
  assert.equal(formatEta(4.2), '5s');
  assert.equal(formatEta(185), '3m05s');
  assert.equal(formatEta(3720), '1h02m');
  assert.equal(formatEta(NaN), '--');
  assert.equal(formatEta(Infinity), '--');
});

test('the overall line: bytes done of all, rate, share from peers, ETA', () => {
  const MiB = 2 ** 20;
  assert.equal(overallLine({ size: 100 * MiB, registry: 10 * MiB, peers: 30 * MiB, cached: 0 }, 4), '40% 40.0 MiB/100.0 MiB, 10.0 MiB/s, 75% from peers, ETA 6s');
  // Cached bytes count as done, not in the rate or the share.
  assert.equal(overallLine({ size: 100 * MiB, registry: 10 * MiB, peers: 0, cached: 50 * MiB }, 2), '60% 60.0 MiB/100.0 MiB, 5.0 MiB/s, 0% from peers, ETA 8s');
  // Before half a second of downloading there is no rate to speak of.
  assert.equal(overallLine({ size: 10 * MiB, registry: 300, peers: 0, cached: 0 }, 0.1), '0% 300 B/10.0 MiB, -- B/s, 0% from peers, ETA --');
  // Re-fetched pieces (a blob that failed verification) never push it past 100%.
  assert.equal(overallLine({ size: MiB, registry: 2 * MiB, peers: 0, cached: 0 }, 1), '100% 1.0 MiB/1.0 MiB, 2.0 MiB/s, 0% from peers, ETA 0s');
});
