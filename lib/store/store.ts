// Content-addressed blob store: complete, verified blobs under blobs/sha256/<hex>, partial ones under partial/.
// Only a blob whose sha256 checked out is ever renamed into blobs/, so "present in blobs/" means "verified".
import { mkdir, readFile, stat, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeFailure } from '../errors.ts';
import { writeFileAtomic } from '../files.ts';
import { digestHex, sha256Digest, assertDigest } from '../image/digest.ts';
import type { Descriptor } from '../image/types.ts';
import { lock, storeKey, type Lock } from './lock.ts';
import { PartialBlob } from './partial.ts';

export function defaultStoreRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SWARMPULL_STORE) return env.SWARMPULL_STORE;
  const cache = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(cache, 'swarmpull');
}

/** The download lock of one blob in the store keyed `key` (store.lockBlob takes it; prune and `store ls` probe it). */
export function blobLockKey(key: string, digest: string): string {
  return `${key}\0${digest}`;
}

export class BlobStore {
  readonly root: string;
  /** what this store's locks are keyed on (lock.ts storeKey), known once init() made the directory */
  #key: string | undefined;

  constructor(root: string) {
    this.root = root;
  }

  async init(): Promise<this> {
    for (const dir of ['blobs/sha256', 'partial/sha256', 'tmp']) await mkdir(join(this.root, dir), { recursive: true });
    this.#key = await storeKey(this.root);
    return this;
  }

  blobPath(digest: string): string {
    return join(this.root, 'blobs/sha256', digestHex(digest));
  }

  partialPath(digest: string): string {
    return join(this.root, 'partial/sha256', digestHex(digest));
  }

  /** A complete blob of the expected size is present (it was verified before it was put there). */
  async has(desc: Pick<Descriptor, 'digest' | 'size'>): Promise<boolean> {
    try {
      return (await stat(this.blobPath(desc.digest))).size === desc.size;
    } catch {
      return false;
    }
  }

  /** Store small verified bytes (manifests, indexes) under their digest. */
  async putBytes(digest: string, body: Buffer): Promise<string> {
    assertDigest(sha256Digest(body), digest, 'blob');
    const path = this.blobPath(digest);
    if (await this.has({ digest, size: body.length })) return path;
    // The temp file lives in $STORE/tmp, where `store prune` finds what a killed process left.
    const tmp = join(this.root, 'tmp', `${digestHex(digest)}.${randomBytes(4).toString('hex')}`);
    await writeFileAtomic(path, body, { tmp }).catch((err: unknown) => {
      throw writeFailure(err, tmp);
    });
    return path;
  }

  /** Read a small stored blob (manifests), checking it against its digest again. */
  async readBytes(digest: string, maxSize: number): Promise<Buffer | null> {
    try {
      const path = this.blobPath(digest);
      if ((await stat(path)).size > maxSize) return null;
      const body = await readFile(path);
      return sha256Digest(body) === digest ? body : null;
    } catch {
      return null;
    }
  }

  /** Exclusive right to download a blob into this store, across processes on this host. */
  async lockBlob(digest: string, opts: { timeoutMs: number; signal?: AbortSignal; onWait?: () => void }): Promise<Lock> {
    this.#key ??= await storeKey(this.root);
    return lock(blobLockKey(this.#key, digest), opts);
  }

  /** Open (or resume) the partial file of a blob. Hold its lock first. */
  openPartial(desc: Pick<Descriptor, 'digest' | 'size'>): Promise<PartialBlob> {
    return PartialBlob.open(this.partialPath(desc.digest), this.blobPath(desc.digest), desc);
  }

  async removeBlob(digest: string): Promise<void> {
    await unlink(this.blobPath(digest)).catch(() => {});
  }
}
