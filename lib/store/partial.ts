// A blob being downloaded: a sparse data file plus a small file holding its piece bitfield, so a pull killed
// at any moment resumes with the pieces it already has. Pieces are marked only after their bytes were written.
import { createHash, type Hash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { integrityError, writeFailure } from '../errors.ts';
import type { Descriptor } from '../image/types.ts';
import { Bitfield } from './bitfield.ts';
import { BLOCK_SIZE, pieceLayout, pieceRange, type PieceLayout } from './pieces.ts';

const MAGIC = 'SPB1';
const HEADER = 16; // magic(4) size(8) pieceLength(4)
const VERIFY_READ_BYTES = 1 << 20;

export interface ByteRange {
  start: number;
  end: number;
}

export class PartialBlob {
  readonly desc: Pick<Descriptor, 'digest' | 'size'>;
  readonly layout: PieceLayout;
  readonly bitfield: Bitfield;
  readonly path: string;
  /** called once for each piece that becomes complete */
  onPiece: (piece: number) => void = () => {};
  private readonly finalPath: string;
  private readonly data: FileHandle;
  private readonly pieces: FileHandle;
  // Bytes written per 16 KiB block of each piece in progress: a block counts once even if two peers send it.
  private readonly blocks = new Map<number, Uint32Array>();
  // sha256 of the prefix written in order so far, so a sequential download needs no second read to verify;
  // -1 once anything could make the prefix differ from the disk (a failed write, a reset or abandoned piece).
  private hash: Hash = createHash('sha256');
  private hashedUpTo = 0;
  /** set by a successful verify(), cleared by any write: commit() moves only verified data */
  private verified = false;
  /** a bitfield write is queued and has not started: pieces completing meanwhile ride along with it */
  private persistQueued = false;
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
    const data = await openReadWrite(path);
    const pieces = await openReadWrite(path + '.pieces');
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
    for (let i = 0; i < this.layout.count; i++) {
      if (this.bitfield.get(i)) n += pieceRange(this.layout, i).end - pieceRange(this.layout, i).start;
    }
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

  /**
   * Write bytes of missing pieces. Bytes of complete blocks are skipped (a duplicate from a second source),
   * and a piece is marked, and reported through onPiece, once every block of it was written.
   */
  async write(data: Buffer | readonly Buffer[], offset: number): Promise<void> {
    const chunks = Buffer.isBuffer(data) ? [data] : data;
    let length = 0;
    for (const c of chunks) length += c.length;
    if (offset < 0 || offset + length > this.desc.size) {
      throw integrityError(`blob ${this.desc.digest}: data beyond its declared size ${this.desc.size}`);
    }
    // Split the chunk at block boundaries; blocks already complete are skipped.
    const spans: { pos: number; n: number; piece: number; block: number; blockLen: number; counts: Uint32Array }[] = [];
    const end = offset + length;
    for (let pos = offset; pos < end; ) {
      const piece = Math.floor(pos / this.layout.pieceLength);
      const range = pieceRange(this.layout, piece);
      const block = Math.floor((pos - range.start) / BLOCK_SIZE);
      const blockStart = range.start + block * BLOCK_SIZE;
      const blockLen = Math.min(BLOCK_SIZE, range.end - blockStart);
      const n = Math.min(blockStart + blockLen, end) - pos;
      if (!this.bitfield.get(piece)) {
        let counts = this.blocks.get(piece);
        if (!counts) this.blocks.set(piece, (counts = new Uint32Array(Math.ceil((range.end - range.start) / BLOCK_SIZE))));
        if (counts[block]! < blockLen) spans.push({ pos, n, piece, block, blockLen, counts });
      }
      pos += n;
    }
    if (spans.length === 0) return;
    const allNew = spans.reduce((a, sp) => a + sp.n, 0) === length;
    if (offset === this.hashedUpTo && allNew) {
      for (const c of chunks) this.hash.update(c);
      this.hashedUpTo += length;
    } else if (offset <= this.hashedUpTo) {
      this.hashedUpTo = -1; // bytes the running hash saw may be overwritten: trust only the disk
    }
    try {
      // The usual case, every byte new: one write for all of it.
      if (allNew) await this.writeAt(chunks, offset);
      else {
        const whole = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length);
        for (const sp of spans) await this.writeAt([whole.subarray(sp.pos - offset, sp.pos - offset + sp.n)], sp.pos);
      }
    } catch (err) {
      this.hashedUpTo = -1;
      throw err;
    }
    this.verified = false;
    for (const { n, piece, block, blockLen, counts } of spans) {
      // Another write may have completed or abandoned the piece while this one waited for the disk.
      if (this.bitfield.get(piece) || this.blocks.get(piece) !== counts) continue;
      counts[block] = Math.min(blockLen, counts[block]! + n);
      if (counts[block] === blockLen && this.pieceFilled(piece, counts)) {
        this.blocks.delete(piece);
        this.bitfield.set(piece);
        this.schedulePersist();
        this.onPiece(piece);
      }
    }
  }

  private pieceFilled(piece: number, counts: Uint32Array): boolean {
    const { start, end } = pieceRange(this.layout, piece);
    for (let b = 0; b < counts.length; b++) if (counts[b] !== Math.min(BLOCK_SIZE, end - start - b * BLOCK_SIZE)) return false;
    return true;
  }

  private async writeAt(chunks: readonly Buffer[], position: number): Promise<void> {
    try {
      let rest = chunks.filter((c) => c.length > 0);
      while (rest.length > 0) {
        const { bytesWritten } = await this.data.writev(rest, position);
        if (bytesWritten === 0) throw new Error('the disk took no bytes');
        position += bytesWritten;
        // A short write (rare): go on after the bytes written.
        let skip = bytesWritten;
        while (rest.length > 0 && skip >= rest[0]!.length) skip -= rest.shift()!.length;
        if (skip > 0) rest[0] = rest[0]!.subarray(skip);
      }
    } catch (err) {
      throw writeFailure(err, this.path);
    }
  }

  /** A fetch of this piece failed midway: forget its blocks so another source starts it afresh. */
  abandon(piece: number): void {
    this.blocks.delete(piece);
    if (pieceRange(this.layout, piece).start < this.hashedUpTo) this.hashedUpTo = -1;
  }

  /** Forget complete pieces (they will be fetched again); all of them without an argument. */
  resetPieces(pieces?: number[]): void {
    if (pieces) for (const p of pieces) this.bitfield.set(p, false);
    else this.bitfield.clear();
    this.blocks.clear();
    this.verified = false;
    this.hashedUpTo = -1;
    this.schedulePersist();
  }

  /** Read piece i from disk (it must be complete, or be checked by the caller). */
  async readPiece(piece: number): Promise<Buffer> {
    const { start, end } = pieceRange(this.layout, piece);
    const buf = Buffer.allocUnsafe(end - start);
    let done = 0;
    while (done < buf.length) {
      const { bytesRead } = await this.data.read(buf, done, buf.length - done, start + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return buf;
  }

  /** sha256 of the data on disk matches the descriptor (all pieces must be present). */
  async verify(): Promise<boolean> {
    if (!this.bitfield.isComplete()) throw new Error(`blob ${this.desc.digest} is not complete`);
    // Read from disk only what the running hash has not seen (all of it after a resume or out-of-order pieces).
    const from = Math.max(0, this.hashedUpTo);
    const hash = this.hashedUpTo >= 0 ? this.hash : createHash('sha256');
    // One buffer for the whole read: a fresh one per read costs page faults and GC.
    const buf = Buffer.allocUnsafe(Math.min(VERIFY_READ_BYTES, Math.max(1, this.desc.size - from)));
    for (let pos = from; pos < this.desc.size; ) {
      const { bytesRead } = await this.data.read(buf, 0, Math.min(buf.length, this.desc.size - pos), pos);
      if (bytesRead === 0) break; // shorter than its size: the digest says so
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    this.verified = 'sha256:' + hash.digest('hex') === this.desc.digest;
    this.hashedUpTo = -1; // the hash is spent: a second verify reads the disk
    return this.verified;
  }

  /** Move the verified blob into the store; throws an integrity error unless verify() just succeeded. */
  async commit(): Promise<string> {
    if (!this.verified) throw integrityError(`blob ${this.desc.digest} failed verification`);
    // Read-only from here on: an OCI layout may hold a hard link to this very file.
    await this.data.chmod(0o444);
    await this.data.datasync();
    await this.close();
    await rename(this.path, this.finalPath);
    await unlink(this.path + '.pieces').catch(() => {});
    return this.finalPath;
  }

  /**
   * Write the bitfield as soon as the previous write is done. Each piece's data was written before its bit was set,
   * so a SIGKILL loses only the pieces still in flight (the page cache outlives the process). A small write per piece
   * (~150 bytes per 256 KiB or more): no measurable cost.
   */
  private schedulePersist(): void {
    if (this.persistQueued || this.closed) return;
    this.persistQueued = true;
    this.persisting = this.persisting.then(() => {
      this.persistQueued = false;
      // A failed write is not fatal here: the next one (or flush(), which reports it) tries again.
      return this.persist().catch(() => {});
    });
  }

  private async persist(): Promise<void> {
    if (this.closed) return;
    const header = Buffer.alloc(HEADER);
    header.write(MAGIC, 0, 'latin1');
    header.writeBigUInt64BE(BigInt(this.desc.size), 4);
    header.writeUInt32BE(this.layout.pieceLength, 12);
    await this.pieces.write(Buffer.concat([header, this.bitfield.buffer]), 0, HEADER + this.bitfield.buffer.length, 0).catch((err: unknown) => {
      throw writeFailure(err, this.path + '.pieces');
    });
  }

  /** Write the bitfield now (a pull that stops keeps every piece it has). */
  async flush(): Promise<void> {
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

/** Open for reading and writing, creating the file if needed (without truncating it); never through a symlink. */
function openReadWrite(path: string): Promise<FileHandle> {
  return open(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o666);
}
