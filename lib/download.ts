// Bring one blob into the store from the registry, resuming a partial download and verifying the result.
// (The swarm replaces the "missing ranges from the registry" step with a piece scheduler over peers + registry.)
import { ExitCode, SwarmpullError } from './errors.ts';
import type { Descriptor } from './image/types.ts';
import type { RegistryClient } from './registry/client.ts';
import type { BlobStore } from './store/store.ts';

export interface BlobProgress {
  /** bytes that arrived for this blob, and from where */
  bytes(desc: Descriptor, n: number, source: 'registry' | 'peer'): void;
  /** bytes found already on disk (complete blob or resumed pieces) */
  cached(desc: Descriptor, n: number): void;
  log(msg: string): void;
}

export interface DownloadContext {
  store: BlobStore;
  registry: RegistryClient;
  repository: string;
  progress: BlobProgress;
  signal: AbortSignal;
}

const LOCK_WAIT_MS = 60 * 60 * 1000;

/** The store path of the verified blob. */
export async function downloadBlob(ctx: DownloadContext, desc: Descriptor): Promise<string> {
  const { store, progress, signal } = ctx;
  if (await store.has(desc)) {
    progress.cached(desc, desc.size);
    return store.blobPath(desc.digest);
  }
  const lock = await store.lockBlob(desc.digest, {
    timeoutMs: LOCK_WAIT_MS,
    signal,
    onWait: () => progress.log(`waiting for another swarmpull on this host that is fetching ${desc.digest.slice(0, 19)}`),
  });
  try {
    if (await store.has(desc)) {
      progress.cached(desc, desc.size);
      return store.blobPath(desc.digest);
    }
    const partial = await store.openPartial(desc);
    try {
      if (partial.completedBytes > 0) progress.cached(desc, partial.completedBytes);
      // One more full fetch after a failed verification: a registry or disk glitch should not fail the pull.
      for (let attempt = 1; ; attempt++) {
        for (const range of partial.missingRanges()) {
          await ctx.registry.readBlob(ctx.repository, desc.digest, range.start, range.end, async (chunk, offset) => {
            await partial.write(chunk, offset);
            progress.bytes(desc, chunk.length, 'registry');
          }, signal);
        }
        try {
          return await partial.commit();
        } catch (err) {
          if (!(err instanceof SwarmpullError && err.exitCode === ExitCode.integrity) || attempt >= 2) throw err;
          progress.log(`${(err as Error).message}; fetching it again`);
        }
      }
    } finally {
      await partial.close();
    }
  } finally {
    await lock.release();
  }
}
