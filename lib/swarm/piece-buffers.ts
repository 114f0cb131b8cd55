// The buffers pieces from peers arrive in (Peer.requestPiece), used again once their piece is on disk: a fresh
// buffer per piece is a fresh allocation of 256 KiB or more (mmap-sized), its pages faulted in on first write.
/** free buffers kept, in bytes: the pieces of a full pipeline (96 blocks, 6 pieces) and then some */
const MAX_FREE_BYTES = 8 << 20;
const free = new Map<number, Buffer[]>();
let freeBytes = 0;

/** A buffer of exactly `length` bytes, contents undefined. */
export function takePieceBuffer(length: number): Buffer {
  const buf = free.get(length)?.pop();
  if (!buf) return Buffer.allocUnsafe(length);
  freeBytes -= length;
  return buf;
}

/** Give back a buffer from takePieceBuffer that nothing reads or writes any more. */
export function givePieceBuffer(buf: Buffer): void {
  if (freeBytes + buf.length > MAX_FREE_BYTES || buf.byteOffset !== 0 || buf.length !== buf.buffer.byteLength) return;
  let list = free.get(buf.length);
  if (!list) free.set(buf.length, (list = []));
  list.push(buf);
  freeBytes += buf.length;
}
