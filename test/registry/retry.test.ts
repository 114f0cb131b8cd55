import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, parseRetryAfter, sleep, Transient, withRetries, MAX_RETRY_AFTER_MS } from '../../lib/registry/retry.ts';
import { ExitCode, SwarmpullError, notFoundError } from '../../lib/errors.ts';

test('Retry-After: seconds, HTTP date, garbage, cap', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('3', now), 3000);
  assert.equal(parseRetryAfter(' 0 ', now), 0);
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now), 5000);
  assert.equal(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter('999999', now), MAX_RETRY_AFTER_MS);
  assert.equal(parseRetryAfter('soon', now), undefined);
  assert.equal(parseRetryAfter('-1', now), undefined);
  assert.equal(parseRetryAfter(undefined, now), undefined);
});

test('back-off doubles, stays within [d/2, d), and is capped', () => {
  for (let i = 0; i < 50; i++) {
    const d0 = backoffDelay(0, 100);
    const d3 = backoffDelay(3, 100);
    assert.ok(d0 >= 50 && d0 <= 100);
    assert.ok(d3 >= 400 && d3 <= 800);
    assert.ok(backoffDelay(40, 100) <= 30_000);
  }
});

test('withRetries retries Transient only, then gives up as unreachable (exit 6)', async () => {
  let n = 0;
  await assert.rejects(
    withRetries('thing', { retries: 2, backoffMs: 1 }, async () => {
      n++;
      throw new Transient('HTTP 503');
    }),
    (err: unknown) => err instanceof SwarmpullError && err.exitCode === ExitCode.unreachable && /thing: HTTP 503 \(gave up after 3 attempts\)/.test(err.message),
  );
  assert.equal(n, 3);
  n = 0;
  await assert.rejects(
    withRetries('thing', { retries: 5, backoffMs: 1 }, async () => {
      n++;
      throw notFoundError('gone');
    }),
    /gone/,
  );
  assert.equal(n, 1);
  n = 0;
  assert.equal(await withRetries('thing', { retries: 5, backoffMs: 1 }, async () => (++n < 3 ? Promise.reject(new Transient('x')) : 'ok')), 'ok');
});

test('abort ends a back-off wait at once', async () => {
  const ac = new AbortController();
  const t0 = performance.now();
  setTimeout(() => ac.abort(), 50);
  await assert.rejects(
    withRetries('thing', { retries: 5, backoffMs: 1, signal: ac.signal }, async () => {
      throw new Transient('wait', 30_000);
    }),
    { name: 'AbortError' },
  );
  assert.ok(performance.now() - t0 < 1000);
  await assert.rejects(sleep(10, AbortSignal.abort()), { name: 'AbortError' });
});
