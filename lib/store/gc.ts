// `store prune`: delete least-recently-used blobs until the store fits a size, and/or blobs unused for a while,
// and the leftovers of crashed processes. Never a blob a running process uses:
//   - a pull downloading a blob holds its download lock (store.lockBlob): prune takes the same lock (tryLock)
//     before deleting the blob or its partial, and skips it if that fails;
//   - serve, and a pull for the blobs of its image, register them (in-use.ts): prune skips registered blobs.
import { unlink } from 'node:fs/promises';
import { maintenanceLock, readRegistrations } from './in-use.ts';
import { readInventory, type BlobKind } from './inventory.ts';
import { storeKey, tryLock, type Lock } from './lock.ts';
import { blobLockKey } from './store.ts';

/** Temporary files and orphaned bitfields younger than this may belong to a write in progress. */
const LEFTOVER_GRACE_MS = 60 * 60 * 1000;

export interface PruneOptions {
  /** delete least-recently-used entries until the store takes at most this many bytes */
  maxSize?: number;
  /** delete entries not used for this long */
  olderThanMs?: number;
  dryRun?: boolean;
  now?: number;
}

export interface PrunedEntry {
  what: 'blob' | 'partial' | 'leftover';
  /** absent for leftovers */
  digest?: string;
  kind?: BlobKind;
  path: string;
  size: number;
  lastUsed: number;
  reason: 'age' | 'size' | 'stale';
}

export interface PruneResult {
  root: string;
  dryRun: boolean;
  deleted: PrunedEntry[];
  /** entries prune would have deleted but a running process uses */
  kept: { digest: string; what: 'blob' | 'partial'; reason: 'in use' | 'downloading' }[];
  sizeBefore: number;
  sizeAfter: number;
  /** the store is still above maxSize (what is left is in use) */
  overMaxSize: boolean;
}

interface Candidate extends Omit<PrunedEntry, 'reason'> {
  paths: string[];
}

/** The download lock of a blob, as store.lockBlob takes it; null while a pull holds it. */
export async function tryBlobLock(root: string, digest: string): Promise<Lock | null> {
  return tryLock(blobLockKey(await storeKey(root), digest));
}

export async function prune(root: string, opts: PruneOptions): Promise<PruneResult> {
  const now = opts.now ?? Date.now();
  const dryRun = !!opts.dryRun;
  // A dry run changes nothing, so it needs no maintenance lock (and removes no stale registration).
  const maintenance = dryRun ? null : await maintenanceLock(root);
  try {
    const inUse = new Set((await readRegistrations(root, { removeStale: !dryRun })).flatMap((r) => r.digests));
    const inv = await readInventory(root);
    const entries: Candidate[] = [
      ...inv.blobs.map((b) => ({ what: 'blob' as const, digest: b.digest, kind: b.kind, path: b.path, paths: [b.path], size: b.size, lastUsed: b.lastUsed })),
      ...inv.partials.map((p) => ({ what: 'partial' as const, digest: p.digest, path: p.path, paths: [p.path, p.path + '.pieces'], size: p.diskBytes, lastUsed: p.lastUsed })),
    ];
    const leftovers: Candidate[] = inv.leftovers.map((l) => ({ what: 'leftover' as const, path: l.path, paths: [l.path], size: l.size, lastUsed: l.lastUsed }));
    const sizeBefore = [...entries, ...leftovers].reduce((a, e) => a + e.size, 0);
    let size = sizeBefore;
    const deleted: PrunedEntry[] = [];
    const kept: PruneResult['kept'] = [];
    const gone = new Set<Candidate>();

    const keep = (e: Candidate, reason: PruneResult['kept'][number]['reason']) => {
      const what = e.what as 'blob' | 'partial';
      if (!kept.some((k) => k.digest === e.digest && k.what === what)) kept.push({ digest: e.digest!, what, reason });
    };
    const remove = async (e: Candidate, reason: PrunedEntry['reason']): Promise<void> => {
      if (gone.has(e)) return;
      if (e.digest && inUse.has(e.digest)) return keep(e, 'in use');
      // Held while deleting, so no pull starts on this blob meanwhile; leftovers belong to no blob.
      const held = e.digest ? await tryBlobLock(root, e.digest) : undefined;
      if (held === null) return keep(e, 'downloading');
      try {
        if (!dryRun) for (const p of e.paths) await unlink(p).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err; });
      } finally {
        await held?.release();
      }
      gone.add(e);
      size -= e.size;
      const { paths: _paths, ...entry } = e;
      deleted.push({ ...entry, reason });
    };

    // Leftovers of crashed processes, and partials whose bitfield is lost (their download would start over).
    for (const l of leftovers) if (now - l.lastUsed > LEFTOVER_GRACE_MS) await remove(l, 'stale');
    for (const p of inv.partials) {
      if (p.pieces === null) await remove(entries.find((e) => e.what === 'partial' && e.digest === p.digest)!, 'stale');
    }
    if (opts.olderThanMs !== undefined) {
      for (const e of entries) if (now - e.lastUsed > opts.olderThanMs) await remove(e, 'age');
    }
    if (opts.maxSize !== undefined) {
      const lru = entries.filter((e) => !gone.has(e)).sort((a, b) => a.lastUsed - b.lastUsed || a.path.localeCompare(b.path));
      for (const e of lru) {
        if (size <= opts.maxSize) break;
        await remove(e, 'size');
      }
    }
    return { root, dryRun, deleted, kept, sizeBefore, sizeAfter: size, overMaxSize: opts.maxSize !== undefined && size > opts.maxSize };
  } finally {
    await maintenance?.release();
  }
}
