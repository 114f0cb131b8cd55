import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimit } from '../../lib/rate-limit.ts';
import { parseRate } from '../../lib/units.ts';
import { ExitCode, SwarmpullError } from '../../lib/errors.ts';

test('rates parse as sizes with binary units, and zero is refused', () => {
  assert.equal(parseRate('50M', '--x'), 50 * 1024 * 1024);
  assert.equal(parseRate('800k', '--x'), 800 * 1024);
  assert.equal(parseRate('1GiB', '--x'), 1024 ** 3);
  assert.equal(parseRate('12345', '--x'), 12345);
  for (const bad of ['', '0', '-1M', '10X', 'fast']) {
    assert.throws(() => parseRate(bad, '--x'), (e: unknown) => e instanceof SwarmpullError && e.exitCode === ExitCode.usage, bad);
  }
});

test('the bucket holds a rate over time', async () => {
  const limit = new RateLimit(1024 * 1024); // 1 MiB/s, 256 KiB burst
  const start = Date.now();
  for (let i = 0; i < 12; i++) await limit.take(64 * 1024); // 768 KiB: 256 KiB burst + 512 KiB at 1 MiB/s
  const ms = Date.now() - start;
  assert.ok(ms >= 400 && ms < 1500, `took ${ms} ms`);
});

test('bytes already read are charged: within the burst no wait, past it a wait until the bucket refills to the resume mark', () => {
  const limit = new RateLimit(1024 * 1024); // 1 MiB/s, 256 KiB burst
  assert.equal(limit.charge(256 * 1024), 0);
  // 64 KiB over: the reader pauses until 256 KiB are back (320 KiB at 1 MiB/s: ~312 ms), so its next reads are full
  const wait = limit.charge(64 * 1024, 256 * 1024);
  assert.ok(wait >= 300 && wait <= 320, `wait ${wait} ms`);
  // a resume mark above the burst is held to the burst
  const limit2 = new RateLimit(1024 * 1024);
  limit2.charge(256 * 1024);
  const wait2 = limit2.charge(64 * 1024, 10 * 1024 * 1024);
  assert.ok(wait2 >= 300 && wait2 <= 320, `wait ${wait2} ms`);
});
