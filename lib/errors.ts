// Every failure the CLI reports maps to one documented exit code (README "Exit codes").
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  auth: 4,
  integrity: 5,
  unreachable: 6,
  sigint: 130,
  sigterm: 143,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** An error meant for the user: one clear line, and the exit code it maps to. */
export class SwarmpullError extends Error {
  readonly exitCode: ExitCode;
  constructor(exitCode: ExitCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SwarmpullError';
    this.exitCode = exitCode;
  }
}

export const usageError = (msg: string) => new SwarmpullError(ExitCode.usage, msg);
export const notFoundError = (msg: string) => new SwarmpullError(ExitCode.notFound, msg);
export const authError = (msg: string) => new SwarmpullError(ExitCode.auth, msg);
export const integrityError = (msg: string) => new SwarmpullError(ExitCode.integrity, msg);
export const unreachableError = (msg: string, cause?: unknown) =>
  new SwarmpullError(ExitCode.unreachable, msg, { cause });
export const failure = (msg: string, cause?: unknown) => new SwarmpullError(ExitCode.failure, msg, { cause });

/** A write that failed for want of space, as one line naming the file that filled its disk up (Node's message
 *  for a write on an open file names none). Any other error passes through unchanged. */
export function writeFailure(err: unknown, path: string): unknown {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOSPC') return failure(`no space left on device: cannot write ${path}`, err);
  if (code === 'EDQUOT') return failure(`disk quota exceeded: cannot write ${path}`, err);
  return err;
}

/** A value from the input (a registry's, a peer's or the user's) for an error message: JSON-quoted and cut short,
 *  after escaping (a control character escapes to six), so the message stays one readable line. */
export function quoted(value: unknown, max = 80): string {
  const s = JSON.stringify(value) ?? String(value);
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
