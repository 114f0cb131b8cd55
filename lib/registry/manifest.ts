// Checks on a fetched manifest: digest, JSON, media type.
// Exit codes: a digest mismatch is integrity (5): the bytes are not what was vouched for. An oversized,
// malformed or unsupported manifest whose bytes are intact is a plain failure (1): retrying elsewhere
// (peers) would not help, and nothing was corrupted.
import { failure, quoted } from '../errors.ts';
import { assertDigest, sha256Digest } from '../image/digest.ts';
import { MANIFEST_MEDIA_TYPES, type ManifestBlob } from '../image/types.ts';

export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** Accept header for manifest requests: without it distribution answers 404 or converts to schema1. */
export const MANIFEST_ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');

/** "application/vnd.oci.image.manifest.v1+json; charset=utf-8" → the bare type, lower case. */
export function bareMediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

/**
 * Verify a manifest body. `expectedDigest` is the digest asked for, or the registry's Docker-Content-Digest
 * when asked by tag (undefined when the registry gave none: nothing to check against).
 */
export function checkManifest(body: Buffer, contentType: string | undefined, expectedDigest: string | undefined, what: string): ManifestBlob {
  const digest = sha256Digest(body);
  if (expectedDigest) assertDigest(digest, expectedDigest, what);
  let parsed: { mediaType?: unknown; schemaVersion?: unknown };
  try {
    parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
  } catch {
    throw failure(`${what}: the manifest is not valid JSON`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw failure(`${what}: the manifest is not a JSON object`);
  const fromHeader = bareMediaType(contentType);
  const fromBody = typeof parsed.mediaType === 'string' ? parsed.mediaType : undefined;
  const mediaType = MANIFEST_MEDIA_TYPES.includes(fromHeader) ? fromHeader : (fromBody ?? fromHeader);
  if (parsed.schemaVersion === 1 || mediaType.includes('distribution.manifest.v1')) {
    throw failure(`${what}: Docker schema 1 manifests are not supported; push the image again with a current docker or skopeo`);
  }
  if (!MANIFEST_MEDIA_TYPES.includes(mediaType)) {
    throw failure(`${what}: unsupported manifest media type ${quoted(mediaType || '(none)', 100)}`);
  }
  if (fromBody !== undefined && fromBody !== mediaType) {
    throw failure(`${what}: the registry says ${quoted(mediaType, 100)} but the manifest says ${quoted(fromBody, 100)}`);
  }
  return { digest, mediaType, body };
}
