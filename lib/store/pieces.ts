// Piece layout of a blob: a function of its size only, so every peer derives the same layout without a tracker.
const MIN_PIECE = 256 * 1024;
/** Bytes asked for in one wire request; pieces are whole multiples of it. */
export const BLOCK_SIZE = 16 * 1024;
const TARGET_PIECES = 1024;

/** Smallest power of two >= 256 KiB that keeps a blob at or under ~1024 pieces. */
export function pieceLength(size: number): number {
  let len = MIN_PIECE;
  while (Math.ceil(size / len) > TARGET_PIECES) len *= 2;
  return len;
}

export interface PieceLayout {
  size: number;
  pieceLength: number;
  count: number;
}

export function pieceLayout(size: number): PieceLayout {
  const len = pieceLength(size);
  return { size, pieceLength: len, count: Math.max(1, Math.ceil(size / len)) };
}

/** Byte range [start, end) of piece i. */
export function pieceRange(layout: PieceLayout, i: number): { start: number; end: number } {
  const start = i * layout.pieceLength;
  return { start, end: Math.min(layout.size, start + layout.pieceLength) };
}
