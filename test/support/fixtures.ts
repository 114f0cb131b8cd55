// Builds fixture images as OCI layouts (tar + gzip written here, no network) and pushes them with skopeo.
import { createCipheriv, createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile, rename, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable, Transform } from 'node:stream';
import { createGzip, constants as zlib } from 'node:zlib';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import tar from 'tar-stream';
import type { Descriptor, Platform } from '../../lib/image/types.ts';
import { MediaType } from '../../lib/image/types.ts';

const run = promisify(execFile);

export interface FixtureImage {
  layoutDir: string;
  tag: string;
  /** digest of the image manifest (or of the index, for multi-arch) */
  digest: string;
  manifest: { digest: string; size: number };
  config: Descriptor;
  layers: (Descriptor & { diffId: string })[];
  /** total bytes of config + layers */
  size: number;
}

/** Deterministic incompressible bytes: AES-CTR keystream of a seed. */
export function pseudoRandom(seed: string, size: number): Readable {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const chunk = Buffer.alloc(1 << 20);
  let left = size;
  return new Readable({
    read() {
      if (left <= 0) return this.push(null);
      const n = Math.min(left, chunk.length);
      left -= n;
      this.push(cipher.update(chunk.subarray(0, n)));
    },
  });
}

function hashing(hash: ReturnType<typeof createHash>, count: { n: number }) {
  return new Transform({
    transform(c: Buffer, _e, cb) {
      hash.update(c);
      count.n += c.length;
      cb(null, c);
    },
  });
}

async function writeBlob(layoutDir: string, data: Buffer | string): Promise<{ digest: string; size: number }> {
  const buf = Buffer.from(data);
  const hex = createHash('sha256').update(buf).digest('hex');
  await mkdir(join(layoutDir, 'blobs/sha256'), { recursive: true });
  await writeFile(join(layoutDir, 'blobs/sha256', hex), buf);
  return { digest: `sha256:${hex}`, size: buf.length };
}

/** A gzip layer holding one file of `size` pseudo-random bytes. */
async function writeLayer(layoutDir: string, seed: string, size: number) {
  await mkdir(join(layoutDir, 'blobs/sha256'), { recursive: true });
  const tmp = join(layoutDir, `blobs/sha256/.tmp-${process.pid}-${seed.replace(/\W/g, '_')}`);
  const pack = tar.pack();
  const diff = createHash('sha256');
  const comp = createHash('sha256');
  const diffCount = { n: 0 };
  const compCount = { n: 0 };
  const written = pipeline(
    pack,
    hashing(diff, diffCount),
    createGzip({ level: zlib.Z_BEST_SPEED }),
    hashing(comp, compCount),
    createWriteStream(tmp),
  );
  const entry = pack.entry({ name: `data/${seed.replace(/\W/g, '_')}.bin`, size, mode: 0o644, mtime: new Date(0) });
  await pipeline(pseudoRandom(seed, size), entry);
  pack.finalize();
  await written;
  const hex = comp.digest('hex');
  await rename(tmp, join(layoutDir, 'blobs/sha256', hex));
  return {
    mediaType: MediaType.ociLayerGzip,
    digest: `sha256:${hex}`,
    size: compCount.n,
    diffId: `sha256:${diff.digest('hex')}`,
  };
}

export interface ImageSpec {
  /** sizes in bytes of the file inside each layer */
  layers: number[];
  seed?: string;
  platform?: Platform;
}

/** Write one platform's manifest + config + layers into layoutDir; returns descriptors (not tagged). */
export async function writeManifest(layoutDir: string, spec: ImageSpec) {
  const seed = spec.seed ?? 'swarmpull';
  const platform = spec.platform ?? { os: 'linux', architecture: 'amd64' };
  const layers = [];
  for (const [i, size] of spec.layers.entries()) layers.push(await writeLayer(layoutDir, `${seed}-${platform.architecture}-${i}`, size));
  const configJson = JSON.stringify({
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    created: '2026-01-01T00:00:00Z',
    config: { Cmd: ['/bin/sh'], Env: ['PATH=/usr/bin:/bin'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map(() => ({ created: '2026-01-01T00:00:00Z', created_by: 'swarmpull fixture' })),
  });
  const config = { mediaType: MediaType.ociConfig, ...(await writeBlob(layoutDir, configJson)) };
  const manifestJson = JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config,
    layers: layers.map(({ diffId: _d, ...desc }) => desc),
  });
  const manifest = await writeBlob(layoutDir, manifestJson);
  return { manifest, config, layers, platform };
}

async function writeIndex(layoutDir: string, tag: string, desc: Descriptor) {
  await writeFile(join(layoutDir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const index = {
    schemaVersion: 2,
    manifests: [{ ...desc, annotations: { 'org.opencontainers.image.ref.name': tag } }],
  };
  await writeFile(join(layoutDir, 'index.json'), JSON.stringify(index));
}

/** A single-platform image as an OCI layout tagged `tag`. */
export async function buildImage(layoutDir: string, tag: string, spec: ImageSpec): Promise<FixtureImage> {
  const m = await writeManifest(layoutDir, spec);
  await writeIndex(layoutDir, tag, { mediaType: MediaType.ociManifest, ...m.manifest });
  return {
    layoutDir,
    tag,
    digest: m.manifest.digest,
    manifest: m.manifest,
    config: m.config,
    layers: m.layers,
    size: m.config.size + m.layers.reduce((a, l) => a + l.size, 0),
  };
}

/** A multi-arch image: an OCI index over one manifest per platform. */
export async function buildMultiArch(layoutDir: string, tag: string, specs: ImageSpec[]) {
  const platforms = [];
  for (const spec of specs) platforms.push(await writeManifest(layoutDir, spec));
  const indexJson = JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: platforms.map((p) => ({ mediaType: MediaType.ociManifest, ...p.manifest, platform: p.platform })),
  });
  const index = await writeBlob(layoutDir, indexJson);
  await writeIndex(layoutDir, tag, { mediaType: MediaType.ociIndex, ...index });
  return { layoutDir, tag, digest: index.digest, platforms };
}

export interface PushOptions {
  /** 'v2s2' converts to Docker schema2 (and Docker manifest lists) on the way */
  format?: 'oci' | 'v2s2';
  creds?: string;
  /** push every platform of an index */
  all?: boolean;
  /** certs.d-style directory (client.cert, client.key) for a registry that requires a client certificate */
  certDir?: string;
}

/** skopeo copy oci:DIR:TAG docker://HOST/NAME:TAG; returns the digest the registry stored. */
export async function pushImage(layoutDir: string, tag: string, dest: string, opts: PushOptions = {}): Promise<string> {
  const digestFile = join(layoutDir, `.pushed-${process.pid}-${Date.now()}`);
  const args = ['copy', '--quiet', '--dest-tls-verify=false', '--digestfile', digestFile];
  if (opts.format === 'v2s2') args.push('--format', 'v2s2');
  if (opts.all) args.push('--all');
  if (opts.creds) args.push('--dest-creds', opts.creds);
  if (opts.certDir) args.push('--dest-cert-dir', opts.certDir);
  args.push(`oci:${layoutDir}:${tag}`, `docker://${dest}`);
  await run('skopeo', args, { env: { ...process.env, HOME: process.env.HOME ?? '/root' } });
  return (await readFile(digestFile, 'utf8')).trim();
}
