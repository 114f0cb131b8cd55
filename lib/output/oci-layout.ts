// `--oci DIR`: an OCI image layout (image-spec image-layout.md), tagged with the ref.name annotation that
// skopeo's and umoci's `oci:DIR:TAG` look up.
//
// Nothing half-written is ever visible as an image:
// - DIR does not exist: the layout is built in a sibling temp dir and renamed into place on commit.
// - DIR is an empty dir (perhaps a mount point, which cannot be renamed over) or an existing layout: blobs are
//   added in place (temp file + rename each), and index.json, which is what makes them an image, is replaced
//   atomically at the end. Until then the new blobs are unreferenced, and abort deletes exactly those.
import { link, lstat, mkdir, readdir, readFile, realpath, rename, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { failure, integrityError, usageError, writeFailure, quoted } from '../errors.ts';
import { digestHex, sha256Digest } from '../image/digest.ts';
import { INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, MediaType, type Descriptor, type ManifestBlob } from '../image/types.ts';
import { lock } from '../store/lock.ts';
import { copyInto, fsyncPath, tempPath, writeFileAtomic, writeNewFile } from '../files.ts';
import { REF_NAME_ANNOTATION } from './naming.ts';
import { SerialQueue } from './serial.ts';
import type { ImageSink, ResolvedImage } from './sink.ts';

export interface OciLayoutOptions {
  /** Tag the whole index rather than the chosen platform's manifest. The caller must then also add every
   *  platform's manifest (exact bytes), config and layers with addBlob: commit checks the index is complete. */
  allPlatforms?: boolean;
}

const LAYOUT_FILE = 'oci-layout';
const INDEX_FILE = 'index.json';
const LAYOUT_VERSION = '1.0.0';
const OCI_TYPE: Record<string, string> = {
  [MediaType.dockerConfig]: MediaType.ociConfig,
  [MediaType.dockerLayerGzip]: MediaType.ociLayerGzip,
  'application/vnd.docker.image.rootfs.diff.tar': MediaType.ociLayer,
};

/**
 * OCI tools (umoci, runtimes) take only OCI media types from a layout, so a Docker schema2 manifest is rewritten
 * with OCI types, as `skopeo copy` does: config and layer bytes are unchanged, the manifest digest changes.
 */
export function ociManifest(image: ResolvedImage): ManifestBlob {
  if (image.manifest.mediaType !== MediaType.dockerManifest) return image.manifest;
  const convert = (d: Descriptor): Descriptor => ({ ...d, mediaType: OCI_TYPE[d.mediaType] ?? d.mediaType });
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: convert(image.config), layers: image.layers.map(convert) }));
  return { mediaType: MediaType.ociManifest, digest: sha256Digest(body), body };
}

const MAX_JSON = 4 << 20; // manifests and index.json: the registry client's manifest limit
const LOCK_TIMEOUT_MS = 60_000;

interface IndexJson {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
  [key: string]: unknown;
}

/** new: DIR does not exist; empty: an empty directory; layout: an existing OCI image layout to merge into. */
type Target = 'new' | 'empty' | 'layout';

export async function openOciLayout(dir: string, image: ResolvedImage, opts: OciLayoutOptions = {}): Promise<ImageSink> {
  const target = resolve(dir);
  const kind = await inspectTarget(target);
  if (kind === 'layout') await readIndex(target); // a broken index.json fails now, before the download
  const sink = new OciLayoutSink(target, kind, image, opts);
  await sink.prepare();
  return sink;
}

async function inspectTarget(target: string): Promise<Target> {
  const st = await stat(target).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw failure(`--oci ${target}: ${err.message}`, err);
  });
  if (!st) return 'new';
  if (!st.isDirectory()) throw usageError(`--oci ${target}: exists and is not a directory`);
  const layout = await readFile(join(target, LAYOUT_FILE), 'utf8').catch(() => undefined);
  if (layout === undefined) {
    if ((await readdir(target)).length === 0) return 'empty';
    throw usageError(`--oci ${target}: not empty and not an OCI image layout (no ${LAYOUT_FILE} file); give a new or empty directory, or an existing layout to add the image to`);
  }
  let version: unknown;
  try {
    version = (JSON.parse(layout) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
  } catch {
    throw failure(`--oci ${target}: ${LAYOUT_FILE} is not valid JSON`);
  }
  if (version !== LAYOUT_VERSION) throw failure(`--oci ${target}: unsupported image layout version ${quoted(version)} (expected ${LAYOUT_VERSION})`);
  return 'layout';
}

