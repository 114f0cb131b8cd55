// Turns a registry's non-success answer into the error to throw, using its error body
// ({"errors":[{"code":"MANIFEST_UNKNOWN","message":...}]}) when there is one.
import { failure, integrityError, notFoundError } from '../errors.ts';
import { header, readBody, type Response } from './http.ts';
import { parseRetryAfter, Transient } from './retry.ts';

export interface ErrorContext {
  /** "registry/repository: manifest latest", the start of every message */
  what: string;
  host: string;
  signal?: AbortSignal | undefined;
}

const NOT_FOUND_CODES: Record<string, string> = {
  NAME_UNKNOWN: 'repository not found',
  MANIFEST_UNKNOWN: 'not found',
  BLOB_UNKNOWN: 'not found',
};

/** The error for an answer that is not 2xx. 401/403 are the caller's (they need to know about credentials). */
export async function statusError(res: Response, ctx: ErrorContext): Promise<Error> {
  const status = res.statusCode;
  const detail = await errorDetail(res, ctx);
  if (status === 408 || status === 429 || status >= 500) {
    return new Transient(`${ctx.host} answered HTTP ${status}${detail.text}`, parseRetryAfter(header(res, 'retry-after')));
  }
  if (status === 404 || (detail.code && detail.code in NOT_FOUND_CODES)) {
    return notFoundError(`${ctx.what}: ${NOT_FOUND_CODES[detail.code ?? ''] ?? 'not found'} (HTTP ${status}${detail.text})`);
  }
  // The registry says the blob is shorter than the range we asked for: it cannot be the blob the descriptor names.
  if (status === 416) return integrityError(`${ctx.what}: range not satisfiable, the blob is shorter than expected`);
  return failure(`${ctx.what}: unexpected answer HTTP ${status}${detail.text}`);
}

/** The first error code and message from the body, made safe for a one-line message. */
async function errorDetail(res: Response, ctx: ErrorContext): Promise<{ code?: string; text: string }> {
  let body: Buffer | null = null;
  try {
    body = await readBody(res, 64 * 1024, ctx.host, ctx.signal);
  } catch {
    // an error answer whose body fails is still an error answer
  }
  if (!body?.length) return { text: '' };
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { errors?: { code?: unknown; message?: unknown }[] };
    const first = Array.isArray(parsed.errors) ? parsed.errors[0] : undefined;
    if (first && typeof first.code === 'string') {
      const code = clean(first.code, 60);
      const message = typeof first.message === 'string' ? clean(first.message, 200) : '';
      return { code, text: `, ${code}${message ? ': ' + message : ''}` };
    }
  } catch {
    // not the registry's JSON; say nothing rather than echo an arbitrary page
  }
  return { text: '' };
}

function clean(s: string, max: number): string {
  return s.replace(/[\x00-\x1f\x7f]+/g, ' ').slice(0, max);
}
