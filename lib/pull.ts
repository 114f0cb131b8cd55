// The pull job: resolve at the registry, plan the blobs, bring each into the store, hand each to the output.
import { failure } from './errors.ts';
import { downloadBlob, type BlobProgress, type DownloadContext } from './download.ts';
import { choosePlatform, parseManifest } from './image/manifest.ts';
import { formatPlatform, hostPlatform } from './image/platform.ts';
import { INDEX_MEDIA_TYPES, type Descriptor, type ManifestBlob, type Platform } from './image/types.ts';
import { mapLimit } from './limit.ts';
import { ManifestSource } from './manifest-source.ts';
import { openOutput, type OutputSpec } from './output/open.ts';
import type { ImageSink, ResolvedImage } from './output/sink.ts';
import { formatReference, manifestReference, type Reference } from './reference.ts';
import type { RateLimit } from './rate-limit.ts';
import { RegistryClient, type RegistryClientOptions } from './registry/client.ts';
import { RegistryHealth } from './registry-health.ts';
import { registerInUse, type InUse } from './store/in-use.ts';
import type { BlobStore } from './store/store.ts';
import { Slots } from './swarm/semaphore.ts';
import { Swarm, type SwarmOptions } from './swarm/swarm.ts';

const MAX_CONFIG_SIZE = 8 << 20;
/** registry requests at once per host (a fleet multiplies it: keep it small) */
const REGISTRY_CONCURRENCY = 4;
/** lingering ends once no peer asked for anything for this long */
const LINGER_IDLE_MS = 3000;

export interface SwarmSettings extends Omit<SwarmOptions, 'registryConcurrency' | 'log'> {
  /** seed after the image is ready, at most this long */
  lingerMs: number;
  log: (msg: string) => void;
}

export interface PullOptions {
  reference: Reference;
  store: BlobStore;
  output: OutputSpec;
  platform?: Platform;
  registry: Omit<RegistryClientOptions, 'registry'>;
  /** blobs downloaded at once */
  concurrency?: number;
  /** the LAN swarm; absent with --registry-only */
  swarm?: SwarmSettings;
  /** false with --no-registry: blobs come from peers only (manifests still from the registry) */
  useRegistryForBlobs?: boolean;
  /** bytes sent to peers (--max-upload-rate) */
  uploadLimit?: RateLimit;
  /** bytes read from peers and the registry together (--max-download-rate) */
  downloadLimit?: RateLimit;
  signal: AbortSignal;
  progress: PullProgress;
}

export interface PullProgress extends BlobProgress {
  planned(image: ResolvedImage, blobs: Descriptor[]): void;
  blobDone(desc: Descriptor): void;
}

export interface PullResult {
  reference: string;
  /** what the reference resolved to at the registry (an index for a multi-arch image) */
  digest: string;
  /** the chosen platform's image manifest */
  manifestDigest: string;
  platform: string;
  output: string;
  result: string;
  bytes: { total: number; registry: number; peers: number; cached: number };
  peers: { seen: number; used: number };
  startedAt: string;
  readyAt: string;
  durationMs: number;
}

/** Resolve a reference to one platform's image manifest, fetching through an index when there is one. */
export async function resolveImage(
  client: Pick<RegistryClient, 'getManifest'>,
  ref: Reference,
  wanted: Platform,
  signal?: AbortSignal,
): Promise<ResolvedImage> {
  const name = formatReference(ref);
  const top = await client.getManifest(ref.repository, manifestReference(ref), signal);
  let index: ManifestBlob | undefined;
  let manifest = top;
  let platform: Platform | undefined;
  const parsedTop = parseManifest(top);
  if (parsedTop.kind === 'index') {
    index = top;
    const entry = choosePlatform(parsedTop, wanted, name);
    manifest = await client.getManifest(ref.repository, entry.digest, signal);
    if (INDEX_MEDIA_TYPES.includes(manifest.mediaType)) throw failure(`${name}: nested indexes are not supported`);
    platform = entry.platform;
  }
  const parsed = parseManifest(manifest);
  if (parsed.kind !== 'manifest') throw failure(`${name}: expected an image manifest, got ${manifest.mediaType}`);
  return { reference: ref, ...(index ? { index } : {}), manifest, config: parsed.config, layers: parsed.layers, platform: platform ?? wanted };
}