async function readIndex(root: string): Promise<IndexJson> {
  let text: string;
  try {
    text = await readFile(join(root, INDEX_FILE), 'utf8');
  } catch (err) {
    // A layout without index.json holds no images yet; start one.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
    throw failure(`--oci ${root}: cannot read ${INDEX_FILE}: ${(err as Error).message}`, err);
  }
  let index: IndexJson;
  try {
    index = JSON.parse(text) as IndexJson;
  } catch {
    throw failure(`--oci ${root}: ${INDEX_FILE} is not valid JSON`);
  }
  if (typeof index !== 'object' || index === null || !Array.isArray(index.manifests)) {
    throw failure(`--oci ${root}: ${INDEX_FILE} has no "manifests" list`);
  }
  return index;
}

class OciLayoutSink implements ImageSink {
  readonly description: string;
  readonly #target: string;
  readonly #kind: Target;
  readonly #image: ResolvedImage;
  readonly #allPlatforms: boolean;
  /** where blobs are written: a private temp dir for a new layout, else DIR itself */
  readonly #root: string;
  readonly #queue = new SerialQueue();
  /** Files this sink created inside an existing DIR: all abort removes there (with the directories below). */
  readonly #createdFiles: string[] = [];
  /** Directories `mkdir -p` made (blobs/sha256 in an empty DIR, the parents of a new DIR), deepest first;
   *  abort removes them only if empty, so nothing someone else put there meanwhile goes. */
  readonly #createdDirs: string[] = [];
  #state: 'open' | 'committed' | 'aborted' = 'open';

  constructor(target: string, kind: Target, image: ResolvedImage, opts: OciLayoutOptions) {
    this.description = `oci:${target}`;
    this.#target = target;
    this.#kind = kind;
    this.#image = image;
    this.#allPlatforms = opts.allPlatforms ?? false;
    this.#root = kind === 'new' ? tempPath(target) : target;
  }

