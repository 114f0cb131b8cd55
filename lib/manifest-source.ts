// Where a pull's manifests come from. Tags are resolved only at the registry: a peer could hand out a stale or
// forged tag, and nothing could tell. A digest names its bytes, so a manifest pinned by digest may also come from
// the store or from peers when the registry is out of reach: the digest is the check. The registry stays first: it
// gets REGISTRY_FIRST_MS to answer (or until it fails for good) before the store and peers are asked, so with the
// registry up nothing changes; with it down, a pull by digest does not sit through the client's retry back-off.
// (The client's onRetry must reach RegistryHealth.retrying for the quick fallback on a refused connection.)
import { unreachableError } from './errors.ts';
import { isDigest } from './image/digest.ts';
import { mediaTypeOfJson } from './image/manifest.ts';
import type { ManifestBlob } from './image/types.ts';
import type { RegistryClient } from './registry/client.ts';
import { checkManifest, MAX_MANIFEST_BYTES } from './registry/manifest.ts';
import { isUnreachable, type RegistryHealth } from './registry-health.ts';
import type { BlobStore } from './store/store.ts';
import type { Swarm } from './swarm/swarm.ts';

/** how long the registry has the manifest to itself (a registry that is up answers in well under a second) */
const REGISTRY_FIRST_MS = 3000;
/** how long peers are searched for a manifest (mDNS asks at once, then with back-off) */
const PEER_SEARCH_MS = 15_000;

export interface ManifestSourceOptions {
  registry: Pick<RegistryClient, 'getManifest' | 'registry'>;
  health: RegistryHealth;
  store: BlobStore;
  /** the pull's swarm, once it listens; absent with --registry-only */
  swarm?: Promise<Swarm>;
  /** what the user should see: where a manifest came from when not from the registry, bans */
  log: (msg: string) => void;
}

export class ManifestSource {
  private readonly opts: ManifestSourceOptions;
  /** ends registry requests that go on after peers answered (see byDigest) */
  private readonly closed = new AbortController();

  constructor(opts: ManifestSourceOptions) {
    this.opts = opts;
  }

  /** Stop what still runs in the background; call when the pull ends. */
  close(): void {
    this.closed.abort();
  }

  async getManifest(repository: string, reference: string, signal?: AbortSignal): Promise<ManifestBlob> {
    const { registry } = this.opts;
    if (isDigest(reference) && this.opts.swarm) return this.byDigest(repository, reference, signal ?? new AbortController().signal);
    try {
      return await registry.getManifest(repository, reference, signal);
    } catch (err) {
      if (!isUnreachable(err) || !this.opts.swarm || isDigest(reference)) throw err;
      throw unreachableError(
        `registry ${registry.registry} is unreachable: ${(err as Error).message}; tags are resolved only at the registry: ` +
          `pull by digest (${registry.registry}/${repository}@sha256:…) to get the image from peers`,
        err,
      );
    }
  }

  /**
   * The registry first. The store and peers are asked too once the registry's connection fails (refused, reset: the
   * client is about to back off and retry), it fails for good, or it keeps silent for REGISTRY_FIRST_MS; the first
   * verified answer wins.
   */
  private async byDigest(repository: string, digest: string, signal: AbortSignal): Promise<ManifestBlob> {
    const { health } = this.opts;
    const what = `${this.opts.registry.registry}/${repository}: manifest ${digest}`;
    const stop = new AbortController();
    const either = AbortSignal.any([signal, stop.signal]);
    // While the registry is known to be down this fails at once (or is the next probe). It is not stopped when peers
    // answer first: should it succeed after all, the registry counts as up again (a hiccup, not an outage).
    const fromRegistry = health.run(() => this.opts.registry.getManifest(repository, digest, AbortSignal.any([signal, this.closed.signal])));
    let timer: NodeJS.Timeout | undefined;
    let unsubscribe = () => {};
    try {
      return await new Promise<ManifestBlob>((resolve, reject) => {
        let registryFailed: unknown;
        let othersFailed: unknown;
        let othersAsked = false;
        const giveUp = () => {
          if (registryFailed === undefined || othersFailed === undefined) return;
          const why = (othersFailed as Error).message;
          reject(unreachableError(`${(registryFailed as Error).message}; no peer sent manifest ${digest} either (${why})`, registryFailed));
        };
        const askOthers = () => {
          if (othersAsked) return;
          othersAsked = true;
          clearTimeout(timer);
          this.fromStoreOrPeers(what, digest, either).then(
            ({ manifest, from }) => {
              // The blobs leave the registry alone too (but for a probe now and then) when it is failing, or when
              // it kept silent while peers answered (they will have the blobs); a store that merely answered
              // faster than a slow registry says nothing about the registry.
              if (registryFailed !== undefined || health.connectionFailing || from === 'peers') {
                health.markDown(registryFailed ?? unreachableError(`${what}: the registry did not answer`));
              }
              resolve(manifest);
            },
            (err: unknown) => {
              othersFailed = err;
              giveUp();
            },
          );
        };
        timer = setTimeout(askOthers, health.isDown || health.connectionFailing ? 0 : REGISTRY_FIRST_MS);
        unsubscribe = health.onConnectionFailure(askOthers);
        fromRegistry.then(resolve, (err: unknown) => {
          if (!isUnreachable(err)) return reject(err);
          registryFailed = err;
          askOthers();
          giveUp();
        });
      });
    } finally {
      clearTimeout(timer);
      unsubscribe();
      stop.abort(); // the search of peers, when the registry answered first
      fromRegistry.catch(() => {});
    }
  }

  private async fromStoreOrPeers(what: string, digest: string, signal: AbortSignal): Promise<{ manifest: ManifestBlob; from: 'the store' | 'peers' }> {
    let body = await this.opts.store.readBytes(digest, MAX_MANIFEST_BYTES);
    let from: 'the store' | 'peers' = 'the store';
    if (!body) {
      const swarm = await this.opts.swarm!;
      body = await swarm.fetchByDigest(digest, { maxSize: MAX_MANIFEST_BYTES, timeoutMs: PEER_SEARCH_MS, signal, warn: this.opts.log });
      from = 'peers';
    }
    const manifest = checkManifest(body, mediaTypeOf(body), digest, `${what} (from ${from})`);
    this.opts.log(`manifest ${digest.slice(0, 19)} from ${from}: the registry did not answer`);
    return { manifest, from };
  }
}

/** A manifest's media type from its bytes (a store or a peer has no Content-Type to give). */
function mediaTypeOf(body: Buffer): string | undefined {
  try {
    return mediaTypeOfJson(JSON.parse(body.toString('utf8')) as Record<string, unknown>);
  } catch {
    return undefined; // checkManifest says what is wrong with it
  }
}