export async function pull(opts: PullOptions): Promise<PullResult> {
  const started = Date.now();
  const { reference: ref, store, progress } = opts;
  // One failed blob stops the others at once.
  const stop = new AbortController();
  const signal = AbortSignal.any([opts.signal, stop.signal]);
  // Shared by manifests and blobs: once the registry is found out of reach, nobody waits on it (but for probes).
  const registryHealth = new RegistryHealth();
  const registry = new RegistryClient({ ...opts.registry, registry: ref.registry, onRetry: (err) => registryHealth.retrying(err) });
  const swarmSettings = opts.swarm;
  let swarm: Swarm | undefined;
  let sink: ImageSink | undefined;
  let inUse: InUse | undefined;
  const bytes = { registry: 0, peers: 0, cached: 0 };
  const limits = { ...(opts.uploadLimit ? { uploadLimit: opts.uploadLimit } : {}), ...(opts.downloadLimit ? { downloadLimit: opts.downloadLimit } : {}) };
  // Listen and discover while the registry resolves the reference.
  const swarmStarted = swarmSettings ? new Swarm({ ...swarmSettings, ...limits, registryConcurrency: REGISTRY_CONCURRENCY }).start() : undefined;
  swarmStarted?.catch(() => {});
  const manifests = new ManifestSource({
    registry,
    health: registryHealth,
    store,
    ...(swarmStarted ? { swarm: swarmStarted } : {}),
    log: (msg) => progress.log(msg),
  });
  try {
    const image = await resolveImage(manifests, ref, opts.platform ?? hostPlatform(), signal);
    // Before looking in the store: `store prune` leaves these blobs alone until the pull ends.
    inUse = await registerInUse(store, [image.index?.digest ?? '', image.manifest.digest, image.config.digest, ...image.layers.map((l) => l.digest)]);
    swarm = await swarmStarted;
    for (const m of [image.index, image.manifest]) {
      if (!m) continue;
      const path = await store.putBytes(m.digest, m.body);
      // Peers may ask for manifests by digest when their registry is out of reach.
      await swarm?.blob({ digest: m.digest, size: m.body.length }, false).seedFrom(path);
    }
    sink = await openOutput(opts.output, image);
    const blobs = dedupe([image.config, ...image.layers]);
    progress.planned(image, blobs);
    // Look for the peers of every blob we lack now, not as each download starts: their waits for peers overlap.
    if (swarm) for (const desc of blobs) if (!(await store.has(desc))) swarm.blob(desc, true);

    let lastByteAt = 0;
    const counting: BlobProgress = {
      bytes(desc, n, source) {
        lastByteAt = Date.now();
        bytes[source === 'peer' ? 'peers' : 'registry'] += n;
        progress.bytes(desc, n, source);
      },
      cached(desc, n) {
        bytes.cached += n;
        progress.cached(desc, n);
      },
      log: (msg) => progress.log(msg),
    };
    const context: DownloadContext = {
      store,
      repository: ref.repository,
      ...(opts.useRegistryForBlobs === false ? {} : { registry, registryHealth }),
      ...(opts.downloadLimit ? { downloadLimit: opts.downloadLimit } : {}),
      ...(swarm ? { swarm } : {}),
      registrySlots: new Slots(REGISTRY_CONCURRENCY),
      progress: counting,
      lastByteAt: () => lastByteAt,
      signal,
    };
    const added: Promise<void>[] = [];
    const fetchBlob = async (desc: Descriptor) => {
      try {
        const path = await downloadBlob(context, desc);
        progress.blobDone(desc);
        // Hand the blob on without holding a download slot; the sink serialises its writes.
        const adding = sink!.addBlob(desc, path);
        adding.catch((err: unknown) => stop.abort(err));
        added.push(adding);
      } catch (err) {
        stop.abort(err);
        throw err;
      }
    };
    // The config first: it names the platform of a single-platform image.
    await fetchBlob(image.config);
    if (!image.index) image.platform = await configPlatform(store, image.config, image.platform);
    await mapLimit(blobs.slice(1), opts.concurrency ?? 8, fetchBlob);
    await Promise.all(added);
    const result = await sink.commit();
    const ready = Date.now();
    progress.log(`image ready: ${result}`);
    if (swarm && swarmSettings) {
      if (swarmSettings.lingerMs > 0 && swarm.hasPeers) progress.log('seeding to peers that still need pieces (--linger)');
      await swarm.linger(swarmSettings.lingerMs, LINGER_IDLE_MS, opts.signal);
    }
    return {
      reference: formatReference(ref),
      digest: image.index?.digest ?? image.manifest.digest,
      manifestDigest: image.manifest.digest,
      platform: formatPlatform(image.platform),
      output: sink.description,
      result,
      bytes: { total: blobs.reduce((a, b) => a + b.size, 0), ...bytes },
      peers: { seen: swarm?.peersSeen.size ?? 0, used: swarm?.peersUsed ?? 0 },
      startedAt: new Date(started).toISOString(),
      readyAt: new Date(ready).toISOString(),
      durationMs: ready - started,
    };
  } catch (err) {
    await sink?.abort();
    // The first failure is the one to report (the rest are downloads it stopped); an interrupt wins over all.
    throw opts.signal.aborted ? (opts.signal.reason ?? err) : stop.signal.aborted ? stop.signal.reason : err;
  } finally {
    await (swarm ?? (await swarmStarted?.catch(() => undefined)))?.stop();
    manifests.close();
    await registry.close();
    await inUse?.release();
  }
}

async function configPlatform(store: BlobStore, config: Descriptor, fallback: Platform): Promise<Platform> {
  const body = await store.readBytes(config.digest, MAX_CONFIG_SIZE);
  try {
    const c = JSON.parse(body?.toString('utf8') ?? '') as Record<string, unknown>;
    if (typeof c.os === 'string' && typeof c.architecture === 'string') {
      return { os: c.os, architecture: c.architecture, ...(typeof c.variant === 'string' ? { variant: c.variant } : {}) };
    }
  } catch {
    // not an image config we can read (e.g. an artifact): keep the platform asked for
  }
  return fallback;
}

function dedupe(blobs: Descriptor[]): Descriptor[] {
  const seen = new Set<string>();
  return blobs.filter((b) => !seen.has(b.digest) && seen.add(b.digest));
}
