// The serve job: seed every complete blob in the store to LAN peers until stopped.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isDigest } from './image/digest.ts';
import { registerInUse } from './store/in-use.ts';
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
  // `store prune` leaves the seeded blobs alone while serve runs.
  const inUse = await registerInUse(opts.store);
  const swarm = await new Swarm({ ...opts.swarm, registryConcurrency: 0 }).start().catch(async (err) => {
    await inUse.release();
    throw err;
  });
  const seeded = new Set<string>();
  const scan = async () => {
    const dir = join(opts.store.root, 'blobs/sha256');
    const found = (await readdir(dir).catch(() => [] as string[])).map((hex) => `sha256:${hex}`);
    const fresh = found.filter((digest) => !seeded.has(digest) && isDigest(digest));
    // Registered before the stat: a blob prune deleted meanwhile is simply not there.
    await inUse.add(fresh);
    for (const digest of fresh) {
      const path = join(dir, digest.slice('sha256:'.length));
      const st = await stat(path).catch(() => null);
      if (!st?.isFile()) continue;
      await swarm.blob({ digest, size: st.size }, false).seedFrom(path);
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
    await inUse.release();
  }
}
