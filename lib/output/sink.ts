// Where an image goes. Every output takes verified blobs as they complete and makes the image visible
// only at commit, so a pull that stops halfway leaves no half image behind.
import type { Descriptor, ManifestBlob, Platform } from '../image/types.ts';
import { formatReference, type Reference } from '../reference.ts';

export interface ResolvedImage {
  /** normalised, as the user asked (tag and/or digest) */
  reference: Reference;
  /** present when the reference pointed at an index / manifest list */
  index?: ManifestBlob;
  /** the chosen platform's image manifest (exact bytes) */
  manifest: ManifestBlob;
  config: Descriptor;
  layers: Descriptor[];
  platform: Platform;
}

export interface ImageSink {
  /** e.g. 'docker load', 'oci:/srv/layout', 'tar:/tmp/x.tar', 'tar:stdout' */
  readonly description: string;
  /** A verified blob (config or layer) at `path` in the store; in any order, once per digest, calls may overlap. */
  addBlob(desc: Descriptor, path: string): Promise<void>;
  /** Every blob added: make the image visible atomically. Returns a short human result. */
  commit(): Promise<string>;
  /** Give up: leave every pre-existing output as it was. Idempotent, never throws. */
  abort(): Promise<void>;
}

/** The name docker shows: docker.io/library/alpine:3 → alpine:3; null when pulled by digest only. */
export function dockerTag(ref: Reference): string | null {
  if (!ref.tag) return null;
  let name = formatReference({ registry: ref.registry, repository: ref.repository });
  if (ref.registry === 'docker.io') name = ref.repository.replace(/^library\//, '');
  return `${name}:${ref.tag}`;
}

/** Runs tasks one after another: tar entries must not interleave. */
export class Serial {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.catch(() => {});
    return result;
  }
}
