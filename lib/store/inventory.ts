// What a store holds: complete blobs (and the images their manifests make of them), partial blobs with their
// progress, and leftovers of crashed processes. Read-only: nothing here takes a lock or changes a file.
import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { constants, type Stats } from 'node:fs';
import { join } from 'node:path';
import { isDigest } from '../image/digest.ts';
import { mediaTypeOfJson, parseManifest } from '../image/manifest.ts';
import { formatPlatform } from '../image/platform.ts';
import { Bitfield } from './bitfield.ts';
import { pieceLayout } from './pieces.ts';

/** Manifests are at most this big (as in the registry client); larger blobs are never parsed. */
const MAX_MANIFEST = 4 * 1024 * 1024;

export type BlobKind = 'index' | 'manifest' | 'config' | 'layer' | 'blob';

export interface BlobEntry {
  digest: string;
  path: string;
  size: number;
  /** ms since the epoch: the later of atime and mtime (see lastUsed below) */
  lastUsed: number;
  kind: BlobKind;
  /** digests of the manifests and indexes that name this blob, directly or through a manifest */
  images: string[];
}

export interface PartialEntry {
  digest: string;
  path: string;
  /** the blob's full size, from the bitfield header (the data file's size when the header is unreadable) */
  size: number;
  /** bytes the sparse data file and its bitfield occupy on disk */
  diskBytes: number;
  /** null when the bitfield is missing or unreadable: the download would start over */
  pieces: { done: number; total: number } | null;
  lastUsed: number;
}

export interface ImageEntry {
  digest: string;
  kind: 'index' | 'manifest';
  mediaType: string;
  /** os/arch[/variant], from an index entry naming it or its config blob */
  platform?: string;
  /** config and layers of a manifest, manifests of an index */
  blobs: string[];
  /** those of `blobs` that are not complete in the store */
  missing: string[];
}

export interface Inventory {
  root: string;
  blobs: BlobEntry[];
  partials: PartialEntry[];
  images: ImageEntry[];
  /** files left by crashed processes: bitfields without data, temporary files */
  leftovers: { path: string; size: number; lastUsed: number }[];
}

/**
 * When a file was last used: the later of its atime and mtime. A blob is read (pull output, serving peers) far
 * more often than written, so atime is the signal; Linux's default relatime updates it at most once a day, and on
 * a noatime mount it stays at creation, so mtime (when the blob was stored) is the fallback.
 */
export function lastUsed(st: Stats): number {
  return Math.max(st.atimeMs, st.mtimeMs);
}

/**
 * Open for reading without updating the access time (O_NOATIME: allowed to the file's owner), so that listing
 * the store does not make every manifest look just used; an ordinary open for other users.
 */
async function openNoAtime(path: string): Promise<FileHandle> {
  try {
    return await open(path, constants.O_RDONLY | constants.O_NOATIME);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
    return open(path, 'r');
  }
}

/** The file's bytes; null when its first byte is not `first` (a layer, when looking for JSON). */
async function readNoAtime(path: string, first?: string): Promise<Buffer | null> {
  const fh = await openNoAtime(path);
  try {
    if (first !== undefined) {
      const head = Buffer.alloc(1);
      // a positioned read: readFile() below still starts at 0
      if ((await fh.read(head, 0, 1, 0)).bytesRead !== 1 || head.toString('latin1') !== first) return null;
    }
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

async function listDir(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => [] as string[]);
}

// The bitfield file's format, as lib/store/partial.ts writes it: magic(4) size(8, BE) pieceLength(4, BE) bitfield.
// test/unit/store-gc.test.ts checks this reader against PartialBlob.
const PIECES_MAGIC = 'SPB1';
const PIECES_HEADER = 16;

/** Progress of a partial blob from its `.pieces` file; null if that is missing or from another layout. */
export async function readPieces(piecesPath: string): Promise<{ size: number; done: number; total: number } | null> {
  let fh: FileHandle;
  try {
    fh = await openNoAtime(piecesPath);
  } catch {
    return null;
  }
  try {
    const head = Buffer.alloc(PIECES_HEADER);
    if ((await fh.read(head, 0, PIECES_HEADER, 0)).bytesRead < PIECES_HEADER) return null;
    if (head.toString('latin1', 0, 4) !== PIECES_MAGIC) return null;
    const size = Number(head.readBigUInt64BE(4));
    if (!Number.isSafeInteger(size)) return null;
    const layout = pieceLayout(size);
    if (head.readUInt32BE(12) !== layout.pieceLength) return null;
    const bits = new Bitfield(layout.count);
    if ((await fh.read(bits.buffer, 0, bits.buffer.length, PIECES_HEADER)).bytesRead < bits.buffer.length) return null;
    return { size, done: size === 0 ? layout.count : bits.count(), total: layout.count };
  } finally {
    await fh.close();
  }
}

/** A stored blob that parses as a manifest or index: its kind, media type and what it names. */
async function readImage(path: string, digest: string, size: number): Promise<{ image: ImageEntry; childPlatforms: [string, string][] } | null> {
  if (size > MAX_MANIFEST || size < 2) return null;
  const body = await readNoAtime(path, '{').catch(() => null);
  if (!body) return null;
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return null;
  }
  // The store keeps bytes, not media types: take it from the body, or from its shape (OCI may leave it out).
  const mediaType = mediaTypeOfJson(json);
  if (!mediaType) return null;
  try {
    const m = parseManifest({ digest, mediaType, body });
    if (m.kind === 'manifest') {
      return { image: { digest, kind: m.kind, mediaType, blobs: [m.config.digest, ...m.layers.map((d) => d.digest)], missing: [] }, childPlatforms: [] };
    }
    const childPlatforms = m.manifests.flatMap((d): [string, string][] => (d.platform ? [[d.digest, formatPlatform(d.platform)]] : []));
    return { image: { digest, kind: m.kind, mediaType, blobs: m.manifests.map((d) => d.digest), missing: [] }, childPlatforms };
  } catch {
    return null; // a config or other JSON blob
  }
}

