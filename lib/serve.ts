// The serve job: seed every complete blob in the store to LAN peers until stopped.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isDigest } from './image/digest.ts';
import type { BlobStore } from './store/store.ts';
import { Swarm, type SwarmOptions } from './swarm/swarm.ts';

/** blobs pulled into the store while serving are picked up this often */
const RESCAN_MS = 10_000;

export interface ServeOptions {
  store: BlobStore;
  swarm: Omit<SwarmOptions, 'registryConcurrency'>;
  signal: AbortSignal;
  log: (msg: string) => void;
}

export async function serve(opts: ServeOptions): Promise<void> {
  const swarm = await new Swarm({ ...opts.swarm, registryConcurrency: 0 }).start();
  const seeded = new Set<string>();
  const scan = async () => {
    const dir = join(opts.store.root, 'blobs/sha256');
    for (const hex of await readdir(dir).catch(() => [] as string[])) {
      const digest = `sha256:${hex}`;
      if (seeded.has(digest) || !isDigest(digest)) continue;
      const path = join(dir, hex);
      const { size } = await stat(path);
      await swarm.blob({ digest, size }, false).seedFrom(path);
      seeded.add(digest);
    }
  };
  try {
    await scan();
    opts.log(`serving ${seeded.size} blobs from ${opts.store.root} on port ${swarm.port}`);
    while (!opts.signal.aborted) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, RESCAN_MS);
        opts.signal.addEventListener('abort', () => (clearTimeout(timer), resolve(undefined)), { once: true });
      });
      const before = seeded.size;
      if (!opts.signal.aborted) await scan();
      if (seeded.size > before) opts.log(`serving ${seeded.size} blobs`);
    }
  } finally {
    await swarm.stop();
  }
}
