// A token bucket: at most `rate` bytes a second on average, bursts of up to a quarter second's worth.
import type { Socket } from 'node:net';

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

  /**
   * Take `n` bytes that have already passed; returns 0 if the bucket still had them, else the milliseconds until
   * it holds `resumeAt` bytes again (at most its burst): how long the taker should pause.
   */
  charge(n: number, resumeAt = 0): number {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    this.tokens -= n;
    if (this.tokens >= 0) return 0;
    return Math.ceil(((Math.min(resumeAt, this.burst) - this.tokens) / this.rate) * 1000);
  }
}

/**
 * Bytes a reader may have taken from the bucket ahead of time before it stops reading: it then waits until the
 * bucket holds this much again (or its burst, if smaller), so that the kernel gathers what arrives meanwhile and the
 * reads after a pause are full ones (a pause per read, as a throttle stream made, wakes the process per 64 KiB).
 */
const RESUME_AT = 256 * 1024;

/**
 * Count what is read from `socket` against `limit`: while the limit holds bytes back, the socket stops reading (TCP
 * flow control then slows the sender down), and resumes on a timer. Returns the function to call with each read.
 */
export function paceReads(socket: Socket, limit: RateLimit): (bytes: number) => void {
  let timer: NodeJS.Timeout | undefined;
  const resume = () => {
    timer = undefined;
    if (!socket.destroyed) socket.resume();
  };
  socket.once('close', () => clearTimeout(timer));
  return (bytes) => {
    const waitMs = limit.charge(bytes, RESUME_AT);
    if (waitMs <= 0 || timer) return;
    socket.pause();
    timer = setTimeout(resume, waitMs);
  };
}
