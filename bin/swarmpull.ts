#!/usr/bin/env -S node --max-semi-space-size=1 --use-system-ca
// CLI entry: parse flags, run a job, map every failure to one line and a documented exit code.
// (No top-level await: the single binary runs this as CommonJS.)
import { buildProgram } from '../lib/cli.ts';
import { ExitCode, SwarmpullError } from '../lib/errors.ts';

const debug = process.argv.includes('--debug');

function report(err: unknown): number {
  if (err instanceof SwarmpullError) {
    if (err.exitCode !== ExitCode.ok) process.stderr.write(`swarmpull: ${err.message}\n`);
    if (debug && err.cause) process.stderr.write(`${(err.cause as Error).stack ?? String(err.cause)}\n`);
    return err.exitCode;
  }
  const e = err as NodeJS.ErrnoException;
  process.stderr.write(`swarmpull: ${e?.code === 'ENOSPC' ? 'no space left on device' : (e?.message ?? String(err))}\n`);
  if (debug) process.stderr.write(`${e?.stack ?? ''}\n`);
  return ExitCode.failure;
}

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    process.exitCode = report(err);
  });
