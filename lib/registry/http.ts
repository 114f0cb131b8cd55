// The HTTP layer: one undici Agent per client, and the translation of socket failures into
// "try again" (Transient) or "give up now" (SwarmpullError).
import { Agent, type Dispatcher } from 'undici';
import { unreachableError } from '../errors.ts';
import { Transient } from './retry.ts';

export type Response = Dispatcher.ResponseData;

export interface SendOptions {
  method: 'GET' | 'HEAD' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal | undefined;
}

export class Http {
  readonly timeoutMs: number;
  private readonly agent: Agent;

  constructor(opts: { insecure: boolean; timeoutMs: number }) {
    this.timeoutMs = opts.timeoutMs;
    this.agent = new Agent({
      connect: { rejectUnauthorized: !opts.insecure, timeout: opts.timeoutMs },
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
    });
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
      throw networkError(err, url.host, opts.signal);
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

/** Map an error thrown by undici (request or body) to what the caller should do with it. */
export function networkError(err: unknown, host: string, signal?: AbortSignal): unknown {
  if (signal?.aborted) return signal.reason;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return err;
  if (code === 'ENOTFOUND') return unreachableError(`${host}: host name not found`, err);
  if (/CERT|TLS|SSL|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET/.test(code)) {
    return unreachableError(
      `${host}: TLS verification failed (${code}); use --insecure to skip it, or --plain-http for a plain HTTP registry`,
      err,
    );
  }
  const what = RETRYABLE_CODES[code];
  return what ? new Transient(`${host}: ${what}`, undefined, err) : err;
}

/** A response header as one string (repeated headers joined with ", ", as RFC 9110 allows). */
export function header(res: Response, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** Read a whole body of at most `limit` bytes; null when it is larger (the rest is not read). */
export async function readBody(res: Response, limit: number, host: string, signal?: AbortSignal): Promise<Buffer | null> {
  const declared = Number(header(res, 'content-length'));
  if (declared > limit) {
    res.body.destroy();
    return null;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > limit) {
        res.body.destroy();
        return null;
      }
      chunks.push(chunk as Buffer);
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
