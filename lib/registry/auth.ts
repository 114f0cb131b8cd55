// Registry authentication: answers 401 challenges (Bearer token flow or Basic), caches tokens per scope,
// and remembers the registry's scheme so later requests carry credentials from the start.
import { authError, failure, type SwarmpullError } from '../errors.ts';
import { parseWwwAuthenticate } from './challenge.ts';
import { IDENTITY_TOKEN_USER, lookupCredentials, type Credentials } from './credentials.ts';
import { discard, header, readBody, type Http, type Response } from './http.ts';
import { abortable, parseRetryAfter, Transient, withRetries, type RetryOptions } from './retry.ts';

export interface AuthOptions {
  registry: string;
  http: Http;
  /** explicit --creds; when absent, stored credentials are looked up on first need */
  creds?: Credentials | undefined;
  log: (msg: string) => void;
  retry: Omit<RetryOptions, 'signal' | 'progressed'>;
  /** whether credentials may go to a token server over plain HTTP (the operator chose plain HTTP for the registry) */
  plainHttpAllowed?: () => boolean;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

const DEFAULT_TOKEN_SECONDS = 60;

export class Authenticator {
  private readonly opts: AuthOptions;
  private scheme: 'basic' | 'bearer' | undefined;
  private realm: URL | undefined;
  private service: string | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  /** one token request per scope at a time, however many requests need it */
  private readonly pending = new Map<string, Promise<CachedToken>>();
  private creds: Promise<Credentials | undefined> | undefined;

  constructor(opts: AuthOptions) {
    this.opts = opts;
    if (opts.creds) this.creds = Promise.resolve(opts.creds);
  }

  /** Authorization to send up front, once the registry's scheme is known; undefined before (anonymous first). */
  async authorization(repository: string, signal?: AbortSignal): Promise<string | undefined> {
    if (this.scheme === 'basic') {
      const creds = await this.credentials();
      return creds && creds.username !== IDENTITY_TOKEN_USER ? basic(creds) : undefined;
    }
    if (this.scheme === 'bearer') return `Bearer ${(await this.token(repository, signal)).token}`;
    return undefined;
  }

  /**
   * The registry answered 401 to a request that carried `sent` (or nothing). Learn the challenge and return the
   * Authorization to try once more with; throw an auth error when there is nothing new to try.
   */
  async challenged(repository: string, wwwAuthenticate: string | undefined, sent: string | undefined, signal?: AbortSignal): Promise<string> {
    const { registry, log } = this.opts;
    if (!wwwAuthenticate) throw authError(`${registry}: HTTP 401 without a WWW-Authenticate challenge for ${repository}`);
    const challenges = parseWwwAuthenticate(wwwAuthenticate);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer) {
      let realm: URL;
      try {
        realm = new URL(bearer.params.realm ?? '');
      } catch {
        throw authError(`${registry}: Bearer challenge without a usable realm URL`);
      }
      if (realm.protocol !== 'https:' && realm.protocol !== 'http:') throw authError(`${registry}: Bearer realm is not an http(s) URL`);
      if (this.scheme !== 'bearer') log(`auth: ${registry} uses Bearer tokens from ${realm.origin}${realm.pathname}`);
      this.scheme = 'bearer';
      this.realm = realm;
      this.service = bearer.params.service;
      // The token we sent was refused (expired early, revoked): forget it, unless another request already did.
      const scope = scopeOf(repository);
      if (sent && sent === `Bearer ${this.tokens.get(scope)?.token}`) this.tokens.delete(scope);
      const next = `Bearer ${(await this.token(repository, signal)).token}`;
      if (next === sent) throw await this.denied(repository, 401);
      return next;
    }
    if (challenges.some((c) => c.scheme === 'basic')) {
      if (this.scheme !== 'basic') log(`auth: ${registry} uses Basic authentication`);
      this.scheme = 'basic';
      const creds = await this.credentials();
      if (creds?.username === IDENTITY_TOKEN_USER) {
        throw authError(`${registry}: the stored credential is an identity token, which a Basic-auth registry cannot take`);
      }
      const next = creds && basic(creds);
      if (!next || next === sent) throw await this.denied(repository, 401);
      return next;
    }
    const schemes = challenges.map((c) => c.scheme).join(', ');
    throw authError(`${registry}: unsupported authentication scheme (${schemes.slice(0, 100)})`);
  }

