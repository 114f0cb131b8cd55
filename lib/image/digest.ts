import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { integrityError, usageError, quoted } from '../errors.ts';

// Only sha256 is accepted: it is what every registry emits, and a strict pattern keeps digests safe to use
// as file names (no "sha256:../../x").
const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export function isDigest(s: string): boolean {
  return DIGEST_RE.test(s);
}

/** Validate a digest from outside input; throws a usage error for a malformed one. */
export function parseDigest(s: string, what = 'digest'): string {
  if (!DIGEST_RE.test(s)) throw usageError(`invalid ${what} ${quoted(s, 100)}: expected sha256:<64 hex>`);
  return s;
}

/** The hex part of a validated digest, used as a file name. */
export function digestHex(digest: string): string {
  return parseDigest(digest).slice('sha256:'.length);
}

export function sha256Digest(data: Uint8Array | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

/** Hash a file by streaming it (memory stays flat whatever the size). */
export async function fileDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return 'sha256:' + hash.digest('hex');
}

export function assertDigest(actual: string, expected: string, what: string): void {
  if (actual !== expected) throw integrityError(`${what}: digest mismatch (expected ${expected}, got ${actual})`);
}
