/** A counter of free slots (registry requests at once, shared by every blob of a process). */
export class Slots {
  private free: number;
  private readonly waiters = new Set<() => void>();

  constructor(n: number) {
    this.free = n;
  }

  get available(): boolean {
    return this.free > 0;
  }

  /** Take a free slot (check `available` first). */
  take(): void {
    if (this.free <= 0) throw new Error('no free slot');
    this.free--;
  }

  give(): void {
    this.free++;
    // Let every blob that may want a slot try again now, not at its next timer tick.
    for (const wake of this.waiters) {
      if (this.free <= 0) break;
      wake();
    }
  }

  /** Call `wake` whenever a slot is given back; returns the unsubscribe function. */
  onFree(wake: () => void): () => void {
    this.waiters.add(wake);
    return () => this.waiters.delete(wake);
  }
}
