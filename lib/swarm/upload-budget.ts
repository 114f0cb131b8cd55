// The memory that answers to peers may hold: the buffers read from disk for them, from the moment a read is decided
// until the socket has taken the last answer cut from that buffer. A buffer is taken BEFORE the disk read, so a
// request over budget waits (its peer's own outstanding-request bound keeps the wait list short) and holds nothing.
// Bounded per address as well as per process: one LAN host, whatever number of connections it opens, holds at most
// its share. Buffers given back are used again: a fresh buffer per read left the garbage collector hundreds of MB
// behind (8 connections asking for blocks of random pieces, 1.3 GB/s of 16 KiB reads: ~115 MB of dead buffers with
// only 16 MiB held, measured), where reused ones keep what the process holds at what it counts.

/**
 * All answers of one process together. An honest puller holds about 1.75 MiB per connection (a pipeline of 96 blocks
 * over up to 7 pieces read whole), a fan-out seeder a few dozen connections of that; 8 connections that asked for 512
 * blocks of different pieces each and never read held 1.1 GB before this bound (measured, a 256 MiB blob).
 */
export const UPLOAD_HELD_PER_PROCESS = 64 << 20;
/** One address's connections together: a pull fetches up to 8 blobs at once, one connection each (8 x 1.75 MiB). */
export const UPLOAD_HELD_PER_ADDRESS = 16 << 20;
/** buffers kept for reuse go once nothing was held for this long (a seeder between fan-outs holds nothing) */
const KEEP_FREE_MS = 10_000;

export class UploadBudget {
  readonly perProcess: number;
  readonly perAddress: number;
  private held = 0;
  private readonly byAddress = new Map<string, number>();
  /** buffers given back, by size, and their bytes together; held + free stays within perProcess */
  private readonly free = new Map<number, Buffer[]>();
  private freeBytes = 0;
  private dropTimer: NodeJS.Timeout | undefined;
  /** who waits for bytes to come back, woken once per tick in the order they asked */
  private readonly waiting = new Set<() => void>();
  private waking = false;

  constructor(perProcess = UPLOAD_HELD_PER_PROCESS, perAddress = UPLOAD_HELD_PER_ADDRESS) {
    this.perProcess = perProcess;
    this.perAddress = perAddress;
  }

  /** bytes held now, every address together */
  get bytes(): number {
    return this.held;
  }

  /**
   * A buffer of `bytes` for `address` to read into, if both bounds allow; otherwise null, and `wake` is called once
   * bytes come back. An address that holds nothing may always take one read (one can be larger than a small bound).
   */
  take(address: string, bytes: number, wake: () => void): Buffer | null {
    const mine = this.byAddress.get(address) ?? 0;
    if (this.held + bytes > this.perProcess || (mine > 0 && mine + bytes > this.perAddress)) {
      this.waiting.add(wake);
      return null;
    }
    this.held += bytes;
    this.byAddress.set(address, mine + bytes);
    clearTimeout(this.dropTimer);
    const reused = this.free.get(bytes)?.pop();
    if (reused) {
      this.freeBytes -= bytes;
      return reused;
    }
    // Room for a new one: free buffers of other sizes go first.
    for (const [size, list] of this.free) {
      while (this.held + this.freeBytes > this.perProcess && list.length > 0) {
        list.pop();
        this.freeBytes -= size;
      }
    }
    return Buffer.allocUnsafeSlow(bytes);
  }

  /** `buf` is no longer read by anyone (the socket took every answer cut from it, or none will be sent). */
  give(address: string, buf: Buffer, reuse: boolean): void {
    const bytes = buf.length;
    this.held -= bytes;
    const left = (this.byAddress.get(address) ?? bytes) - bytes;
    if (left > 0) this.byAddress.set(address, left);
    else this.byAddress.delete(address);
    if (reuse && this.held + this.freeBytes + bytes <= this.perProcess) {
      let list = this.free.get(bytes);
      if (!list) this.free.set(bytes, (list = []));
      list.push(buf);
      this.freeBytes += bytes;
    }
    if (this.held === 0 && this.freeBytes > 0) {
      clearTimeout(this.dropTimer);
      this.dropTimer = setTimeout(() => this.dropFree(), KEEP_FREE_MS).unref();
    }
    if (this.waiting.size === 0 || this.waking) return;
    this.waking = true;
    setImmediate(() => {
      this.waking = false;
      const woken = [...this.waiting];
      this.waiting.clear();
      for (const wake of woken) wake();
    });
  }

  /** A closed connection no longer waits. */
  forget(wake: () => void): void {
    this.waiting.delete(wake);
  }

  private dropFree(): void {
    if (this.held > 0) return;
    this.free.clear();
    this.freeBytes = 0;
  }
}

/** The process's budget: every Swarm and connection of the process shares it. */
export const processUploads = new UploadBudget();
