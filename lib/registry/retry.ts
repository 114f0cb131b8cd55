// Retries with exponential back-off and jitter, Retry-After, and abortable waits.
import { unreachableError } from '../errors.ts';

/** A failure worth trying again (408/429/5xx, reset connection, cut body, timeout). Anything else is final. */
export class Transient extends Error {
  readonly retryAfterMs: number | undefined;
  constructor(message: string, retryAfterMs?: number, cause?: unknown) {
    super(message, { cause });
    this.name = 'Transient';
    this.retryAfterMs = retryAfterMs;
  }
}

export interface RetryOptions {
  /** retries after the first attempt */
  retries: number;
  /** first back-off delay; doubles each attempt */
  backoffMs: number;
  signal?: AbortSignal | undefined;
  log?: ((msg: string) => void) | undefined;
  /** Called after a failed attempt; true resets the attempt count (a long download that keeps moving should not
   *  run out of retries just because its connection was cut a few times). */
  progressed?: () => boolean;
  /** Told of each failed attempt that will be retried, before the back-off (a pull by digest then asks peers too). */
  onRetry?: ((err: Transient) => void) | undefined;
}

const MAX_BACKOFF_MS = 30_000;
/** A server asking us to wait longer than this is treated as if it had asked for this long: a pull should not
 *  hang for an hour on one header, and the retry budget still bounds the total. */
export const MAX_RETRY_AFTER_MS = 60_000;

/** Run `attempt` until it succeeds, fails with something other than Transient, or the retries run out (then the
 *  registry counts as unreachable, exit 6). `what` names the operation for the final error and the log. */
export async function withRetries<T>(what: string, opts: RetryOptions, attempt: () => Promise<T>): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof Transient)) throw err;
      if (opts.progressed?.()) n = 0;
      if (n >= opts.retries) {
        throw unreachableError(`${what}: ${err.message} (gave up after ${n + 1} attempts)`, err);
      }
      const ms = err.retryAfterMs ?? backoffDelay(n, opts.backoffMs);
      opts.log?.(`${what}: ${err.message}; retry ${n + 1}/${opts.retries} in ${ms} ms`);
      opts.onRetry?.(err);
      await sleep(ms, opts.signal);
    }
  }
}

/** Exponential back-off with jitter in [d/2, d): hosts that failed together do not come back together. */
export function backoffDelay(attempt: number, baseMs: number): number {
  const d = Math.min(MAX_BACKOFF_MS, baseMs * 2 ** attempt);
  return Math.round(d / 2 + (Math.random() * d) / 2);
}

/** Retry-After as delay-seconds or an HTTP date; undefined when absent or unreadable. Capped. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  let ms: number;
  if (/^\d+$/.test(v)) ms = Number(v) * 1000;
  else {
    // HTTP dates spell out day and month names; Date.parse alone would take "-1" as a year.
    if (!/^[A-Za-z]{3}/.test(v)) return undefined;
    const t = Date.parse(v);
    if (Number.isNaN(t)) return undefined;
    ms = Math.max(0, t - now);
  }
  return Math.min(ms, MAX_RETRY_AFTER_MS);
}

/** setTimeout that an abort ends at once (rejecting with the signal's reason). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Wait for a promise shared with other callers, giving up (for this caller only) when its own signal aborts. */
export function abortable<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
