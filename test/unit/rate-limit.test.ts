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
