// `-o FILE` / `-o -`: the docker-load tar written to a file or to stdout.
import { rename, rm, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { failure, usageError, writeFailure } from '../errors.ts';
import type { Descriptor } from '../image/types.ts';
import { DockerTarWriter } from './docker-tar.ts';
import { createNew, fsyncPath, tempPath } from '../files.ts';
import type { ImageSink, ResolvedImage } from './sink.ts';

export async function openTarFile(path: string, image: ResolvedImage): Promise<ImageSink> {
  return path === '-' ? openStdout(image) : openFile(resolve(path), image);
}

/** The tar goes to a new `FILE.tmp-<random>` and is renamed to FILE on commit: FILE is the complete image or what it
 *  was before (a symlink at FILE is replaced, never written through). */
async function openFile(target: string, image: ResolvedImage): Promise<ImageSink> {
  const existing = await stat(target).catch(() => undefined);
  if (existing?.isDirectory()) throw usageError(`-o ${target}: is a directory (for an OCI image layout use --oci DIR)`);
  const tmp = tempPath(target);
  // Open now, not at the first blob, so a missing directory or a permission problem fails before any download.
  const fh = await createNew(tmp).catch((err: NodeJS.ErrnoException) => {
    throw failure(`cannot write ${target}: ${err.code === 'ENOENT' ? `directory ${dirname(target)} does not exist` : err.message}`, err);
  });
  // flush: fsync on the handle before it closes (not by name: the name could point elsewhere by then).
  const writer = new DockerTarWriter(image, fh.createWriteStream({ flush: true }));
  let state: 'open' | 'committed' | 'aborted' = 'open';
  const failed = (err: unknown): never => {
    throw writeFailure(err, target);
  };
  return {
    description: `tar:${target}`,
    addBlob: (desc: Descriptor, path: string) => writer.addBlob(desc, path).catch(failed),
    async commit() {
      await writer.finish().catch(failed); // written, synced and closed: on disk before the name points at it
      await rename(tmp, target);
      await fsyncPath(dirname(target));
      state = 'committed';
      return `wrote ${target}`;
    },
    async abort() {
      if (state !== 'open') return;
      state = 'aborted';
      await writer.destroy();
      await rm(tmp, { force: true }).catch(() => {});
    },
  };
}

/** `-o -`: nothing can be taken back once written, but the metadata comes last, so a cut-short stream never loads. */
async function openStdout(image: ResolvedImage): Promise<ImageSink> {
  const out = process.stdout;
  // As docker save does: a binary tar on a terminal is never what was meant, and would garble it.
  if (out.isTTY) throw usageError('-o -: refusing to write an image tar to a terminal; redirect stdout or give -o FILE');
  // A reader that goes away (EPIPE) fails the pull with that error instead of crashing the process.
  const onError = () => {};
  out.on('error', onError);
  const writer = new DockerTarWriter(image, forwardTo(out));
  let state: 'open' | 'committed' | 'aborted' = 'open';
  return {
    description: 'tar:stdout',
    addBlob: (desc: Descriptor, path: string) => writer.addBlob(desc, path),
    async commit() {
      await writer.finish();
      out.off('error', onError);
      state = 'committed';
      return 'wrote the tar to stdout';
    },
    async abort() {
      if (state !== 'open') return;
      state = 'aborted';
      await writer.destroy();
      out.off('error', onError);
    },
  };
}

/** A writable that hands chunks to `out` one at a time (each write waits for the previous to flush: back-pressure)
 *  and never ends or destroys `out`: process.stdout outlives the sink. */
function forwardTo(out: NodeJS.WritableStream): Writable {
  return new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _encoding, callback) {
      out.write(chunk, (err) => callback(err ?? null));
    },
  });
}
