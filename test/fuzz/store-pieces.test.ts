// Fuzz: the piece bitfield a partial blob keeps beside its data (`<blob>.pieces`): whatever a crash, a full disk
// or another version left there, opening the blob never fails, and a bitfield is taken only when it fits the blob.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PartialBlob } from '../../lib/store/partial.ts';
import { pieceLayout } from '../../lib/store/pieces.ts';
import { fc, fuzz, mutated } from './fuzz.ts';

const MiB = 1 << 20;
let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'swarmpull-fuzz-pieces-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The file format (lib/store/partial.ts): "SPB1", size (u64 BE), piece length (u32 BE), bitfield. */
function piecesFile(size: number, pieceLength: number, bits: Uint8Array): Buffer {
  const h = Buffer.alloc(16);
  h.write('SPB1', 0, 'latin1');
  h.writeBigUInt64BE(BigInt(size), 4);
  h.writeUInt32BE(pieceLength, 12);
  return Buffer.concat([h, bits]);
}

const sizeArb = fc.oneof(fc.constantFrom(0, 1, 256 * 1024, 256 * 1024 + 1), fc.integer({ min: 0, max: 8 * MiB }));
const caseArb = sizeArb.chain((size) => {
  const layout = pieceLayout(size);
  const bits = fc.uint8Array({ minLength: Math.ceil(layout.count / 8), maxLength: Math.ceil(layout.count / 8) });
  const valid = bits.map((b) => piecesFile(size, layout.pieceLength, b));
  const corpus = [piecesFile(size, layout.pieceLength, new Uint8Array(Math.ceil(layout.count / 8)))];
  return fc.record({
    size: fc.constant(size),
    file: fc.oneof(valid, mutated(valid, corpus, 4096), fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)), fc.constant(null)),
  });
});

test('fuzz: a partial blob opens whatever its .pieces file holds, and trusts only a bitfield that fits', async (t) => {
  let n = 0;
  let taken = 0;
  const r = await fuzz('.pieces', caseArb, async ({ size, file }) => {
    const path = join(dir, `blob-${n++}`);
    if (file) await writeFile(path + '.pieces', file);
    const layout = pieceLayout(size);
    const blob = await PartialBlob.open(path, path + '.done', { digest: 'sha256:' + 'a'.repeat(64), size });
    try {
      assert.equal(blob.bitfield.length, layout.count);
      assert.equal(blob.bitfield.buffer.length, Math.ceil(layout.count / 8));
      // the header names this blob's size and layout, and a whole bitfield follows (anything after it is ignored)
      const fits = file !== null && file.length >= 16 + blob.bitfield.buffer.length && file.subarray(0, 16).equals(piecesFile(size, layout.pieceLength, new Uint8Array()));
      if (size === 0) {
        assert.ok(blob.bitfield.isComplete(), 'an empty blob has nothing to fetch');
      } else if (fits) {
        taken++;
        assert.deepEqual(Buffer.from(blob.bitfield.buffer), file.subarray(16, 16 + blob.bitfield.buffer.length));
      } else {
        assert.equal(blob.bitfield.count(), 0, 'a bitfield that does not fit the blob must be dropped');
      }
    } finally {
      await blob.close();
    }
    // What it leaves behind is a well-formed bitfield for this blob.
    const after = await readFile(path + '.pieces');
    assert.deepEqual(after.subarray(0, 16), piecesFile(size, layout.pieceLength, new Uint8Array()));
    await rm(path, { force: true });
    await rm(path + '.pieces', { force: true });
  });
  t.diagnostic(`${r.runs} files (${taken} bitfields taken) in ${r.seconds.toFixed(1)} s`);
  assert.ok(taken > 0 && taken < r.runs);
});
