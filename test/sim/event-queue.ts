// Virtual time: events ordered by time (then by the order they were scheduled, so equal times run in a fixed
// order and a run is reproducible). No timers: the simulation pops events until none is left.
interface Event {
  at: number;
  seq: number;
  run: () => void;
}

export class EventQueue {
  /** the time of the event being run, in ms */
  now = 0;
  private heap: Event[] = [];
  private seq = 0;

  at(time: number, run: () => void): void {
    this.push({ at: Math.max(time, this.now), seq: this.seq++, run });
  }

  after(ms: number, run: () => void): void {
    this.at(this.now + ms, run);
  }

  get size(): number {
    return this.heap.length;
  }

  /** Run the next event; false when there is none. */
  step(): boolean {
    const next = this.pop();
    if (!next) return false;
    this.now = next.at;
    next.run();
    return true;
  }

  private less(a: Event, b: Event): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(e: Event): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): Event | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
