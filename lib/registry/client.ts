// Registry v2 client: manifests and blob ranges from one registry, with auth, redirects and retries.
// The pieces live next door: http.ts (undici, socket errors), auth.ts (challenges, tokens), credentials.ts
// (docker/podman config), retry.ts (back-off), status.ts (error answers), manifest.ts and blob.ts (checks).
import { failure, usageError, quoted } from '../errors.ts';
import { isDigest, parseDigest } from '../image/digest.ts';
import type { ManifestBlob } from '../image/types.ts';
import { MANIFEST_MEDIA_TYPES } from '../image/types.ts';
import { apiHost, isLoopbackHost } from '../reference.ts';
import { Authenticator } from './auth.ts';
import { deliverRange, type OnData } from './blob.ts';
import { TooSlow } from './body-pace.ts';
import { WholeBlobStream } from './whole-blob.ts';
import { discard, header, Http, isPlainHttpAnswer, readBody, type Response } from './http.ts';
import { bareMediaType, checkManifest, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES } from './manifest.ts';
import { abortable, Transient, withRetries, type RetryOptions } from './retry.ts';
import { statusError } from './status.ts';

export interface RegistryClientOptions {
  /** Reference.registry, e.g. 'docker.io' or '127.0.0.1:5000' */
  registry: string;
  /** force http:// (loopback hosts try https:// first and fall back to http://, as docker does) */
  plainHttp?: boolean;
  /** https without TLS verification */
  insecure?: boolean;
  /** certs.d roots for CAs and client certificates (default: tls-trust.ts certsDRoots, SWARMPULL_CERTS_D) */
  certsD?: string[];
  /** explicit --creds; if absent, stored credentials are looked up (credentials.ts) */
  creds?: { username: string; password: string };
  /** --debug logging; never receives a secret (tokens, passwords, Authorization, presigned URL queries) */
  log?: (msg: string) => void;
  /** retries after the first attempt, default 5 */
  retries?: number;
  /** headers/body idle timeout (and connect timeout), default 30000 */
  timeoutMs?: number;
  /** first back-off delay, doubling per retry (with jitter), default 500; tests make it small */
  backoffMs?: number;
  /** told of every failed request that is about to be retried (see RetryOptions.onRetry) */
  onRetry?: RetryOptions['onRetry'];
}

/** An answer and the URL that gave it (after redirects). */
interface Answer {
  res: Response;
  url: URL;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

export class RegistryClient {
  readonly registry: string;
  /** https://host, or http://host with --plain-http or once a loopback registry turned out to speak no TLS */
  private base: URL;
  /** a loopback registry without --plain-http: whether it speaks TLS is learnt on the first request */
  private schemeKnown: boolean;
  private schemeProbe: Promise<void> | undefined;
  private readonly plainHttp: boolean;
  private readonly http: Http;
  private readonly auth: Authenticator;
  private readonly log: (msg: string) => void;
  private readonly retry: Omit<RetryOptions, 'signal' | 'progressed'>;
  /** final URL a blob was redirected to (CDN, presigned storage URL), reused for later ranges while it works */
  private readonly blobUrls = new Map<string, URL>();
  /** blobs whose server ignored Range: one whole-body stream each feeds every range (whole-blob.ts) */
  private readonly wholeBlobs = new Map<string, WholeBlobStream>();
  private closing: Promise<void> | undefined;

