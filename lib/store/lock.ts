// Cross-process locks that the kernel releases when the holder dies, even by SIGKILL: a listening socket in
// Linux's abstract unix namespace. No lock files, so no stale locks to clean up after a crash.
// The namespace is per network namespace: processes sharing one store must share a network namespace.
import { createServer, type Server } from 'node:net';
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { failure } from '../errors.ts';

export interface Lock {
  release(): Promise<void>;
}

/**
 * The key a store's locks are made from: the directory itself (device and inode), not a spelling of its path, so
 * `--store s`, `./s`, `/abs/s/`, a symlink to it and a bind mount of it all take the same locks. (By path, two
 * pulls fetched one blob into one partial file and the second one's rename failed.) A store that does not exist
 * yet holds nothing to protect; its absolute path serves.
 */
export async function storeKey(root: string): Promise<string> {
  try {
    const st = await stat(root, { bigint: true });
    return `store\0${st.dev}:${st.ino}`;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return `store\0${resolve(root)}`;
    throw failure(`cannot open the store ${root}: ${(err as Error).message}`, err);
  }
}

function socketName(key: string): string {
  return '\0swarmpull-' + createHash('sha256').update(key).digest('hex').slice(0, 40);
}

/** Take the lock if free; null if another process (or this one) holds it. */
export function tryLock(key: string): Promise<Lock | null> {
  return new Promise((resolve, reject) => {
    const server: Server = createServer((sock) => sock.destroy());
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') resolve(null);
      else reject(failure(`cannot take lock: ${err.message}`, err));
    });
    server.listen({ path: socketName(key), exclusive: true }, () => {
      server.unref();
      resolve({ release: () => new Promise<void>((r) => server.close(() => r())) });
    });
  });
}

/** Wait for the lock, polling; `onWait` is called once if someone else holds it. */
export async function lock(key: string, opts: { timeoutMs: number; signal?: AbortSignal; onWait?: () => void }): Promise<Lock> {
  const deadline = Date.now() + opts.timeoutMs;
  let waited = false;
  for (;;) {
    opts.signal?.throwIfAborted();
    const l = await tryLock(key);
    if (l) return l;
    if (!waited) opts.onWait?.();
    waited = true;
    if (Date.now() > deadline) throw failure(`timed out after ${Math.round(opts.timeoutMs / 1000)} s waiting for another swarmpull on this host (lock ${key.replaceAll('\0', ' ')})`);
    await sleep(150, undefined, { signal: opts.signal });
  }
}
