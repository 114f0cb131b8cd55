// Whether the registry is worth asking right now, for one pull. Once it is unreachable (its client gave up
// retrying, or it said nothing while peers answered), asking it for every blob would hold each request's pieces
// through the client's whole back-off while peers could send them. So then only one request at a time, every
// PROBE_EVERY_MS, goes to the registry to see whether it came back; the others go to peers or wait.
import { ExitCode, SwarmpullError } from './errors.ts';
import type { Transient } from './registry/retry.ts';

const PROBE_EVERY_MS = 10_000;

export function isUnreachable(err: unknown): boolean {
  return err instanceof SwarmpullError && err.exitCode === ExitCode.unreachable;
}

export class RegistryHealth {
  /** why the registry counts as down (the last failure); undefined while it is up */
  private downBecause: unknown;
  private lastProbe = 0;
  private probing = false;
  /** a connection to the registry failed (refused, reset, timed out) since its last success */
  private connectionFailed = false;
  private readonly connectionListeners = new Set<() => void>();

  get isDown(): boolean {
    return this.downBecause !== undefined;
  }

  get reason(): unknown {
    return this.downBecause;
  }

  /** A connection to the registry failed and is retried: nobody may be there at all. */
  get connectionFailing(): boolean {
    return this.connectionFailed;
  }

  /** Told by the registry client of each request it is about to retry (RegistryClientOptions.onRetry). */
  retrying(err: Transient): void {
    // A refused, reset or timed-out connection carries the socket's error code; an HTTP 503 does not.
    if (typeof (err.cause as { code?: unknown } | undefined)?.code !== 'string') return;
    this.connectionFailed = true;
    for (const cb of this.connectionListeners) cb();
  }

  /** Call `cb` on every connection failure; returns the unsubscribe function. */
  onConnectionFailure(cb: () => void): () => void {
    this.connectionListeners.add(cb);
    return () => this.connectionListeners.delete(cb);
  }

  markDown(why: unknown): void {
    if (this.downBecause === undefined) this.lastProbe = Date.now();
    this.downBecause = why;
  }

  /** Worth a request now: the registry is up, or it is down and a probe is due. */
  usable(): boolean {
    return !this.isDown || (!this.probing && Date.now() - this.lastProbe >= PROBE_EVERY_MS);
  }

  /** Run a registry request: at once while the registry is up; while it is down, only as the next probe. */
  async run<T>(request: () => Promise<T>): Promise<T> {
    const probe = this.isDown;
    if (probe) {
      if (!this.usable()) throw this.downBecause;
      this.probing = true;
      this.lastProbe = Date.now();
    }
    try {
      const result = await request();
      this.downBecause = undefined;
      this.connectionFailed = false;
      return result;
    } catch (err) {
      if (isUnreachable(err)) this.markDown(err);
      throw err;
    } finally {
      if (probe) this.probing = false;
    }
  }
}
