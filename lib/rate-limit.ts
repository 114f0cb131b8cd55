// A token bucket: at most `rate` bytes a second on average, bursts of up to a quarter second's worth.
import { Transform } from 'node:stream';

export class RateLimit {
  /** bytes a second */
  readonly rate: number;
  private readonly burst: number;
  private tokens: number;
  private last = Date.now();
  private queue: Promise<void> = Promise.resolve();

  constructor(bytesPerSecond: number) {
    this.rate = bytesPerSecond;
    this.burst = Math.max(64 * 1024, bytesPerSecond / 4);
    this.tokens = this.burst;
  }

  /** Wait until `n` bytes may pass; callers are served in order. */
  take(n: number): Promise<void> {
    const turn = this.queue.then(async () => {
      const now = Date.now();
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
      this.last = now;
      this.tokens -= n;
      if (this.tokens < 0) await new Promise((r) => setTimeout(r, (-this.tokens / this.rate) * 1000));
    });
    this.queue = turn;
    return turn;
  }
}

/**
 * A pass-through stream that hands bytes on only as fast as `limit` allows. Put between a socket and its reader:
 * while it waits, nothing more is read from the socket, so TCP flow control slows the sender down (no buffering
 * beyond the stream's own high-water mark).
 */
export function throttle(limit: RateLimit): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      limit.take(chunk.length).then(() => callback(null, chunk), callback);
    },
  });
}
