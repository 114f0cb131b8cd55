// A piece bitfield in BitTorrent bit order (piece 0 is the high bit of byte 0), so it can go on the wire as is.
export class Bitfield {
  readonly buffer: Uint8Array;
  readonly length: number;

  constructor(length: number, buffer?: Uint8Array) {
    this.length = length;
    this.buffer = buffer ?? new Uint8Array(Math.ceil(length / 8));
  }

  get(i: number): boolean {
    return (this.buffer[i >> 3]! & (0x80 >> (i & 7))) !== 0;
  }

  set(i: number, value = true): void {
    if (value) this.buffer[i >> 3]! |= 0x80 >> (i & 7);
    else this.buffer[i >> 3]! &= ~(0x80 >> (i & 7));
  }

  count(): number {
    let n = 0;
    const full = this.length >> 3;
    for (let b = 0; b < full; b++) n += POPCOUNT[this.buffer[b]!]!;
    for (let i = full * 8; i < this.length; i++) if (this.get(i)) n++;
    return n;
  }

  isComplete(): boolean {
    const full = this.length >> 3;
    for (let b = 0; b < full; b++) if (this.buffer[b] !== 0xff) return false;
    for (let i = full * 8; i < this.length; i++) if (!this.get(i)) return false;
    return true;
  }

  clear(): void {
    this.buffer.fill(0);
  }
}

/** set bits in each byte value */
const POPCOUNT = Uint8Array.from({ length: 256 }, (_, v) => {
  let n = 0;
  for (; v; v &= v - 1) n++;
  return n;
});
