// Parsing and checking manifests and indexes fetched from a registry or a peer: untrusted JSON.
import { failure, notFoundError, quoted } from '../errors.ts';
import { isDigest } from './digest.ts';
import { formatPlatform, platformMatches } from './platform.ts';
import { INDEX_MEDIA_TYPES, MediaType, type Descriptor, type ManifestBlob, type Platform } from './types.ts';

export interface ImageIndex {
  kind: 'index';
  manifests: Descriptor[];
}

export interface ImageManifest {
  kind: 'manifest';
  config: Descriptor;
  layers: Descriptor[];
}

const MAX_LAYERS = 1000;
const IMAGE_MEDIA_TYPES: readonly string[] = [MediaType.ociManifest, MediaType.dockerManifest];

function bad(what: string, why: string): never {
  throw failure(`malformed ${what}: ${why}`);
}

function descriptor(v: unknown, what: string): Descriptor {
  if (typeof v !== 'object' || v === null) bad(what, 'descriptor is not an object');
  const d = v as Record<string, unknown>;
  if (typeof d.mediaType !== 'string' || d.mediaType.length > 256) bad(what, 'descriptor without a media type');
  if (typeof d.digest !== 'string' || !isDigest(d.digest)) bad(what, `descriptor digest is not sha256:<64 hex>`);
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) bad(what, 'descriptor size is not a non-negative integer');
  const out: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (typeof d.platform === 'object' && d.platform !== null) {
    const p = d.platform as Record<string, unknown>;
    if (typeof p.os === 'string' && typeof p.architecture === 'string') {
      out.platform = { os: p.os, architecture: p.architecture, ...(typeof p.variant === 'string' ? { variant: p.variant } : {}) };
    }
  }
  if (typeof d.annotations === 'object' && d.annotations !== null && !Array.isArray(d.annotations)) {
    // string values only, as the spec says: whatever else a registry put there is not passed on
    const strings = Object.entries(d.annotations).filter((e): e is [string, string] => typeof e[1] === 'string');
    out.annotations = Object.fromEntries(strings);
  }
  if (Array.isArray(d.urls)) out.urls = d.urls.filter((u): u is string => typeof u === 'string');
  return out;
}

/** Parse a manifest or index whose bytes were already verified against their digest. */
/**
 * The media type of manifest JSON met without its Content-Type (from the store or a peer): the one it names, else
 * what its shape says (OCI lets a manifest leave mediaType out); undefined when it looks like neither.
 */
export function mediaTypeOfJson(json: Record<string, unknown>): string | undefined {
  if (typeof json.mediaType === 'string') return json.mediaType;
  if (Array.isArray(json.manifests)) return MediaType.ociIndex;
  if (json.config !== undefined && Array.isArray(json.layers)) return MediaType.ociManifest;
  return undefined;
}

export function parseManifest(blob: ManifestBlob): ImageIndex | ImageManifest {
  const what = `manifest ${blob.digest}`;
  let json: unknown;
  try {
    json = JSON.parse(blob.body.toString('utf8'));
  } catch {
    bad(what, 'not JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) bad(what, 'not a JSON object');
  const m = json as Record<string, unknown>;
  if (m.schemaVersion !== 2) bad(what, `schemaVersion ${quoted(m.schemaVersion)} (only 2 is supported)`);
  if (typeof m.mediaType === 'string' && m.mediaType !== blob.mediaType) {
    bad(what, `body says ${quoted(m.mediaType)} but it was served as ${blob.mediaType}`);
  }
  if (INDEX_MEDIA_TYPES.includes(blob.mediaType)) {
    if (!Array.isArray(m.manifests)) bad(what, 'index without a manifests list');
    if (m.manifests.length > MAX_LAYERS) bad(what, `index lists ${m.manifests.length} manifests`);
    return { kind: 'index', manifests: m.manifests.map((d) => descriptor(d, what)) };
  }
  if (!IMAGE_MEDIA_TYPES.includes(blob.mediaType)) bad(what, `unsupported media type ${blob.mediaType}`);
  if (!Array.isArray(m.layers)) bad(what, 'manifest without layers');
  if (m.layers.length > MAX_LAYERS) bad(what, `manifest lists ${m.layers.length} layers`);
  const config = descriptor(m.config, what);
  const layers = m.layers.map((d) => descriptor(d, what));
  // Foreign layers (urls) live outside the registry; docker load cannot use them without network access either.
  if (layers.some((l) => l.urls?.length)) bad(what, 'foreign layers (with urls) are not supported');
  return { kind: 'manifest', config, layers };
}

/** Pick the entry for `wanted` from an index, skipping attestation manifests (platform unknown/unknown). */
export function choosePlatform(index: ImageIndex, wanted: Platform, name: string): Descriptor {
  const images = index.manifests.filter(
    (d) => IMAGE_MEDIA_TYPES.includes(d.mediaType) && d.platform && d.platform.os !== 'unknown',
  );
  const found = images.find((d) => platformMatches(d.platform!, wanted));
  if (found) return found;
  // The index is the registry's: its platform names and their number are cut short for a one-line message.
  const names = images.slice(0, 12).map((d) => formatPlatform(d.platform!)).map((n) => (n.length > 40 ? `${n.slice(0, 40)}…` : n));
  const more = images.length > names.length ? ` and ${images.length - names.length} more` : '';
  const available = names.join(', ') + more || 'none';
  throw notFoundError(`${name} has no ${formatPlatform(wanted)} image (available: ${available}); choose one with --platform`);
}
