// Bring one blob into the store: from the store itself if it is there, else through its swarm (peers and the
// registry as a web seed), resuming a partial download and verifying the result.
import { integrityError } from './errors.ts';
import { sha256Digest } from './image/digest.ts';
import type { Descriptor } from './image/types.ts';
import type { RateLimit } from './rate-limit.ts';
import type { RegistryHealth } from './registry-health.ts';
import type { RegistryClient } from './registry/client.ts';
import { BlobSwarm, type RegistrySource } from './swarm/blob-swarm.ts';
import { Slots } from './swarm/semaphore.ts';
import { swarmId } from './swarm/ids.ts';
import type { Swarm } from './swarm/swarm.ts';
import type { BlobStore } from './store/store.ts';
import { pieceLength } from './store/pieces.ts';

export interface BlobProgress {
  /** bytes that arrived for this blob, and from where */
  bytes(desc: Descriptor, n: number, source: 'registry' | 'peer'): void;
  /** bytes found already on disk (complete blob or resumed pieces) */
  cached(desc: Descriptor, n: number): void;
  log(msg: string): void;
}

export interface DownloadContext {
  store: BlobStore;
  /** the registry as a source of blob bytes; absent with --no-registry */
  registry?: RegistryClient;
  /** whether the registry answers: while it does not, pieces wait for peers (probes aside) */
  registryHealth?: RegistryHealth;
  /** bytes read from the registry and from peers together (--max-download-rate) */
  downloadLimit?: RateLimit;
  repository: string;
  /** the LAN swarm; absent with --registry-only */
  swarm?: Swarm;
  /** registry requests at once when there is no swarm */
  registrySlots: Slots;
  progress: BlobProgress;
  /** when the pull last received a byte of any blob (its blobs share the registry and the peers) */
  lastByteAt?: () => number;
  signal: AbortSignal;
}

const LOCK_WAIT_MS = 60 * 60 * 1000;

const EMPTY_DIGEST = sha256Digest(Buffer.alloc(0));

/** The store path of the verified blob. */
export async function downloadBlob(ctx: DownloadContext, desc: Descriptor): Promise<string> {
  const { store, progress, signal } = ctx;
  // 0 bytes can only be the empty blob: any other digest is a lie found without a request (through the swarm, such
  // a blob took up to a minute to fail: measured, test/reliability/security.test.ts "descriptor sizes that lie").
  if (desc.size === 0 && desc.digest !== EMPTY_DIGEST) {
    throw integrityError(`blob ${desc.digest} failed verification: its descriptor says 0 bytes, which only ${EMPTY_DIGEST} has`);
  }
  const cached = async () => {
    progress.cached(desc, desc.size);
    const path = store.blobPath(desc.digest);
    // What we hold, we share.
    if (ctx.swarm) await ctx.swarm.blob(desc, false).seedFrom(path);
    return path;
  };
  if (await store.has(desc)) return cached();
  const lock = await store.lockBlob(desc.digest, {
    timeoutMs: LOCK_WAIT_MS,
    signal,
    onWait: () => progress.log(`waiting for another swarmpull on this host that is fetching ${desc.digest.slice(0, 19)}`),
  });
  try {
    if (await store.has(desc)) return await cached();
    const partial = await store.openPartial(desc);
    try {
      if (partial.completedBytes > 0) progress.cached(desc, partial.completedBytes);
      const blob = ctx.swarm
        ? ctx.swarm.blob(desc, true)
        : new BlobSwarm({
            desc,
            infoHash: swarmId(desc.digest, pieceLength(desc.size)),
            peerContext: { ourId: Buffer.alloc(20), listenPort: 0 },
            registrySlots: ctx.registrySlots,
            usePeers: false,
          });
      const path = await blob.download(partial, {
        ...(ctx.registry ? { registry: registrySource(ctx, ctx.registry, desc.digest) } : {}),
        progress: { bytes: (n, source) => progress.bytes(desc, n, source), log: progress.log },
        ...(ctx.lastByteAt ? { pullLastByteAt: ctx.lastByteAt } : {}),
        signal,
      });
      ctx.swarm?.haveBlob(blob);
      if (!ctx.swarm) await blob.close();
      return path;
    } finally {
      await partial.close();
    }
  } finally {
    await lock.release();
  }
}

function registrySource(ctx: DownloadContext, client: RegistryClient, digest: string): RegistrySource {
  const { repository, registryHealth: health, downloadLimit: limit } = ctx;
  return {
    readRange(start, end, onData, signal) {
      // The limit's wait holds the next read of the body back: the registry's TCP stream slows down with it.
      const limited = limit ? async (chunk: Buffer, offset: number) => (await limit.take(chunk.length), onData(chunk, offset)) : onData;
      const read = () => client.readBlob(repository, digest, start, end, limited, signal);
      return health ? health.run(read) : read();
    },
    ...(health ? { usable: () => health.usable(), isDown: () => health.isDown } : {}),
  };
}
