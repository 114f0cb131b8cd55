// A minimum pace for response bodies. undici's bodyTimeout is the longest silence between two chunks, so a server
// that trickles a byte every 20 s holds a range (and its registry slot) for ever. Here a body must deliver
// MIN_WINDOW_BYTES in every window of `windowMs` spent waiting for it; the time the caller spends with the bytes
// (disk writes, --max-download-rate) does not count. A body too slow is dropped as Transient, and the range is
// asked again from the first byte not delivered.
import type { Response } from './http.ts';
import { Transient } from './retry.ts';

/** 32 KiB per 30 s window: about 1 KiB/s, slower than any link a pull could finish over (a 256 KiB piece would
 *  take over four minutes), faster than any trickle meant to hold a connection open */
export const MIN_WINDOW_BYTES = 32 * 1024;

/** A body dropped for being too slow. Its few bytes are not "progress" that would renew the retry budget. */
export class TooSlow extends Transient {
  constructor(host: string, bytes: number, windowMs: number) {
    super(`${host}: body too slow (${bytes} bytes in ${Math.round(windowMs / 1000)} s, under ${MIN_WINDOW_BYTES / 1024} KiB)`);
    this.name = 'TooSlow';
  }
}

export class PacedBody {
  private readonly res: Response;
  private readonly it: AsyncIterator<Buffer>;
  private readonly host: string;
  private readonly windowMs: number;
  /** time spent waiting for chunks, and bytes that arrived, in the current window */
  private waitedMs = 0;
  private bytes = 0;

  constructor(res: Response, host: string, windowMs: number) {
    this.res = res;
    this.it = res.body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    this.host = host;
    this.windowMs = windowMs;
  }

  /** The next chunk; rejects with TooSlow when the window runs out short of its bytes (the body is destroyed). */
  async next(): Promise<IteratorResult<Buffer>> {
    let timer: NodeJS.Timeout | undefined;
    if (this.bytes < MIN_WINDOW_BYTES) {
      // Ends a wait that would outlast the window: the body then rejects the pending read with TooSlow.
      timer = setTimeout(() => this.res.body.destroy(new TooSlow(this.host, this.bytes, this.windowMs)), Math.max(0, this.windowMs - this.waitedMs));
    }
    const t0 = performance.now();
    let r: IteratorResult<Buffer>;
    try {
      r = await this.it.next();
    } finally {
      clearTimeout(timer);
      this.waitedMs += performance.now() - t0;
    }
    if (!r.done) this.bytes += r.value.length;
    if (this.waitedMs >= this.windowMs) {
      if (this.bytes < MIN_WINDOW_BYTES && !r.done) {
        const err = new TooSlow(this.host, this.bytes, this.windowMs);
        this.res.body.destroy(err);
        throw err;
      }
      this.waitedMs = 0;
      this.bytes = 0;
    }
    return r;
  }
}
