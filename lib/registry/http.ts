// The HTTP layer: one undici Agent per client, TLS trust per host (tls-trust.ts), and the translation of socket
// failures into "try again" (Transient) or "give up now" (SwarmpullError).
import type { SecureContext } from 'node:tls';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import { failure, unreachableError } from '../errors.ts';
import { PacedBody } from './body-pace.ts';
import { Transient } from './retry.ts';
import { certsDRoots, readCertsD, secureContextFor, type HostTrust } from './tls-trust.ts';

export type Response = Dispatcher.ResponseData;

export interface SendOptions {
  method: 'GET' | 'HEAD' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal | undefined;
}

export interface HttpOptions {
  insecure: boolean;
  timeoutMs: number;
  /** certs.d roots (tls-trust.ts certsDRoots) */
  certsD?: string[];
  /** host[:port] of the registry: its certs.d directory counts for every host it sends us to (token server,
   *  storage), as with docker, whose one transport per registry carries that registry's TLS settings */
  registryHost?: string;
  log?: (msg: string) => void;
}

// HTTP/1.1 only, also over TLS (undici would negotiate HTTP/2, which Go registries offer): the four parallel ranges
// of a blob then get a TCP connection each instead of sharing one HTTP/2 connection's flow-control window, and a
// cut connection looks the same whatever the registry speaks. Measured (npm run bench:tls-http2, 4 x 16 MiB ranges
// on loopback): 290-515 MiB/s, against 167-295 MiB/s with HTTP/2 allowed.
const ALLOW_HTTP2 = false;

export class Http {
  readonly timeoutMs: number;
  private readonly agent: Agent;
  private readonly opts: HttpOptions;
  /** per host:port, read on the first connection to it */
  private readonly trust = new Map<string, { trust: HostTrust; context: SecureContext; connect: buildConnector.connector }>();
  /** A TLS alert a server sent after our side of the handshake was done (TLS 1.3: "no client certificate"): undici
   *  then reports only "other side closed", so the alert is kept here to say what happened. */
  private readonly tlsAlerts = new Map<string, Error>();

  constructor(opts: HttpOptions) {
    this.opts = opts;
    this.timeoutMs = opts.timeoutMs;
    this.agent = new Agent({
      connect: (o, callback) => {
        let connect: buildConnector.connector;
        try {
          connect = this.connectorFor(o.hostname, o.port, o.protocol);
        } catch (err) {
          return callback(err as Error, null);
        }
        connect(o, (...args) => {
          const hostPort = o.port ? `${o.hostname}:${o.port}` : o.hostname;
          args[1]?.on('error', (e: Error & { code?: string }) => {
            if (e.code?.startsWith('ERR_SSL_')) this.tlsAlerts.set(hostPort, e);
          });
          callback(...args);
        });
      },
      allowH2: ALLOW_HTTP2,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
    });
  }

  /** The client certificate configured for host:port, if any (to say so when the server refuses it). */
  clientCertificate(hostPort: string): string | undefined {
    return this.trust.get(hostPort)?.trust.client?.path;
  }

  private connectorFor(hostname: string, port: string, protocol: string): buildConnector.connector {
    const base = { timeout: this.opts.timeoutMs, allowH2: ALLOW_HTTP2 };
    if (protocol !== 'https:') return buildConnector(base);
    const hostPort = port && port !== '443' ? `${hostname}:${port}` : hostname;
    let entry = this.trust.get(hostPort);
    if (!entry) {
      const roots = this.opts.certsD ?? certsDRoots();
      const own = readCertsD(hostPort, roots);
      const registry = this.opts.registryHost && this.opts.registryHost !== hostPort ? readCertsD(this.opts.registryHost, roots) : undefined;
      const trust = !registry ? own : {
        cas: [...own.cas, ...registry.cas],
        dirs: [...own.dirs, ...registry.dirs],
        ...(own.client ?? registry.client ? { client: own.client ?? registry.client! } : {}),
      };
      if (trust.dirs.length) this.opts.log?.(`tls: ${hostPort}: ${trust.cas.length} CA(s)${trust.client ? ', a client certificate' : ''} from ${trust.dirs.join(', ')}`);
      const context = secureContextFor(trust);
      entry = { trust, context, connect: buildConnector({ ...base, secureContext: context, rejectUnauthorized: !this.opts.insecure }) };
      this.trust.set(hostPort, entry);
    }
    return entry.connect;
  }

  /** One request, no redirects followed, any status returned. Network failures are classified (see networkError). */
  async send(url: URL, opts: SendOptions): Promise<Response> {
    try {
      return await this.agent.request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: opts.method,
        headers: opts.headers ?? {},
        body: opts.body ?? null,
        signal: opts.signal ?? null,
      });
    } catch (err) {
      const alert = this.tlsAlerts.get(url.host);
      this.tlsAlerts.delete(url.host);
      throw networkError(alert ?? err, url.host, opts.signal, this.clientCertificate(url.host));
    }
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

