// A blob being downloaded: a sparse data file plus a small file holding its piece bitfield, so a pull killed
// at any moment resumes with the pieces it already has. Pieces are marked only after their bytes were written.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { integrityError } from '../errors.ts';
import type { Descriptor } from '../image/types.ts';
import { Bitfield } from './bitfield.ts';
import { pieceLayout, pieceRange, type PieceLayout } from './pieces.ts';

const MAGIC = 'SPB1';
const HEADER = 16; // magic(4) size(8) pieceLength(4)
const PERSIST_EVERY_MS = 200;

export interface ByteRange {
  start: number;
  end: number;
}

export class PartialBlob {
  readonly desc: Pick<Descriptor, 'digest' | 'size'>;
  readonly layout: PieceLayout;
  readonly bitfield: Bitfield;
  readonly path: string;
  private readonly finalPath: string;
  private readonly data: FileHandle;
  private readonly pieces: FileHandle;
  private readonly pieceBytes = new Map<number, number>();
  // sha256 over the contiguous prefix written so far: a fresh sequential download needs no second read.
  private hash: Hash = createHash('sha256');
  private hashedUpTo = 0;
  private persistTimer: NodeJS.Timeout | null = null;
  private persisting: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(path: string, finalPath: string, desc: Pick<Descriptor, 'digest' | 'size'>, data: FileHandle, pieces: FileHandle, bitfield: Bitfield) {
    this.path = path;
    this.finalPath = finalPath;
    this.desc = desc;
    this.layout = pieceLayout(desc.size);
    this.data = data;
    this.pieces = pieces;
    this.bitfield = bitfield;
  }

  static async open(path: string, finalPath: string, desc: Pick<Descriptor, 'digest' | 'size'>): Promise<PartialBlob> {
    const layout = pieceLayout(desc.size);
    const data = await open(path, 'a+').then(async (fh) => {
      await fh.close();
      return open(path, 'r+');
    });
    const pieces = await open(path + '.pieces', 'a+').then(async (fh) => {
      await fh.close();
      return open(path + '.pieces', 'r+');
    });
    const bitfield = new Bitfield(layout.count);
    const header = Buffer.alloc(HEADER + bitfield.buffer.length);
    const { bytesRead } = await pieces.read(header, 0, header.length, 0);
    // A bitfield from another layout (or a torn write) is discarded: the pieces are fetched again.
    if (
      bytesRead === header.length &&
      header.toString('latin1', 0, 4) === MAGIC &&
      Number(header.readBigUInt64BE(4)) === desc.size &&
      header.readUInt32BE(12) === layout.pieceLength
    ) {
      bitfield.buffer.set(header.subarray(HEADER));
    }
    if (desc.size === 0) bitfield.set(0); // an empty blob has nothing to fetch
    const blob = new PartialBlob(path, finalPath, desc, data, pieces, bitfield);
    if ((await data.stat()).size !== desc.size) await data.truncate(desc.size);
    await blob.persist();
    return blob;
  }

  get completedBytes(): number {
    let n = 0;
    for (let i = 0; i < this.layout.count; i++) if (this.bitfield.get(i)) n += pieceRange(this.layout, i).end - pieceRange(this.layout, i).start;
    return n;
  }

  /** Byte ranges of consecutive missing pieces. */
  missingRanges(): ByteRange[] {
    const out: ByteRange[] = [];
    for (let i = 0; i < this.layout.count; i++) {
      if (this.bitfield.get(i)) continue;
      const r = pieceRange(this.layout, i);
      const last = out.at(-1);
      if (last && last.end === r.start) last.end = r.end;
      else out.push(r);
    }
    return out;
  }

  /** Write bytes of missing pieces; a piece is marked once all its bytes were written. Each byte once. */
  async write(chunk: Buffer, offset: number): Promise<void> {
    if (offset + chunk.length > this.desc.size) throw integrityError(`blob ${this.desc.digest}: data beyond its declared size ${this.desc.size}`);
    let written = 0;
    while (written < chunk.length) {
      const { bytesWritten } = await this.data.write(chunk, written, chunk.length - written, offset + written);
      written += bytesWritten;
    }
    if (offset === this.hashedUpTo) {
      this.hash.update(chunk);
      this.hashedUpTo += chunk.length;
    }
    const len = this.layout.pieceLength;
    for (let pos = offset; pos < offset + chunk.length; ) {
      const piece = Math.floor(pos / len);
      const { end } = pieceRange(this.layout, piece);
      const n = Math.min(end, offset + chunk.length) - pos;
      const total = (this.pieceBytes.get(piece) ?? 0) + n;
      if (total >= end - piece * len) {
        this.pieceBytes.delete(piece);
        this.bitfield.set(piece);
        this.schedulePersist();
      } else this.pieceBytes.set(piece, total);
      pos += n;
    }
  }

  /** Forget pieces (and partial piece counts): they will be fetched again. */
  resetPieces(pieces?: number[]): void {
    if (pieces) for (const p of pieces) this.bitfield.set(p, false);
    else this.bitfield.clear();
    this.pieceBytes.clear();
    this.hash = createHash('sha256');
    this.hashedUpTo = 0;
    this.schedulePersist();
  }

  /**
   * All pieces present: check sha256 and move the file into the store. On a mismatch every piece is forgotten
   * and an integrity error thrown; the caller decides whether to fetch again.
   */
  async commit(): Promise<string> {
    if (!this.bitfield.isComplete()) throw new Error(`blob ${this.desc.digest} is not complete`);
    if (this.hashedUpTo < this.desc.size) {
      // Resumed or out of order: hash what is on disk, from where the running hash stopped.
      for await (const c of createReadStream(this.path, { start: this.hashedUpTo, highWaterMark: 1 << 20 })) this.hash.update(c as Buffer);
      this.hashedUpTo = this.desc.size;
    }
    const actual = 'sha256:' + this.hash.digest('hex');
    if (actual !== this.desc.digest) {
      this.resetPieces();
      await this.flush();
      throw integrityError(`blob ${this.desc.digest} failed verification (got ${actual})`);
    }
    await this.data.datasync();
    await this.close();
    await rename(this.path, this.finalPath);
    await unlink(this.path + '.pieces').catch(() => {});
    return this.finalPath;
  }

  private schedulePersist(): void {
    if (this.persistTimer || this.closed) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = null;
      this.persisting = this.persisting.then(() => this.persist());
    }, PERSIST_EVERY_MS);
  }

  private async persist(): Promise<void> {
    if (this.closed) return;
    const header = Buffer.alloc(HEADER);
    header.write(MAGIC, 0, 'latin1');
    header.writeBigUInt64BE(BigInt(this.desc.size), 4);
    header.writeUInt32BE(this.layout.pieceLength, 12);
    await this.pieces.write(Buffer.concat([header, this.bitfield.buffer]), 0, HEADER + this.bitfield.buffer.length, 0);
  }

  /** Write the bitfield now (a pull that stops keeps every piece it has). */
  async flush(): Promise<void> {
    if (this.persistTimer) clearTimeout(this.persistTimer);
    this.persistTimer = null;
    await this.persisting;
    await this.persist();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush().catch(() => {});
    this.closed = true;
    await this.data.close().catch(() => {});
    await this.pieces.close().catch(() => {});
  }
}