  async prepare(): Promise<void> {
    const blobs = join(this.#root, 'blobs', 'sha256');
    if (this.#kind === 'new') {
      this.#noteDirs(dirname(this.#target), await mkdir(dirname(this.#target), { recursive: true }));
      await mkdir(this.#root); // not recursive: fails if anything (a planted link) already has its random name
      await mkdir(blobs, { recursive: true });
    } else {
      this.#noteDirs(blobs, await mkdir(blobs, { recursive: true }));
    }
  }

  /** Record the directories from `first` (what mkdir -p reported creating) down to `deepest`. */
  #noteDirs(deepest: string, first: string | undefined): void {
    if (!first) return;
    for (let dir = deepest; ; dir = dirname(dir)) {
      this.#createdDirs.push(dir);
      if (dir === first || dir === dirname(dir)) break;
    }
  }

  addBlob(desc: Descriptor, path: string): Promise<void> {
    return this.#queue.run(async () => {
      this.#assertOpen();
      const { size } = await stat(path);
      if (size !== desc.size) throw integrityError(`blob ${desc.digest}: ${path} holds ${size} bytes, the descriptor says ${desc.size}`);
      await this.#putBlob(desc.digest, size, (tmp) => linkOrCopy(path, tmp)).catch(this.#writeFailed);
    });
  }

  /** A full disk is named by the layout's path, not by the temp file that hit it. */
  readonly #writeFailed = (err: unknown): never => {
    throw writeFailure(err, this.#target);
  };

  commit(): Promise<string> {
    return this.#queue.run(async () => {
      this.#assertOpen();
      const { index, reference } = this.#image;
      const manifest = this.#allPlatforms && index ? this.#image.manifest : ociManifest(this.#image);
      await this.#putManifest(manifest);
      const top = this.#allPlatforms && index ? index : manifest;
      if (top === index) await this.#putManifest(index);
      const entry: Descriptor = {
        mediaType: top.mediaType,
        digest: top.digest,
        size: top.body.length,
        ...(top === manifest ? { platform: this.#image.platform } : {}),
        ...(reference.tag ? { annotations: { [REF_NAME_ANNOTATION]: reference.tag } } : {}),
      };
      const missing = await missingBlob(this.#root, entry);
      if (missing) throw failure(`cannot write the OCI layout: ${missing}`);
      await fsyncPath(join(this.#root, 'blobs', 'sha256')); // the blobs' names are durable before anything points at them
      if (this.#kind === 'new') await this.#publishNew(entry);
      else await this.#updateInPlace(entry);
      this.#state = 'committed';
      const name = reference.tag ? `${this.#target}:${reference.tag}` : `${this.#target} (${top.digest}, untagged)`;
      return `wrote ${name}`;
    }).catch(this.#writeFailed);
  }

  async abort(): Promise<void> {
    if (this.#state !== 'open') return;
    this.#state = 'aborted';
    await this.#queue.settled(); // a copy cannot be interrupted: let it land, then remove it
    if (this.#kind === 'new') await rm(this.#root, { recursive: true, force: true }).catch(() => {});
    for (const file of this.#createdFiles) await rm(file, { force: true }).catch(() => {});
    for (const dir of this.#createdDirs) await rmdir(dir).catch(() => {});
  }

  #assertOpen(): void {
    if (this.#state !== 'open') throw failure(`the OCI layout ${this.#target} is already ${this.#state}`);
  }

  /**
   * Write a blob unless the layout has it already: a new temp file (or a hard link to the store's read-only, synced
   * file), then rename, so a blob's name always means its whole content. `write` creates the temp file.
   */
  async #putBlob(digest: string, size: number, write: (tmp: string) => Promise<void>): Promise<void> {
    const file = join(this.#root, 'blobs', 'sha256', digestHex(digest));
    const existing = await lstat(file).catch(() => undefined);
    // Content-addressed: a regular file of the right size under this name is this blob (the layout's owner vouched
    // for it). Anything else, a symlink included, is replaced: rename replaces the link, not what it points to.
    if (existing?.isFile() && existing.size === size) return;
    const tmp = tempPath(file);
    await write(tmp); // creates tmp afresh, or fails without touching anything at that name
    try {
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    // A wrong-sized file we replaced was never a valid blob: not ours to restore on abort.
    if (!existing) this.#createdFiles.push(file);
  }

  #putManifest(m: ManifestBlob): Promise<void> {
    return this.#putBlob(m.digest, m.body.length, (tmp) => writeNewFile(tmp, (fh) => fh.writeFile(m.body)));
  }

  async #publishNew(entry: Descriptor): Promise<void> {
    const index: IndexJson = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [entry] };
    await writeFileAtomic(join(this.#root, LAYOUT_FILE), layoutJson());
    await writeFileAtomic(join(this.#root, INDEX_FILE), Buffer.from(JSON.stringify(index)));
    try {
      // rename(2) replaces only a missing or empty directory: anything that appeared meanwhile is kept.
      await rename(this.#root, this.#target);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      // Pulls started together into one new DIR: the first to finish made it a layout; the others merge into it.
      const now = await inspectTarget(this.#target).catch(() => undefined);
      if (now !== 'layout') throw failure(`--oci ${this.#target}: appeared while pulling; not replacing it`, err);
      await this.#mergeInto(entry);
      return;
    }
    await fsyncPath(dirname(this.#target));
  }

  /** DIR became a layout while this pull built its own beside it: move the blobs it lacks in, then add the entry. */
  async #mergeInto(entry: Descriptor): Promise<void> {
    const from = join(this.#root, 'blobs', 'sha256');
    const to = join(this.#target, 'blobs', 'sha256');
    await mkdir(to, { recursive: true });
    for (const name of await readdir(from)) {
      const file = join(to, name);
      const existing = await lstat(file).catch(() => undefined);
      if (existing?.isFile() && existing.size === (await stat(join(from, name))).size) continue; // content-addressed: the same blob
      await rename(join(from, name), file);
      if (!existing) this.#createdFiles.push(file); // unreferenced until index.json names it: abort takes it out
    }
    await fsyncPath(to);
    await this.#updateInPlace(entry);
    await rm(this.#root, { recursive: true, force: true });
  }

  async #updateInPlace(entry: Descriptor): Promise<void> {
    // Two pulls into one layout must not both read the old index.json and each drop the other's tag.
    const held = await lock(`oci-layout\0${await realpath(this.#target)}`, { timeoutMs: LOCK_TIMEOUT_MS });
    try {
      const index = await readIndex(this.#target); // fresh: another tool may have changed it since open
      index.manifests = mergeEntry(index.manifests, entry);
      const indexFile = join(this.#target, INDEX_FILE);
      const hadIndex = await exists(indexFile);
      await writeFileAtomic(indexFile, Buffer.from(JSON.stringify(index)));
      if (!hadIndex) this.#createdFiles.push(indexFile);
      // oci-layout last: only with it is the directory a layout (an empty DIR becomes one here).
      if (this.#kind === 'empty') {
        await writeFileAtomic(join(this.#target, LAYOUT_FILE), layoutJson());
        this.#createdFiles.push(join(this.#target, LAYOUT_FILE));
      }
    } finally {
      await held.release();
    }
  }
}

/** index.json's list with `entry` in: it takes the place of an entry with the same ref name (a re-pulled tag);
 *  untagged, it is added once per digest. */
export function mergeEntry(manifests: Descriptor[], entry: Descriptor): Descriptor[] {
  const ref = entry.annotations?.[REF_NAME_ANNOTATION];
  if (ref === undefined) {
    const present = manifests.some((m) => m.digest === entry.digest && m.annotations?.[REF_NAME_ANNOTATION] === undefined);
    return present ? manifests : [...manifests, entry];
  }
  const at = manifests.findIndex((m) => m.annotations?.[REF_NAME_ANNOTATION] === ref);
  if (at < 0) return [...manifests, entry];
  return [...manifests.slice(0, at), entry, ...manifests.slice(at + 1).filter((m) => m.annotations?.[REF_NAME_ANNOTATION] !== ref)];
}

/** Walk from `desc` through manifests and indexes: the first blob the layout lacks (or holds at the wrong size),
 *  described for the user, or undefined when the image is complete. */
async function missingBlob(root: string, desc: Descriptor): Promise<string | undefined> {
  const file = join(root, 'blobs', 'sha256', digestHex(desc.digest));
  const st = await lstat(file).catch(() => undefined);
  if (!st?.isFile()) return `blob ${desc.digest} (${desc.mediaType}) was never added`;
  if (st.size !== desc.size) return `blob ${desc.digest} is ${st.size} bytes, expected ${desc.size}`;
  if (!MANIFEST_MEDIA_TYPES.includes(desc.mediaType) || desc.size > MAX_JSON) return undefined;
  let doc: { manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] };
  try {
    doc = JSON.parse(await readFile(file, 'utf8')) as typeof doc;
  } catch {
    return `blob ${desc.digest} is not a valid ${desc.mediaType}`;
  }
  const children = INDEX_MEDIA_TYPES.includes(desc.mediaType) ? (doc.manifests ?? []) : [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])];
  for (const child of children) {
    const missing = await missingBlob(root, child);
    if (missing) return missing;
  }
  return undefined;
}

function layoutJson(): Buffer {
  return Buffer.from(JSON.stringify({ imageLayoutVersion: LAYOUT_VERSION }));
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * A hard link to the store's read-only file when both are on one filesystem: no copy, and the store synced the
 * data already (measured, 1 GiB alone on loopback: 9.2 s with a copy, 6.7 s with links). Else a new file (mode
 * 0644: a layout is for others to read) with a copy, synced.
 */
async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw err; // someone else's file (or link) at our name
    await writeNewFile(to, (fh) => copyInto(from, fh));
  }
}