  /** The error for a refusal, saying whether credentials were sent (and as whom), never what they were. */
  async denied(repository: string, status: number): Promise<SwarmpullError> {
    const creds = await this.credentials();
    const who = !creds ? 'no credentials were sent; use --creds or docker login'
      : creds.username === IDENTITY_TOKEN_USER ? 'an identity token was sent'
      : `credentials for user ${JSON.stringify(creds.username)} were sent`;
    const what = status === 403 ? 'access denied' : 'authentication failed';
    return authError(`${this.opts.registry}: ${what} for ${repository} (HTTP ${status}; ${who})`);
  }

  private credentials(): Promise<Credentials | undefined> {
    this.creds ??= lookupCredentials(this.opts.registry, { log: this.opts.log });
    return this.creds;
  }

  private async token(repository: string, signal?: AbortSignal): Promise<CachedToken> {
    const scope = scopeOf(repository);
    const cached = this.tokens.get(scope);
    if (cached && cached.expiresAt > Date.now()) return cached;
    let pending = this.pending.get(scope);
    if (!pending) {
      // Shared by every request waiting for this scope, so no single caller's signal may cancel it: each caller
      // stops waiting on its own abort instead (timeouts and the retry budget bound the fetch itself).
      pending = this.fetchToken(scope).finally(() => this.pending.delete(scope));
      pending.catch(() => {}); // every waiter may have gone (aborted): a failure then must not be "unhandled"
      this.pending.set(scope, pending);
    }
    const fresh = await abortable(pending, signal);
    this.tokens.set(scope, fresh);
    return fresh;
  }

  private async fetchToken(scope: string): Promise<CachedToken> {
    const realm = this.realm!;
    const creds = await this.credentials();
    const where = `token server ${realm.host}`;
    if (creds && realm.protocol === 'http:' && !this.opts.plainHttpAllowed?.()) {
      throw failure(
        `${this.opts.registry}: its token server ${realm.origin} is plain HTTP; credentials are not sent there in clear text ` +
          '(--plain-http allows it)',
      );
    }
    this.opts.log(`auth: requesting a token for ${scope} from ${realm.origin}${realm.pathname}${creds ? ' with credentials' : ' anonymously'}`);
    return withRetries(`${this.opts.registry}: ${where}`, this.opts.retry, async () => {
      const res = await this.tokenRequest(realm, scope, creds);
      if (res.statusCode === 408 || res.statusCode === 429 || res.statusCode >= 500) {
        await discard(res);
        throw new Transient(`${where} answered HTTP ${res.statusCode}`, parseRetryAfter(header(res, 'retry-after')));
      }
      if (res.statusCode !== 200) {
        await discard(res);
        const who = creds ? 'refused the credentials' : 'refused anonymous access';
        throw authError(`${this.opts.registry}: ${where} ${who} (HTTP ${res.statusCode})`);
      }
      const body = await readBody(res, 1 << 20, realm.host);
      let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown } = {};
      try {
        parsed = JSON.parse(body?.toString('utf8') ?? '') as typeof parsed;
      } catch {
        // handled below as "no token"
      }
      const token = typeof parsed.token === 'string' && parsed.token ? parsed.token : parsed.access_token;
      // The token goes into a header: refuse anything that could break or smuggle one.
      if (typeof token !== 'string' || !/^[\x21-\x7e]+$/.test(token)) throw authError(`${this.opts.registry}: ${where} gave no usable token`);
      const seconds = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : DEFAULT_TOKEN_SECONDS;
      // Renew a little before the server's deadline, so a token does not expire between check and use.
      const margin = Math.min(10, seconds / 4);
      return { token, expiresAt: Date.now() + (seconds - margin) * 1000 };
    });
  }

  /** GET with Basic credentials (docker's default), or the OAuth2 refresh-token grant for an identity token. */
  private tokenRequest(realm: URL, scope: string, creds: Credentials | undefined): Promise<Response> {
    if (creds?.username === IDENTITY_TOKEN_USER) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.password, client_id: 'swarmpull', scope });
      if (this.service) form.set('service', this.service);
      return this.opts.http.send(realm, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
      });
    }
    const url = new URL(realm);
    if (this.service) url.searchParams.set('service', this.service);
    url.searchParams.set('scope', scope);
    return this.opts.http.send(url, { method: 'GET', headers: creds ? { authorization: basic(creds) } : {} });
  }
}

/** swarmpull only ever reads. */
function scopeOf(repository: string): string {
  return `repository:${repository}:pull`;
}

function basic(creds: Credentials): string {
  return 'Basic ' + Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
}