  constructor(opts: RegistryClientOptions) {
    this.registry = opts.registry;
    const host = apiHost(opts.registry);
    this.plainHttp = opts.plainHttp ?? false;
    this.base = new URL(`${this.plainHttp ? 'http' : 'https'}://${host}`);
    this.schemeKnown = this.plainHttp || !isLoopbackHost(host);
    this.log = opts.log ?? (() => {});
    this.retry = { retries: opts.retries ?? 5, backoffMs: opts.backoffMs ?? 500, log: this.log, onRetry: opts.onRetry };
    this.http = new Http({
      insecure: opts.insecure ?? false,
      timeoutMs: opts.timeoutMs ?? 30_000,
      log: this.log,
      registryHost: host,
      ...(opts.certsD ? { certsD: opts.certsD } : {}),
    });
    this.auth = new Authenticator({
      registry: opts.registry,
      http: this.http,
      creds: opts.creds,
      log: this.log,
      retry: this.retry,
      // Credentials go to a token server over plain HTTP only when the registry itself is spoken to that way.
      plainHttpAllowed: () => this.plainHttp || this.base.protocol === 'http:',
    });
  }

  async getManifest(repository: string, reference: string, signal?: AbortSignal): Promise<ManifestBlob> {
    const asked = manifestRef(reference);
    const what = `${this.registry}/${repository}: manifest ${reference}`;
    return withRetries(what, { ...this.retry, signal }, async () => {
      const answer = await this.registryRequest(repository, 'GET', `/v2/${repository}/manifests/${asked}`, { accept: MANIFEST_ACCEPT }, signal);
      const { res } = answer;
      if (res.statusCode !== 200) throw await this.answerError(answer, repository, what, signal);
      const body = await readBody(res, MAX_MANIFEST_BYTES, this.base.host, signal, this.http.timeoutMs);
      if (!body) throw failure(`${what}: larger than the 4 MiB a manifest may be`);
      return checkManifest(body, header(res, 'content-type'), isDigest(asked) ? asked : this.vouchedDigest(res, what), what);
    });
  }

  async resolveManifest(repository: string, reference: string, signal?: AbortSignal): Promise<{ digest: string; mediaType: string; size: number }> {
    const asked = manifestRef(reference);
    const what = `${this.registry}/${repository}: manifest ${reference}`;
    const head = await withRetries(what, { ...this.retry, signal }, async () => {
      const answer = await this.registryRequest(repository, 'HEAD', `/v2/${repository}/manifests/${asked}`, { accept: MANIFEST_ACCEPT }, signal);
      const { res } = answer;
      if (res.statusCode !== 200) throw await this.answerError(answer, repository, what, signal);
      await discard(res);
      return {
        digest: header(res, 'docker-content-digest') ?? '',
        mediaType: bareMediaType(header(res, 'content-type')),
        size: Number(header(res, 'content-length')),
      };
    });
    const usable =
      isDigest(head.digest) &&
      (!isDigest(asked) || head.digest === asked) &&
      MANIFEST_MEDIA_TYPES.includes(head.mediaType) &&
      Number.isSafeInteger(head.size) && head.size > 0 && head.size <= MAX_MANIFEST_BYTES;
    if (usable) return head;
    // No digest (or an odd answer) on HEAD: fetch the body, which getManifest verifies and measures.
    this.log(`${what}: HEAD gave no usable digest/type/size; fetching the manifest instead`);
    const m = await this.getManifest(repository, reference, signal);
    return { digest: m.digest, mediaType: m.mediaType, size: m.body.length };
  }

  async readBlob(repository: string, digest: string, start: number, end: number, onData: OnData, signal?: AbortSignal): Promise<void> {
    parseDigest(digest, 'blob digest');
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
      throw usageError(`invalid blob range ${start}-${end}`);
    }
    const what = `${this.registry}/${repository}: blob ${digest} bytes ${start}-${end}`;
    const cursor = { pos: start };
    let attemptStart = start;
    // A trickle moves the cursor too, but must not renew the retry budget for ever.
    let tooSlow = false;
    await withRetries(what, { ...this.retry, signal, progressed: () => cursor.pos > attemptStart && !tooSlow }, async () => {
      attemptStart = cursor.pos;
      if (cursor.pos >= end) return;
      try {
        const whole = this.wholeBlobs.get(digest);
        if (whole) return await whole.read(cursor, end, onData, signal);
        const { res, url } = await this.openBlob(repository, digest, cursor.pos, end, what, signal);
        if (res.statusCode === 200 && (cursor.pos > 0 || Number(header(res, 'content-length')) > end)) {
          this.log(`${what}: ${url.host} ignored Range (HTTP 200); one stream of the whole blob feeds its ranges from now on`);
          const stream = this.wholeBlobStream(repository, digest, what);
          stream.adopt(res, url.host);
          return await stream.read(cursor, end, onData, signal);
        }
        await deliverRange(res, cursor, end, onData, { what, host: url.host, signal, log: this.log, paceWindowMs: this.http.timeoutMs });
      } catch (err) {
        tooSlow = err instanceof TooSlow;
        throw err;
      }
    });
  }

