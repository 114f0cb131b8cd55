// A token bucket: at most `rate` bytes a second on average, bursts of up to a quarter second's worth.

export class RateLimit {
  private readonly rate: number;
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