// Worth another attempt: the peer went away, a timeout, a name server hiccup. A refused connection is retried too,
// because a registry that restarts refuses for a moment.
const RETRYABLE_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ECONNABORTED: 'connection aborted',
  EPIPE: 'connection closed while sending',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EAI_AGAIN: 'host name lookup failed temporarily',
  UND_ERR_SOCKET: 'connection closed by the other side',
  UND_ERR_CONNECT_TIMEOUT: 'connect timed out',
  UND_ERR_HEADERS_TIMEOUT: 'no response headers in time',
  UND_ERR_BODY_TIMEOUT: 'response body stalled',
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: 'response shorter than its Content-Length',
  UND_ERR_CLOSED: 'connection closed',
};

// Certificate verification failures (OpenSSL's names, as Node reports them), with what they mean.
const CERT_CODES: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'signed by an unknown CA',
  UNABLE_TO_GET_ISSUER_CERT: 'signed by an unknown CA',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'signed by an unknown CA',
  SELF_SIGNED_CERT_IN_CHAIN: 'its chain ends in an unknown self-signed CA',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed',
  CERT_UNTRUSTED: 'not trusted',
  INVALID_CA: 'signed by an invalid CA',
  CERT_SIGNATURE_FAILURE: 'bad signature',
  CERT_HAS_EXPIRED: 'expired',
  CERT_NOT_YET_VALID: 'not yet valid',
  CERT_REVOKED: 'revoked',
  ERR_TLS_CERT_ALTNAME_INVALID: 'issued for another name',
  HOSTNAME_MISMATCH: 'issued for another name',
};

/** A TLS client answering a server that speaks plain HTTP sees a record it cannot parse. */
export function isPlainHttpAnswer(err: unknown): boolean {
  const code = (err as { cause?: { code?: unknown } } | null)?.cause?.code;
  return code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || code === 'ERR_SSL_HTTP_REQUEST';
}

/** Map an error thrown by undici (request or body) to what the caller should do with it. TLS failures are final and
 *  exit 1 with what to do: a retry cannot fix a certificate, and "unreachable" would send the operator to peers. */
export function networkError(err: unknown, host: string, signal?: AbortSignal, clientCert?: string): unknown {
  if (signal?.aborted) return signal.reason;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return err;
  if (code === 'ENOTFOUND') return unreachableError(`${host}: host name not found`, err);
  const cert = CERT_CODES[code];
  if (cert) {
    const todo = code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID' || cert === 'issued for another name'
      ? 'the registry must renew or fix its certificate, or use --insecure'
      : `put its CA in /etc/docker/certs.d/${host}/ca.crt (or the OS trust store) or use --insecure`;
    return failure(`registry ${host}: TLS certificate not trusted (${cert}, ${code}): ${todo}`, err);
  }
  if (/ALERT_BAD_CERTIFICATE|CERTIFICATE_REQUIRED|ALERT_UNKNOWN_CA|ALERT_CERTIFICATE_UNKNOWN/.test(code)) {
    const sent = clientCert ? `it refused the client certificate ${clientCert}` : 'it requires a client certificate';
    return failure(`registry ${host}: TLS handshake refused (${code}): ${sent}; put client.cert and client.key in /etc/docker/certs.d/${host}/`, err);
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || code === 'ERR_SSL_HTTP_REQUEST') {
    return failure(`registry ${host}: answered HTTPS with something else (${code}); use --plain-http if it serves plain HTTP`, err);
  }
  if (/^ERR_SSL_|^ERR_TLS_/.test(code)) return failure(`registry ${host}: TLS handshake failed (${code})`, err);
  const what = RETRYABLE_CODES[code];
  return what ? new Transient(`${host}: ${what}`, undefined, err) : err;
}

/** A response header as one string (repeated headers joined with ", ", as RFC 9110 allows). */
export function header(res: Response, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** Read a whole body of at most `limit` bytes; null when it is larger (the rest is not read). It must keep the
 *  pace of body-pace.ts over windows of `paceWindowMs`. */
export async function readBody(res: Response, limit: number, host: string, signal?: AbortSignal, paceWindowMs = 30_000): Promise<Buffer | null> {
  const declared = Number(header(res, 'content-length'));
  if (declared > limit) {
    res.body.destroy();
    return null;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  const body = new PacedBody(res, host, paceWindowMs);
  try {
    for (;;) {
      const next = await body.next();
      if (next.done) break;
      const chunk = next.value;
      size += chunk.length;
      if (size > limit) {
        res.body.destroy();
        return null;
      }
      chunks.push(chunk);
    }
  } catch (err) {
    throw networkError(err, host, signal);
  }
  return Buffer.concat(chunks);
}

/** Throw away a body we do not need, keeping the connection for reuse when it is small. */
export async function discard(res: Response): Promise<void> {
  try {
    await res.body.dump({ limit: 64 * 1024 });
  } catch {
    // nothing to do: the connection is closed instead of reused
  }
}