  private wholeBlobStream(repository: string, digest: string, what: string): WholeBlobStream {
    let stream = this.wholeBlobs.get(digest);
    if (!stream) {
      stream = new WholeBlobStream({
        open: async (signal) => {
          const { res, url } = await this.openBlob(repository, digest, 0, undefined, what, signal);
          return { res, host: url.host };
        },
        what: `${this.registry}/${repository}: blob ${digest}`,
        log: this.log,
        paceWindowMs: this.http.timeoutMs,
      });
      this.wholeBlobs.set(digest, stream);
    }
    return stream;
  }

  /** Close the connections; safe to call more than once. */
  close(): Promise<void> {
    for (const stream of this.wholeBlobs.values()) stream.close();
    this.closing ??= this.http.close();
    return this.closing;
  }

  /** A 200/206 answer for bytes [pos, end) (the whole blob without `end`): from the blob's cached redirect URL if it
   *  still works, else the registry. */
  private async openBlob(repository: string, digest: string, pos: number, end: number | undefined, what: string, signal?: AbortSignal): Promise<Answer> {
    const range: Record<string, string> = end === undefined ? {} : { range: `bytes=${pos}-${end - 1}` };
    const cached = this.blobUrls.get(digest);
    if (cached) {
      const authz = cached.origin === this.base.origin ? await this.auth.authorization(repository, signal) : undefined;
      let answer: Answer | undefined;
      try {
        answer = await this.follow(cached, 'GET', range, authz, signal);
      } catch (err) {
        if (!(err instanceof Transient)) throw err;
        this.log(`${what}: redirect target ${cached.host} failed (${err.message}); asking the registry again`);
      }
      if (answer && (answer.res.statusCode === 200 || answer.res.statusCode === 206)) return answer;
      if (answer) {
        // 403/410 is the usual "presigned URL expired"; any other failure also sends us back for a fresh URL.
        this.log(`${what}: redirect target ${cached.host} answered HTTP ${answer.res.statusCode}; asking the registry again`);
        await discard(answer.res);
      }
      if (this.blobUrls.get(digest) === cached) this.blobUrls.delete(digest);
    }
    const path = `/v2/${repository}/blobs/${digest}`;
    const answer = await this.registryRequest(repository, 'GET', path, range, signal);
    if (answer.res.statusCode !== 200 && answer.res.statusCode !== 206) {
      throw await this.answerError(answer, repository, what, signal);
    }
    if (answer.url.href !== new URL(path, this.base).href) this.blobUrls.set(digest, answer.url);
    return answer;
  }

