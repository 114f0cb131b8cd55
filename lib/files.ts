// Durable, atomic file updates for the store and the outputs: write a temp file, fsync, rename over the target,
// fsync the directory. A reader (or a crash) sees the old file or the new one, never half of one.
import { open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

/** A temp name beside `path` (same directory, so the rename is atomic), unique to this process. */
export function tempPath(path: string, tag = 'tmp'): string {
  return `${path}.${tag}-${process.pid}`;
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
  try {
    const fh = await open(tmp, 'w', mode);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncPath(dirname(path));
}
