// Durable, atomic file updates for the store and the outputs: write a temp file, fsync, rename over the target,
// fsync the directory. A reader (or a crash) sees the old file or the new one, never half of one.
//
// Output directories may be writable by others (a shared layout, /tmp): whoever can write there can plant a
// symlink at a name we are about to write, aiming a root pull at any file. So temp names are random, every file
// is created afresh (O_EXCL|O_NOFOLLOW: never an existing file, never through a link), its mode is set on the open
// handle, and it reaches its name by rename, which replaces a planted link itself, never the file it points to.
import { constants } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';

/** A temp name beside `path` (same directory, so the rename is atomic) that no one can guess in advance. */
export function tempPath(path: string, tag = 'tmp'): string {
  return `${path}.${tag}-${randomBytes(8).toString('hex')}`;
}

/** open(2) flags for a file that must not exist yet; a symlink in its place fails the open (EEXIST or ELOOP). */
const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Create `path`, which must not exist (not even as a dangling symlink), with exactly `mode` (the umask aside). */
export async function createNew(path: string, mode = 0o644): Promise<FileHandle> {
  const fh = await open(path, CREATE_NEW, mode);
  try {
    await fh.chmod(mode);
  } catch (err) {
    await fh.close();
    throw err;
  }
  return fh;
}

/** Create `path` afresh (as createNew), let `fill` write it, fsync, close; on failure the file is removed. */
export async function writeNewFile(path: string, fill: (fh: FileHandle) => Promise<void>, mode = 0o644): Promise<void> {
  const fh = await createNew(path, mode); // if this fails, whatever is at `path` is not ours to remove
  try {
    await fill(fh);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(path, { force: true }); // a full disk leaves no half file behind
    throw err;
  }
  await fh.close();
}

const COPY_CHUNK = 1 << 20;

/** Copy the file at `from` into `to` (an open, empty file). */
export async function copyInto(from: string, to: FileHandle): Promise<void> {
  const src = await open(from, 'r');
  try {
    const buf = Buffer.allocUnsafe(COPY_CHUNK);
    for (let pos = 0; ; ) {
      const { bytesRead } = await src.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) return;
      for (let done = 0; done < bytesRead; ) done += (await to.write(buf, done, bytesRead - done, pos + done)).bytesWritten;
      pos += bytesRead;
    }
  } finally {
    await src.close();
  }
}

/** fsync a file or a directory by path (for a directory: makes renames and new entries in it durable). */
export async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Replace `path` with `data` atomically and durably. `tmp` must be on the same file system (default: beside
 * `path`); it is removed when anything fails, so a full disk leaves no half file behind.
 */
export async function writeFileAtomic(path: string, data: Buffer, opts: { mode?: number; tmp?: string } = {}): Promise<void> {
  const { mode = 0o644, tmp = tempPath(path) } = opts;
  await writeNewFile(tmp, (fh) => fh.writeFile(data), mode);
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncPath(dirname(path));
}
