// A small Docker token server (the "Bearer realm" of a registry with `auth.token`): checks Basic credentials
// (or an OAuth2 refresh token) and issues RS256 JWTs whose x5c header carries a self-signed certificate, which
// the registry trusts through `auth.token.rootcertbundle`. The key pair is made with openssl at start.
import { execFile } from 'node:child_process';
import { createPrivateKey, randomUUID, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type RequestListener } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TokenServerOptions {
  /** username → password */
  users: Record<string, string>;
  /** identity (refresh) token → username, for the refresh_token grant */
  identityTokens?: Record<string, string>;
  service?: string;
  issuer?: string;
  /** seconds, sent as expires_in and used for the JWT's exp; default 300 */
  expiresIn?: number;
  /** send the token as `token` (default) or as `access_token` (OAuth2 style) */
  tokenField?: 'token' | 'access_token';
  /** serve HTTPS with this certificate and key (PEM files): the realm is then https:// */
  tls?: { cert: string; key: string };
}

export interface TokenRequest {
  method: string;
  /** the user the request authenticated as, '' for anonymous, null when refused */
  user: string | null;
  scopes: string[];
}

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  /** PEM of the signing certificate, for the registry's rootcertbundle */
  certPem: string;
  /** every request received */
  requests: TokenRequest[];
  /** tokens issued, to check that none ever reaches a log */
  issued: string[];
  /** lifetime of the next tokens, seconds (may be changed between requests) */
  expiresIn: number;
  /** field the next tokens are sent in (may be changed between requests) */
  tokenField: 'token' | 'access_token';
  stop(): Promise<void>;
}

export async function startTokenServer(opts: TokenServerOptions): Promise<TokenServer> {
  const service = opts.service ?? 'swarmpull-test-registry';
  const issuer = opts.issuer ?? 'swarmpull-test-token-server';
  const dir = await mkdtemp(join(tmpdir(), 'swarmpull-token-'));
  await run('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=token', '-days', '1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
  ]);
  const certPem = await readFile(join(dir, 'cert.pem'), 'utf8');
  const key = createPrivateKey(await readFile(join(dir, 'key.pem')));
  await rm(dir, { recursive: true, force: true });
  const x5c = new X509Certificate(certPem).raw.toString('base64');

  const requests: TokenRequest[] = [];
  const issued: string[] = [];
  let self: TokenServer | undefined;

  const handler: RequestListener = async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://token');
    const form = req.method === 'POST' ? new URLSearchParams(await readAll(req)) : url.searchParams;
    const scopes = form.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
    const user = authenticate(req, form, opts);
    requests.push({ method: req.method ?? 'GET', user, scopes });
    if (user === null) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ details: 'invalid credentials' }));
      return;
    }
    // Anonymous callers get a token with no access, as Docker Hub does for private repositories.
    const access = user
      ? scopes.map(parseScope).filter((s) => s !== undefined).map((s) => ({ ...s, actions: s.actions.filter((a) => a === 'pull' || a === 'push') }))
      : [];
    const { expiresIn, tokenField } = self!;
    const now = Math.floor(Date.now() / 1000);
    const token = jwt(key, x5c, {
      iss: issuer, sub: user, aud: service, exp: now + expiresIn, nbf: now - 10, iat: now, jti: randomUUID(), access,
    });
    issued.push(token);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ [tokenField]: token, expires_in: expiresIn, issued_at: new Date().toISOString() }));
  };
  const server = opts.tls
    ? createHttpsServer({ cert: await readFile(opts.tls.cert), key: await readFile(opts.tls.key) }, handler)
    : createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  self = {
    realm: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}/token`,
    service,
    issuer,
    certPem,
    requests,
    issued,
    expiresIn: opts.expiresIn ?? 300,
    tokenField: opts.tokenField ?? 'token',
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return self;
}

/** The user name, '' for anonymous, null for wrong credentials. */
function authenticate(req: IncomingMessage, form: URLSearchParams, opts: TokenServerOptions): string | null {
  if (form.get('grant_type') === 'refresh_token') return opts.identityTokens?.[form.get('refresh_token') ?? ''] ?? null;
  const auth = req.headers.authorization;
  if (!auth) return '';
  const m = /^Basic (.+)$/i.exec(auth);
  if (!m) return null;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const user = decoded.slice(0, colon);
  return colon > 0 && opts.users[user] === decoded.slice(colon + 1) ? user : null;
}

function parseScope(scope: string): { type: string; name: string; actions: string[] } | undefined {
  const m = /^(repository):(.+):([a-z,*]+)$/.exec(scope);
  return m ? { type: m[1]!, name: m[2]!, actions: m[3]!.split(',') } : undefined;
}

function jwt(key: KeyObject, x5c: string, claims: object): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const data = `${b64({ alg: 'RS256', typ: 'JWT', x5c: [x5c] })}.${b64(claims)}`;
  return `${data}.${sign('sha256', Buffer.from(data), key).toString('base64url')}`;
}

async function readAll(req: IncomingMessage): Promise<string> {
  let s = '';
  for await (const c of req) s += c;
  return s;
}
