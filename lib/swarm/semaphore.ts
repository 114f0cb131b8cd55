/** A counter of free slots: how many registry requests or uploads may run at once. */
export class Slots {
  private free: number;

  constructor(n: number) {
    this.free = n;
  }

  tryTake(): boolean {
    if (this.free <= 0) return false;
    this.free--;
    return true;
  }

  give(): void {
    this.free++;
  }
}
