// Which blobs running processes use, so `store prune` never deletes them.
//
// A process that uses blobs without holding their download lock (serve seeding the store, a pull seeding what it
// found there, planning, writing its output and lingering) registers them: it holds a lock of its own (an abstract
// socket, as in lock.ts, keyed by a random token) and writes the digests to $STORE/in-use/<token>. A registration is
// live exactly while its lock is held, so the kernel ends it when the process dies, even by SIGKILL: no pid files,
// no pid reuse, no /proc (which a pid namespace would hide). A file whose lock is free is left over from a dead
// process; prune removes it.
//
// Ordering with prune: prune holds the store's maintenance lock while it reads registrations and deletes; a
// registration is written under the same lock. So a registration either lands before prune reads them (prune
// sees it), or after prune has deleted (the registering process then finds the blob gone: register first, then
// look at the store).
import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { failure, writeFailure } from '../errors.ts';
import { isDigest } from '../image/digest.ts';
import { lock, storeKey, tryLock, type Lock } from './lock.ts';

const DIR = 'in-use';
const MAINTENANCE_WAIT_MS = 10 * 60 * 1000;

export interface InUse {
  /** Add digests to this registration (before looking for them in the store). */
  add(digests: Iterable<string>): Promise<void>;
  /** End the registration: prune may delete the blobs again. */
  release(): Promise<void>;
}

export interface Registration {
  token: string;
  pid: number;
  since: string;
  digests: string[];
}

// Tokens are unique on their own: the liveness key does not depend on how a process spelled the store's path.
const holderKey = (token: string) => `in-use\0${token}`;

/** The store's maintenance lock: prune holds it while it deletes; registrations are written under it. */
export async function maintenanceLock(root: string, timeoutMs = MAINTENANCE_WAIT_MS): Promise<Lock> {
  return lock(`${await storeKey(root)}\0maintenance`, { timeoutMs });
}

/** Register blobs this process uses; prune leaves them alone until release() (or this process's death). */
export async function registerInUse(store: { root: string }, digests: Iterable<string> = []): Promise<InUse> {
  const token = `${process.pid}-${randomBytes(8).toString('hex')}`;
  const holder = await tryLock(holderKey(token));
  if (!holder) throw failure(`in-use token ${token} is taken`);
  const dir = join(store.root, DIR);
  const file = join(dir, token);
  const held = new Set<string>();
  const since = new Date().toISOString();
  let released = false;
  const write = async () => {
    const maintenance = await maintenanceLock(store.root);
    try {
      const body: Omit<Registration, 'token'> = { pid: process.pid, since, digests: [...held] };
      await mkdir(dir, { recursive: true });
      const tmp = join(dir, `.${token}.tmp`);
      try {
        await writeFile(tmp, JSON.stringify(body) + '\n', { flag: 'wx' }); // a new file, never through a link
        await rename(tmp, file);
      } catch (err) {
        await unlink(tmp).catch(() => {}); // a full disk leaves no half file behind
        throw writeFailure(err, tmp);
      }
    } finally {
      await maintenance.release();
    }
  };
  const inUse: InUse = {
    async add(more) {
      if (released) throw new Error('in-use registration already released');
      const before = held.size;
      for (const d of more) if (isDigest(d)) held.add(d);
      if (held.size > before) await write();
    },
    async release() {
      if (released) return;
      released = true;
      await unlink(file).catch(() => {});
      await holder.release();
    },
  };
  try {
    await inUse.add(digests);
  } catch (err) {
    await inUse.release();
    throw err;
  }
  return inUse;
}

/** Shorthand for a fixed set: register the blobs a process seeds; call the result to release them. */
export async function registerSeeding(store: { root: string }, digests: Iterable<string>): Promise<() => Promise<void>> {
  const inUse = await registerInUse(store, digests);
  return () => inUse.release();
}

/**
 * The live registrations of a store. With `removeStale`, files of dead processes are deleted (prune does this,
 * holding the maintenance lock). A live registration that cannot be read is an error: its blobs are unknown.
 */
export async function readRegistrations(root: string, opts: { removeStale?: boolean } = {}): Promise<Registration[]> {
  const dir = join(root, DIR);
  const out: Registration[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    // A registration being written (.<token>.tmp): left alone, unless its process is gone.
    const token = name.startsWith('.') ? name.slice(1, -'.tmp'.length) : name;
    const probe = await tryLock(holderKey(token));
    if (probe) {
      // Nobody holds it: the process is gone.
      if (opts.removeStale) await unlink(join(dir, name)).catch(() => {});
      await probe.release();
      continue;
    }
    if (name.startsWith('.')) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(join(dir, name), 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
      throw failure(`unreadable in-use registration ${join(dir, name)} of a running process`);
    }
    const r = parsed as Partial<Registration>;
    if (!Array.isArray(r.digests)) throw failure(`unreadable in-use registration ${join(dir, name)} of a running process`);
    out.push({
      token: name,
      pid: typeof r.pid === 'number' ? r.pid : 0,
      since: typeof r.since === 'string' ? r.since : '',
      digests: r.digests.filter((d): d is string => typeof d === 'string' && isDigest(d)),
    });
  }
  return out;
}
