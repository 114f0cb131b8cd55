// Shared by the output tests: fixture images as a ResolvedImage plus the store-like paths of their blobs.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Descriptor } from '../../lib/image/types.ts';
import { MediaType } from '../../lib/image/types.ts';
import type { ImageSink, ResolvedImage } from '../../lib/output/sink.ts';
import { parseReference } from '../../lib/reference.ts';
import { buildImage, type FixtureImage, type ImageSpec } from '../support/fixtures.ts';

export const run = promisify(execFile);
/** skopeo wants a HOME for its auth file lookups */
export const toolEnv = { ...process.env, HOME: process.env.HOME ?? '/root' };

export interface Fixture {
  fx: FixtureImage;
  image: ResolvedImage;
  /** config and layers with the path of each blob's file (stand-in for the store) */
  blobs: { desc: Descriptor; path: string }[];
}

export const blobFile = (layoutDir: string, digest: string) => join(layoutDir, 'blobs/sha256', digest.slice('sha256:'.length));

/** Build a fixture OCI layout and describe it as the pull would: `ref` is the user's reference. */
export async function fixture(layoutDir: string, ref: string, spec: ImageSpec): Promise<Fixture> {
  const fx = await buildImage(layoutDir, 'fixture', spec);
  const body = await readFile(blobFile(layoutDir, fx.manifest.digest));
  const layers = fx.layers.map(({ diffId: _d, ...desc }) => desc);
  const image: ResolvedImage = {
    reference: parseReference(ref),
    manifest: { digest: fx.manifest.digest, mediaType: MediaType.ociManifest, body },
    config: fx.config,
    layers,
    platform: spec.platform ?? { os: 'linux', architecture: 'amd64' },
  };
  const blobs = [fx.config, ...layers].map((desc) => ({ desc, path: blobFile(layoutDir, desc.digest) }));
  return { fx, image, blobs };
}

export function shuffled<T>(items: T[]): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** Hand every blob to the sink in a random order, all calls overlapping, as the pull's downloads finish. */
export async function addAll(sink: ImageSink, blobs: Fixture['blobs']): Promise<void> {
  await Promise.all(shuffled(blobs).map(({ desc, path }) => sink.addBlob(desc, path)));
}

export async function tempDir(prefix: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `swarmpull-${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}