  /** A request to the registry, answering one 401 challenge (anonymous first, then with what the challenge asks). */
  private async registryRequest(repository: string, method: 'GET' | 'HEAD', path: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Answer> {
    if (!this.schemeKnown) await this.settleScheme(signal);
    const url = new URL(path, this.base);
    let authz = await this.auth.authorization(repository, signal);
    let answer = await this.follow(url, method, headers, authz, signal);
    if (answer.res.statusCode !== 401 || answer.url.origin !== url.origin) return answer;
    await discard(answer.res);
    authz = await this.auth.challenged(repository, header(answer.res, 'www-authenticate'), authz, signal);
    answer = await this.follow(url, method, headers, authz, signal);
    if (answer.res.statusCode === 401 && answer.url.origin === url.origin) {
      await discard(answer.res);
      throw await this.auth.denied(repository, 401);
    }
    return answer;
  }

  /** A loopback registry is asked for /v2/ over HTTPS once; one that answers in plain HTTP is spoken to in plain
   *  HTTP from then on (docker's rule). A certificate it does not prove is an error, never a reason for HTTP. */
  private settleScheme(signal?: AbortSignal): Promise<void> {
    this.schemeProbe ??= (async () => {
      try {
        const res = await this.http.send(new URL('/v2/', this.base), { method: 'GET' });
        await discard(res);
      } catch (err) {
        if (!isPlainHttpAnswer(err)) throw err; // refused, reset: retried like any request; TLS errors are final
        this.base = new URL(`http://${this.base.host}`);
        this.log(`${this.registry}: no TLS on this loopback registry; using plain HTTP`);
      }
      this.schemeKnown = true;
    })().finally(() => (this.schemeProbe = undefined));
    return abortable(this.schemeProbe, signal);
  }

  /** Send, following up to 5 redirects by hand; Authorization is dropped for good once the host changes or the
   *  scheme drops from https to http (it would cross the network in clear text). */
  private async follow(url: URL, method: 'GET' | 'HEAD', headers: Record<string, string>, authz: string | undefined, signal?: AbortSignal): Promise<Answer> {
    for (let hops = 0; ; hops++) {
      const res = await this.http.send(url, { method, headers: authz ? { ...headers, authorization: authz } : headers, signal });
      if (!REDIRECTS.has(res.statusCode)) return { res, url };
      await discard(res);
      const location = header(res, 'location');
      if (hops >= MAX_REDIRECTS) throw failure(`${this.registry}: more than ${MAX_REDIRECTS} redirects from ${url.host}`);
      let next: URL;
      try {
        next = new URL(location ?? '', url);
        if (!location || (next.protocol !== 'http:' && next.protocol !== 'https:')) throw new Error();
      } catch {
        throw failure(`${this.registry}: ${url.host} answered HTTP ${res.statusCode} without a usable Location`);
      }
      // Credentials are for the registry, not for the storage or CDN it points to.
      if (next.host !== url.host || (url.protocol === 'https:' && next.protocol !== 'https:')) authz = undefined;
      // Never the query: presigned URLs carry their signature there.
      this.log(`${method} ${url.host}${url.pathname}: HTTP ${res.statusCode} → ${next.origin}${next.pathname}`);
      url = next;
    }
  }

  /** The error for a non-success answer: the registry's 401/403 become auth errors that say whether credentials
   *  were sent (a 403 from a storage host it redirected to is not about our credentials). */
  private async answerError({ res, url }: Answer, repository: string, what: string, signal?: AbortSignal): Promise<Error> {
    if ((res.statusCode === 401 || res.statusCode === 403) && url.origin === this.base.origin) {
      await discard(res);
      return this.auth.denied(repository, res.statusCode);
    }
    return statusError(res, { what, host: url.host, signal });
  }

  /** Docker-Content-Digest when it is a sha256 we can check against; undefined otherwise (logged). */
  private vouchedDigest(res: Response, what: string): string | undefined {
    const d = header(res, 'docker-content-digest')?.trim();
    if (d && isDigest(d)) return d;
    this.log(`${what}: no sha256 Docker-Content-Digest from the registry; the manifest digest is computed, not checked`);
    return undefined;
  }
}

/** A manifest reference is a tag or a sha256 digest; a malformed one is the user's mistake (exit 2). */
function manifestRef(reference: string): string {
  if (reference.includes(':')) return parseDigest(reference, 'manifest digest');
  if (!/^[\w][\w.-]{0,127}$/.test(reference)) throw usageError(`invalid tag ${quoted(reference, 140)}`);
  return reference;
}
