// Swarm ids and their DNS-SD names. Every peer derives both from the blob alone (no tracker), so the byte
// encoding below is part of the protocol: changing it splits old and new versions into separate swarms.
import { createHash } from 'node:crypto';
import { isDigest } from '../image/digest.ts';

/** The DNS-SD service every swarmpull process registers (RFC 6763). */
export const SERVICE = '_swarmpull._tcp.local';

/**
 * The swarm id (BitTorrent infohash) of a blob: the first 20 bytes of
 *
 *   sha256( "swarmpull-v1" || digest || pieceLength )
 *
 * where all three parts are plain ASCII, concatenated with no separators, length prefixes or terminators:
 * - "swarmpull-v1": the 12 bytes 73 77 61 72 6d 70 75 6c 6c 2d 76 31;
 * - digest: the blob digest exactly as the registry writes it, lowercase, e.g. "sha256:" + 64 hex (71 bytes);
 * - pieceLength: the piece length in bytes as a decimal integer, no sign, no leading zeros (1 MiB → "1048576").
 *
 * The piece length is part of the id so that peers that disagree on the piece layout never share a swarm.
 * There is no ambiguity from the missing separators: the digest has a fixed length and ends in hex.
 */
export function swarmId(digest: string, pieceLength: number): Buffer {
  if (!isDigest(digest)) throw new TypeError(`swarmId: not a sha256 digest: ${digest.slice(0, 80)}`);
  if (!Number.isSafeInteger(pieceLength) || pieceLength <= 0) throw new TypeError(`swarmId: bad piece length ${pieceLength}`);
  return createHash('sha256')
    .update('swarmpull-v1', 'ascii')
    .update(digest, 'ascii')
    .update(String(pieceLength), 'ascii')
    .digest()
    .subarray(0, 20);
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/**
 * The DNS label for a swarm id: RFC 4648 base32 of the 20 bytes, lowercase, without padding. 20 bytes are
 * exactly 160 bits = 32 characters, well under the 63-byte label limit. Lowercase because DNS names compare
 * case-insensitively and we match names by lowercasing what we receive.
 */
export function subtypeLabel(id: Buffer): string {
  if (id.length !== 20) throw new TypeError(`swarm id must be 20 bytes, got ${id.length}`);
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of id) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1; // keep only the bits not yet written, so `value` never overflows
  }
  // 160 is a multiple of 5, so no bits are left over; kept for clarity should the length ever change.
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** The DNS-SD subtype name (RFC 6763 §7.1) a process answers for while it holds or fetches the blob. */
export function subtypeName(id: Buffer): string {
  return '_' + subtypeLabel(id) + '._sub.' + SERVICE;
}
