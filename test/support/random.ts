// A seeded random source (mulberry32): the same seed gives the same run.
export type Random = () => number;

export function seeded(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** k distinct integers from [0, n) other than `not`, in random order. */
export function sample(random: Random, n: number, k: number, not: number): number[] {
  const out = new Set<number>();
  k = Math.min(k, n - 1);
  while (out.size < k) {
    const x = Math.floor(random() * n);
    if (x !== not) out.add(x);
  }
  return [...out];
}

export function hex8(random: Random): string {
  return Math.floor(random() * 0x100000000).toString(16).padStart(8, '0');
}
