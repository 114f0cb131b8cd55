// The tar `docker save` (Docker 25+) writes, both formats in one: `manifest.json` for every Docker before 29
// (and upgraded hosts), `oci-layout` + `index.json` for the containerd image store, all pointing into
// `blobs/sha256/`. Blobs are written as they arrive, layers still compressed: `docker load` decompresses
// and checks diff_ids itself. The metadata goes last, `manifest.json` the very last entry, so a tar cut
// short (abort, crash, full disk) never loads: nothing names the blobs until every one is there.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { failure, integrityError } from '../errors.ts';
import { digestHex } from '../image/digest.ts';
import { MediaType, type Descriptor } from '../image/types.ts';
import { CONTAINERD_NAME_ANNOTATION, REF_NAME_ANNOTATION, fullTaggedName, repoTag } from './naming.ts';
import { SerialQueue } from './serial.ts';
import type { ResolvedImage } from './sink.ts';

// Fixed header fields: the same image always gives the same tar, whoever wrote it and when.
const EPOCH = new Date(0);
const READ_CHUNK = 1 << 20;

const blobPath = (digest: string) => `blobs/sha256/${digestHex(digest)}`;

/** The three metadata files of the tar, as docker save writes them. */
export function dockerTarMetadata(image: ResolvedImage): { ociLayout: Buffer; indexJson: Buffer; manifestJson: Buffer } {
  const { reference: ref, manifest } = image;
  const name = fullTaggedName(ref);
  const tag = repoTag(ref);
  // Untagged (pulled by digest only): no name, so the image loads dangling rather than under a made-up tag.
  const annotations = name && ref.tag ? { [CONTAINERD_NAME_ANNOTATION]: name, [REF_NAME_ANNOTATION]: ref.tag } : undefined;
  const index = {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: [
      {
        mediaType: manifest.mediaType,
        digest: manifest.digest,
        size: manifest.body.length,
        ...(annotations ? { annotations } : {}),
      },
    ],
  };
  const manifestJson = [
    {
      Config: blobPath(image.config.digest),
      RepoTags: tag ? [tag] : [],
      // One entry per layer in order, repeats included: docker matches them to the config's diff_ids.
      Layers: image.layers.map((l) => blobPath(l.digest)),
    },
  ];
  return {
    ociLayout: Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })),
    indexJson: Buffer.from(JSON.stringify(index)),
    manifestJson: Buffer.from(JSON.stringify(manifestJson)),
  };
}

/**
 * Streams the image's tar into `out` (a file, stdout, the stdin of `docker load`). Not a sink itself: the
 * tar-file and docker-load sinks wrap it with what happens around the stream (rename, the docker process).
 */
export class DockerTarWriter {
  readonly #image: ResolvedImage;
  readonly #pack = tar.pack();
  readonly #queue = new SerialQueue();
  readonly #added = new Set<string>();
  /** Settles when the whole tar has been handed to `out` and `out` has finished, or on the first error. */
  readonly #done: Promise<void>;
  #closed = false;
  #error: unknown;

  constructor(image: ResolvedImage, out: Writable) {
    this.#image = image;
    this.#done = pipeline(this.#pack, out);
    // `out` failing (disk full, docker load gone) destroys the pack with that error, so the entry being written
    // reports it; later calls report it too rather than tar-stream's "already destroyed".
    this.#done.catch((err: unknown) => {
      this.#error ??= err;
    });
    // The directories first, as docker save writes them; extractors create them anyway.
    this.#pack.entry({ name: 'blobs/', type: 'directory', mode: 0o755, mtime: EPOCH, uid: 0, gid: 0 });
    this.#pack.entry({ name: 'blobs/sha256/', type: 'directory', mode: 0o755, mtime: EPOCH, uid: 0, gid: 0 });
  }

  /** Append one verified blob, streamed from `path` (never held in memory). Serialised; a second call for
   *  the same digest is a no-op. */
  addBlob(desc: Descriptor, path: string): Promise<void> {
    return this.#queue.run(async () => {
      this.#assertOpen();
      if (this.#added.has(desc.digest)) return;
      const { size } = await stat(path);
      // The header carries the size up front: check now rather than let tar-stream corrupt the stream.
      if (size !== desc.size) throw integrityError(`blob ${desc.digest}: ${path} holds ${size} bytes, the descriptor says ${desc.size}`);
      await this.#entry(blobPath(desc.digest), size, createReadStream(path, { highWaterMark: READ_CHUNK }));
      this.#added.add(desc.digest);
    });
  }

  /** After every blob: the manifest blob, oci-layout, index.json, manifest.json, the end-of-archive blocks; resolves
   *  once `out` has taken all of it (for a file: written and closed). */
  finish(): Promise<void> {
    return this.#queue.run(async () => {
      this.#assertOpen();
      const missing = [this.#image.config, ...this.#image.layers].find((d) => !this.#added.has(d.digest));
      if (missing) throw failure(`cannot finish the tar: blob ${missing.digest} was never added`);
      this.#closed = true;
      const { manifest } = this.#image;
      const meta = dockerTarMetadata(this.#image);
      if (!this.#added.has(manifest.digest)) await this.#entry(blobPath(manifest.digest), manifest.body.length, manifest.body);
      await this.#entry('oci-layout', meta.ociLayout.length, meta.ociLayout);
      await this.#entry('index.json', meta.indexJson.length, meta.indexJson);
      await this.#entry('manifest.json', meta.manifestJson.length, meta.manifestJson);
      this.#pack.finalize();
      await this.#done;
    });
  }

  /** Stop: the tar ends where it is (without its metadata, so it never loads) and `out` is destroyed.
   *  Resolves once any write in progress has stopped. Never throws. */
  async destroy(): Promise<void> {
    this.#closed = true;
    this.#pack.destroy(new Error('tar aborted'));
    await this.#done.catch(() => {});
    await this.#queue.settled();
  }

  #assertOpen(): void {
    if (this.#error) throw this.#error;
    if (this.#closed) throw failure('the image tar is already finished or aborted');
  }

  async #entry(name: string, size: number, body: Readable | Buffer): Promise<void> {
    const header = { name, size, type: 'file' as const, mode: 0o644, mtime: EPOCH, uid: 0, gid: 0 };
    try {
      if (Buffer.isBuffer(body)) {
        await new Promise<void>((resolve, reject) => this.#pack.entry(header, body, (err) => (err ? reject(err) : resolve())));
      } else {
        // pipeline waits for the pack to drain (tar-stream holds the entry until its reader catches up): back-pressure
        // from `out` reaches the file read.
        await pipeline(body, this.#pack.entry(header));
      }
    } catch (err) {
      // A failing `out` (a full disk, docker load gone) destroys the pack, which fails this entry with a vaguer
      // error of its own ("already finalized or destroyed"): report why `out` failed.
      if (this.#pack.destroyed) await this.#done.catch(() => {});
      throw this.#error ?? err;
    }
  }
}
