// For a server that ignores Range (it answers 200 with the whole blob): one whole-body stream per blob feeds every
// range asked of it, in order, so the blob crosses the network once instead of once per piece from byte 0. Ranges
// ahead of the stream wait for it (bytes nobody asked for are passed over, once); a range behind it waits for the
// next pass, which starts from byte 0 when no range is left ahead. The stream is dropped when nobody has asked
// for anything for IDLE_MS, and on any failure (every waiting range then fails with it, and its retry joins the
// next pass).
import type { OnData, Cursor } from './blob.ts';
import { PacedBody } from './body-pace.ts';
import { header, networkError, type Response } from './http.ts';
import { Transient } from './retry.ts';

/** how long a stream is kept, paused, for the next range (a pull asks the next range at once; with peers, pieces
 *  come in runs a few seconds apart) */
const IDLE_MS = 5_000;
/** bytes handed on at once, as deliverRange batches them: one disk write instead of many TLS-record-sized ones */
const BATCH_BYTES = 1 << 20;
const BATCH_MS = 100;

export interface WholeBlobOptions {
  /** open the blob again from byte 0 (the registry's 200 answer; `host` for messages) */
  open(signal: AbortSignal): Promise<{ res: Response; host: string }>;
  what: string;
  log: (msg: string) => void;
  paceWindowMs: number;
}

interface Waiter {
  cursor: Cursor;
  end: number;
  onData: OnData;
  batch: Buffer;
  pending: number;
  pendingSince: number;
  resolve(): void;
  reject(err: unknown): void;
}

interface Stream {
  res: Response;
  body: PacedBody;
  host: string;
  /** absolute offset of the next byte the stream gives */
  pos: number;
  /** the last chunk, which started at pos - tail.length: a range that ends inside a chunk leaves the rest of it
   *  there for the next range (undici's chunks are not reused, so keeping one is safe) */
  tail: Buffer;
}

export class WholeBlobStream {
  private readonly opts: WholeBlobOptions;
  private readonly waiters = new Set<Waiter>();
  private stream: Stream | undefined;
  private pumping = false;
  private wake: (() => void) | undefined;
  private readonly closed = new AbortController();
  /** passes started, for tests and --debug */
  passes = 0;

  constructor(opts: WholeBlobOptions) {
    this.opts = opts;
  }

  /** Take over a 200 answer that arrived for a Range request: it becomes the first pass. */
  adopt(res: Response, host: string): void {
    this.passes++;
    this.stream = { res, body: new PacedBody(res, host, this.opts.paceWindowMs), host, pos: 0, tail: Buffer.alloc(0) };
  }

  /** Deliver [cursor.pos, end) as deliverRange does (the cursor moves over delivered bytes only). */
  read(cursor: Cursor, end: number, onData: OnData, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => done(signal!.reason);
      const done = (err?: unknown) => {
        if (!this.waiters.delete(waiter)) return;
        signal?.removeEventListener('abort', onAbort);
        if (err === undefined) resolve();
        else reject(err);
      };
      const waiter: Waiter = {
        cursor,
        end,
        onData,
        batch: Buffer.allocUnsafe(Math.min(BATCH_BYTES, end - cursor.pos)),
        pending: 0,
        pendingSince: 0,
        resolve: () => done(),
        reject: done,
      };
      this.waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.wake?.();
      if (!this.pumping) void this.pump();
    });
  }

  close(): void {
    this.closed.abort();
    this.drop();
    this.wake?.();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      for (;;) {
        if (this.waiters.size === 0) {
          if (this.closed.signal.aborted || !(await this.idle())) return this.drop();
          continue;
        }
        if (!this.stream) await this.openPass();
        if (!this.stream) continue; // the open failed: its waiters were told
        const stream = this.stream;
        const tailAt = stream.pos - stream.tail.length;
        const ahead = [...this.waiters].filter((w) => next(w) >= tailAt);
        if (ahead.some((w) => next(w) < stream.pos)) {
          await this.deliver(stream.tail, tailAt);
          continue;
        }
        if (ahead.length === 0) {
          // Everyone left wants bytes the stream has passed: start again from byte 0.
          this.opts.log(`${this.opts.what}: ${stream.host} ignores Range; another pass over the blob from byte 0`);
          this.drop();
          continue;
        }
        let chunk: IteratorResult<Buffer>;
        try {
          chunk = await stream.body.next();
        } catch (err) {
          await this.failAll(networkError(err, stream.host, this.closed.signal));
          continue;
        }
        if (chunk.done) {
          this.drop();
          await this.failAll(new Transient(`${stream.host}: body ended at byte ${stream.pos}, before the ranges asked`), (w) => next(w) >= stream.pos);
          continue;
        }
        stream.tail = chunk.value;
        stream.pos += chunk.value.length;
        await this.deliver(chunk.value, stream.pos - chunk.value.length);
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Wait for a waiter; false when none came within IDLE_MS. */
  private idle(): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve(false);
      }, IDLE_MS);
      timer.unref(); // a client nobody closed must not hold the process for it
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve(true);
      };
    });
  }

  private async openPass(): Promise<void> {
    try {
      const { res, host } = await this.opts.open(this.closed.signal);
      if (res.statusCode !== 200) {
        // It honours Range after all (206), or something else: not a whole blob; the ranges retry on their own.
        res.body.destroy();
        throw new Transient(`${host}: answered HTTP ${res.statusCode} (${header(res, 'content-range') ?? 'no Content-Range'}) to a whole-blob request`);
      }
      this.adopt(res, host);
    } catch (err) {
      await this.failAll(err);
    }
  }

  /** Hand the part of `chunk` (which starts at `at`) each waiter wants to it; a waiter whose onData fails gets its
   *  own error, untouched. */
  private async deliver(chunk: Buffer, at: number): Promise<void> {
    const chunkEnd = at + chunk.length;
    for (const w of [...this.waiters]) {
      const from = next(w);
      if (from < at || from >= chunkEnd) continue;
      let part = chunk.subarray(from - at, Math.min(chunk.length, w.end - at));
      try {
        while (part.length > 0) {
          if (w.pending === 0) w.pendingSince = performance.now();
          const n = part.copy(w.batch, w.pending);
          w.pending += n;
          part = part.subarray(n);
          if (w.pending === w.batch.length || performance.now() - w.pendingSince >= BATCH_MS) await flush(w);
        }
        if (next(w) === w.end) {
          await flush(w);
          w.resolve();
        }
      } catch (err) {
        w.reject(err);
      }
    }
  }

  /** Fail the waiters (those `which` picks): what each had batched is delivered first, so its retry resumes after. */
  private async failAll(err: unknown, which: (w: Waiter) => boolean = () => true): Promise<void> {
    this.drop();
    for (const w of [...this.waiters].filter(which)) {
      try {
        await flush(w);
        w.reject(err);
      } catch (own) {
        w.reject(own);
      }
    }
  }

  private drop(): void {
    if (!this.stream) return;
    this.stream.res.body.destroy();
    this.stream = undefined;
  }
}

/** the next byte a waiter needs from the stream (after what it has batched) */
function next(w: Waiter): number {
  return w.cursor.pos + w.pending;
}

async function flush(w: Waiter): Promise<void> {
  if (w.pending === 0) return;
  const n = w.pending;
  w.pending = 0;
  await w.onData(w.batch.subarray(0, n), w.cursor.pos);
  w.cursor.pos += n;
}
