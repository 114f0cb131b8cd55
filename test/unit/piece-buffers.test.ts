// Piece buffers (lib/swarm/piece-buffers.ts): given back, the next piece of that size gets the same buffer; the
// free list is bounded; views and pooled small buffers are never kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { givePieceBuffer, takePieceBuffer } from '../../lib/swarm/piece-buffers.ts';

test('a piece buffer given back is used again for the same size, and only whole buffers are kept, up to a bound', () => {
  const a = takePieceBuffer(256 * 1024);
  assert.equal(a.length, 256 * 1024);
  givePieceBuffer(a);
  assert.equal(takePieceBuffer(256 * 1024), a);
  assert.notEqual(takePieceBuffer(128 * 1024).length, 0);
  // a view of a buffer, or a small buffer from Node's shared pool, is not kept (someone else owns the rest)
  const view = Buffer.alloc(512 * 1024).subarray(0, 256 * 1024);
  givePieceBuffer(view);
  assert.notEqual(takePieceBuffer(256 * 1024), view);
  const small = Buffer.allocUnsafe(100);
  givePieceBuffer(small);
  assert.notEqual(takePieceBuffer(100), small);
  // at most 8 MiB are kept
  const many = Array.from({ length: 40 }, () => takePieceBuffer(1024 * 1024));
  for (const b of many) givePieceBuffer(b);
  const back = new Set(many);
  let reused = 0;
  for (let i = 0; i < 40; i++) if (back.has(takePieceBuffer(1024 * 1024))) reused++;
  assert.equal(reused, 8);
});