/** The platform a config blob names, if it is one. */
async function configPlatform(config: BlobEntry | undefined): Promise<string | undefined> {
  if (!config || config.size > MAX_MANIFEST) return undefined;
  try {
    const c = JSON.parse((await readNoAtime(config.path))!.toString('utf8')) as Record<string, unknown>;
    if (typeof c.os !== 'string' || typeof c.architecture !== 'string') return undefined;
    return formatPlatform({ os: c.os, architecture: c.architecture, ...(typeof c.variant === 'string' ? { variant: c.variant } : {}) });
  } catch {
    return undefined;
  }
}

export async function readInventory(root: string): Promise<Inventory> {
  const blobs: BlobEntry[] = [];
  const blobDir = join(root, 'blobs/sha256');
  for (const hex of (await listDir(blobDir)).sort()) {
    const digest = `sha256:${hex}`;
    if (!isDigest(digest)) continue;
    const path = join(blobDir, hex);
    const st = await stat(path).catch(() => null);
    if (!st?.isFile()) continue;
    blobs.push({ digest, path, size: st.size, lastUsed: lastUsed(st), kind: 'blob', images: [] });
  }
  const byDigest = new Map(blobs.map((b) => [b.digest, b]));

  // Images, and which blobs each one names.
  const images: ImageEntry[] = [];
  const platforms = new Map<string, string>(); // manifest digest -> platform, from the indexes naming it
  for (const b of blobs) {
    const found = await readImage(b.path, b.digest, b.size);
    if (!found) continue;
    const { image } = found;
    for (const [d, p] of found.childPlatforms) if (!platforms.has(d)) platforms.set(d, p);
    b.kind = image.kind;
    image.missing = image.blobs.filter((d) => !byDigest.has(d));
    images.push(image);
  }
  const parents = new Map<string, Set<string>>(); // blob digest -> images naming it directly
  for (const image of images) {
    for (const [i, d] of image.blobs.entries()) {
      if (!parents.has(d)) parents.set(d, new Set());
      parents.get(d)!.add(image.digest);
      const blob = byDigest.get(d);
      if (blob && image.kind === 'manifest' && blob.kind === 'blob') blob.kind = i === 0 ? 'config' : 'layer';
    }
  }
  for (const b of blobs) {
    const names = new Set<string>();
    for (const p of parents.get(b.digest) ?? []) {
      names.add(p);
      for (const grand of parents.get(p) ?? []) names.add(grand); // the index of a manifest naming the blob
    }
    b.images = [...names].sort();
  }
  // Platforms: from an index entry, else from the manifest's config.
  for (const image of images) {
    if (image.kind !== 'manifest') continue;
    const platform = platforms.get(image.digest) ?? (await configPlatform(byDigest.get(image.blobs[0]!)));
    if (platform) image.platform = platform;
  }

  // Partial blobs, and leftovers.
  const partials: PartialEntry[] = [];
  const leftovers: Inventory['leftovers'] = [];
  const partialDir = join(root, 'partial/sha256');
  const names = await listDir(partialDir);
  for (const name of names.sort()) {
    const path = join(partialDir, name);
    const st = await stat(path).catch(() => null);
    if (!st?.isFile()) continue;
    if (name.endsWith('.pieces')) {
      if (!names.includes(name.slice(0, -'.pieces'.length))) leftovers.push({ path, size: st.size, lastUsed: lastUsed(st) });
      continue;
    }
    const digest = `sha256:${name}`;
    if (!isDigest(digest)) continue;
    const pst = await stat(path + '.pieces').catch(() => null);
    const pieces = await readPieces(path + '.pieces');
    partials.push({
      digest,
      path,
      size: pieces?.size ?? st.size,
      diskBytes: st.blocks * 512 + (pst?.size ?? 0),
      pieces: pieces ? { done: pieces.done, total: pieces.total } : null,
      lastUsed: Math.max(lastUsed(st), pst ? lastUsed(pst) : 0),
    });
  }
  const tmpDir = join(root, 'tmp');
  for (const name of await listDir(tmpDir)) {
    const st = await stat(join(tmpDir, name)).catch(() => null);
    if (st?.isFile()) leftovers.push({ path: join(tmpDir, name), size: st.size, lastUsed: lastUsed(st) });
  }
  return { root, blobs, partials, images, leftovers };
}
