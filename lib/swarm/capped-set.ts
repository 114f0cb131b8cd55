// A set that stops growing at a bound: for what a long-running process only counts (the peers a `serve` has seen,
// one per connection a LAN host may open with a fresh peer id).

export class CappedSet<T> {
  readonly max: number;
  private readonly items = new Set<T>();

  constructor(max: number) {
    this.max = max;
  }

  /** Adds `item` unless the set is full (then the count stays at `max`). */
  add(item: T): this {
    if (this.items.size < this.max) this.items.add(item);
    return this;
  }

  has(item: T): boolean {
    return this.items.has(item);
  }

  get size(): number {
    return this.items.size;
  }
}
