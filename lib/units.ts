// Sizes, rates and durations as operators type them on the command line.
import { usageError } from './errors.ts';

const SIZE_UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** "10G", "500M", "1024K", "1.5GiB", "123" (bytes): K, M, G, T are powers of 1024, as in du and docker. */
export function parseSize(s: string, flag = '--max-size'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(s.trim());
  const n = m ? Math.floor(Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]!) : NaN;
  if (!Number.isSafeInteger(n)) throw usageError(`${flag} ${s}: expected a size like 500M or 10G (or bytes)`);
  return n;
}

/** Bytes a second, as a size ("50M", "800K"); zero is refused (no limit is no flag). */
export function parseRate(s: string, flag: string): number {
  const n = parseSize(s, flag);
  if (n <= 0) throw usageError(`${flag} ${s}: expected a rate in bytes a second like 50M or 800K`);
  return n;
}

const DURATION_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** "7d", "12h", "30m", "1d12h" (s, m, h, d, w) in milliseconds. */
export function parseDuration(s: string, flag = '--older-than'): number {
  const text = s.trim().toLowerCase();
  if (!/^(\d+(\.\d+)?[smhdw])+$/.test(text)) throw usageError(`${flag} ${s}: expected a duration like 7d, 12h or 30m`);
  let ms = 0;
  for (const [, n, unit] of text.matchAll(/(\d+(?:\.\d+)?)([smhdw])/g)) ms += Number(n) * DURATION_UNITS[unit!]!;
  return ms;
}
