// Who fetches which run of a blob from the registry, decided by every host alone: rendezvous hashing over the ids
// of the hosts that know each other. Every host that knows the same peers computes the same owner without a word
// exchanged. Pure arithmetic, unit-tested directly.
import type { PieceLayout } from '../store/pieces.ts';

/** a registry request covers at most this much while peers share the blob, so pieces spread among hosts early */
const REGISTRY_RUN_BYTES = 1 << 20;
/** ... and a blob is cut into at least this many such units (shorter ones for small blobs), each with its own owner:
 *  a 1 MiB layer in 1 MiB units had one owner, which then served it alone to every other host */
const MIN_UNITS_PER_BLOB = 8;

/** Pieces per unit of registry ownership. */
export function unitPieces(layout: PieceLayout): number {
  return Math.max(1, Math.min(Math.floor(REGISTRY_RUN_BYTES / layout.pieceLength), Math.floor(layout.count / MIN_UNITS_PER_BLOB)));
}

/** The blob's salt: unit k of every layer would otherwise have the same owner. */
export function blobSalt(digest: string): number {
  return Number.parseInt(digest.slice(digest.indexOf(':') + 1).slice(0, 8), 16);
}

/** A host's id for the hashing: the first 32 bits of its peer id (hex). */
export function hostKey(peerIdHex: string): number {
  return Number.parseInt(peerIdHex.slice(0, 8), 16);
}

/** Index in `hosts` of the owner of unit `unit` (the first host wins a tie). */
export function unitOwner(unit: number, salt: number, hosts: readonly number[]): number {
  const u = mix32((unit + 1) ^ salt);
  let best = -1;
  let owner = 0;
  for (let k = 0; k < hosts.length; k++) {
    const h = mix32(hosts[k]! ^ u);
    if (h > best) {
      best = h;
      owner = k;
    }
  }
  return owner;
}

/** A host's score for a unit in unitOwner's hashing, in [0, 1): the owner is the host with the highest score. */
export function unitScore(unit: number, salt: number, host: number): number {
  return mix32(host ^ mix32((unit + 1) ^ salt)) / 0x100000000;
}

/** murmur3's 32-bit finaliser: a cheap, well-mixed hash of an integer. */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}
