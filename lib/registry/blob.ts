// Streams one answer to a blob Range request into the caller, byte-exact: the cursor only moves over bytes
// handed to onData, so a retry resumes at the first byte not yet delivered and nothing is delivered twice.
import { failure, integrityError } from '../errors.ts';
import { PacedBody } from './body-pace.ts';
import { header, networkError, type Response } from './http.ts';
import { Transient } from './retry.ts';

const BATCH_BYTES = 1 << 20;
/** ... but bytes wait no longer than this for a batch to fill: on a slow link they would otherwise sit in memory for
 *  seconds, lost to a crash and invisible to progress */
const BATCH_MS = 100;

/** `chunk` is lent: its memory is reused once the returned promise settles (copy what must outlive it). */
export type OnData = (chunk: Buffer, offset: number) => void | Promise<void>;

export interface Cursor {
  /** absolute offset of the next byte to deliver */
  pos: number;
}

export interface DeliverContext {
  what: string;
  host: string;
  signal?: AbortSignal | undefined;
  log: (msg: string) => void;
  /** the body must deliver body-pace.ts MIN_WINDOW_BYTES in every window this long spent waiting for it */
  paceWindowMs: number;
}

/** Deliver bytes [cursor.pos, end) from a 206 or 200 answer. Throws Transient when the body ends early. */
export async function deliverRange(res: Response, cursor: Cursor, end: number, onData: OnData, ctx: DeliverContext): Promise<void> {
  let skip = 0;
  // A server that ignores Range sends the whole blob with 200: we drop what comes before our range and hang up
  // after it. Without that declared length, extra bytes mean the blob is longer than the caller was told.
  let wholeBlob = false;
  if (res.statusCode === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header(res, 'content-range')?.trim() ?? '');
    if (!m) throw failure(`${ctx.what}: 206 answer without a valid Content-Range`);
    const first = Number(m[1]);
    const last = Number(m[2]);
    if (first !== cursor.pos) throw failure(`${ctx.what}: asked for bytes from ${cursor.pos}, got a range from ${first}`);
    if (last >= end) throw integrityError(`${ctx.what}: the registry sent bytes up to ${last}, more than the ${end} asked for`);
  } else if (res.statusCode === 200) {
    skip = cursor.pos;
    wholeBlob = Number(header(res, 'content-length')) > end;
    if (skip > 0 || wholeBlob) ctx.log(`${ctx.what}: ${ctx.host} ignored Range (HTTP 200); reading the whole blob for ${cursor.pos}-${end}`);
  } else {
    throw new Error(`deliverRange called with HTTP ${res.statusCode}`);
  }

  const it = new PacedBody(res, ctx.host, ctx.paceWindowMs);
  // Chunks are handed on in batches of up to 1 MiB: one disk write instead of sixteen. The batch is copied into one
  // buffer reused for the whole answer: fresh 1 MiB buffers per batch cost page faults and GC (measured).
  let batch: Buffer | undefined;
  let pendingBytes = 0;
  let pendingSince = 0;
  const flush = async () => {
    if (pendingBytes === 0) return;
    const n = pendingBytes;
    pendingBytes = 0;
    // The caller's own errors pass through untouched (never retried); its promise is our back-pressure.
    await onData(batch!.subarray(0, n), cursor.pos);
    cursor.pos += n;
  };
  let finished = false;
  try {
    for (;;) {
      let next: IteratorResult<Buffer>;
      try {
        next = await it.next();
      } catch (err) {
        await flush(); // what arrived before the cut is good: the retry resumes after it
        throw networkError(err, ctx.host, ctx.signal);
      }
      if (next.done) {
        finished = true;
        break;
      }
      let chunk = next.value;
      if (skip > 0) {
        const n = Math.min(skip, chunk.length);
        skip -= n;
        chunk = chunk.subarray(n);
      }
      const room = end - cursor.pos - pendingBytes;
      if (chunk.length > room) {
        if (!wholeBlob) throw integrityError(`${ctx.what}: the registry sent more bytes than the ${end - cursor.pos} asked for`);
        chunk = chunk.subarray(0, room);
      }
      while (chunk.length > 0) {
        if (pendingBytes === 0) pendingSince = performance.now();
        batch ??= Buffer.allocUnsafe(Math.min(BATCH_BYTES, end - cursor.pos));
        const n = chunk.copy(batch, pendingBytes);
        pendingBytes += n;
        chunk = chunk.subarray(n);
        if (pendingBytes === batch.length || performance.now() - pendingSince >= BATCH_MS) await flush();
      }
      if (wholeBlob && cursor.pos + pendingBytes === end) break;
    }
    await flush();
  } finally {
    if (!finished) res.body.destroy();
  }
  if (cursor.pos < end) throw new Transient(`${ctx.host}: body ended early at byte ${cursor.pos} of ${end}`);
}
