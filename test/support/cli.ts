// Runs the swarmpull CLI as a user would: the built binary when SWARMPULL_BIN is set, else bin/swarmpull.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENTRY, nodeFlags } from '../../bin/node-flags.ts';

const FROM_SOURCE = [...nodeFlags(), fileURLToPath(ENTRY)];

export function cliCommand(args: string[]): [string, string[]] {
  const bin = process.env.SWARMPULL_BIN;
  // absolute: tests run it from other directories and inside network namespaces
  return bin ? [resolve(bin), args] : [process.execPath, [...FROM_SOURCE, ...args]];
}

export function startCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): ChildProcess {
  const [cmd, argv] = cliCommand(args);
  return spawn(cmd, argv, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], ...(opts.cwd ? { cwd: opts.cwd } : {}) });
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** stdout as bytes (a tar written with -o -) */
  stdoutBytes: Buffer;
  stderr: string;
}

/** Run to completion (killed after timeoutMs); collects stdout and stderr. */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const proc = startCli(args, opts);
  return collect(proc, opts.timeoutMs ?? 120_000);
}

export function collect(proc: ChildProcess, timeoutMs: number): Promise<CliResult> {
  const out: Buffer[] = [];
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => out.push(d));
  proc.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    proc.once('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      resolve({ code, signal, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr });
    }),
  );
}

/** The port a starting `swarmpull serve` says it serves on ("serving N blobs … on port P"); rejects if it exits first. */
export function servingPort(proc: ChildProcess, timeoutMs = 20_000): Promise<number> {
  let stderr = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${stderr}`)), timeoutMs);
    const onData = (d: Buffer | string) => {
      stderr += d;
      const m = /serving \d+ blobs .* on port (\d+)/.exec(stderr);
      if (!m) return;
      clearTimeout(timer);
      proc.stderr!.off('data', onData);
      resolve(Number(m[1]));
    };
    proc.stderr!.on('data', onData);
    proc.once('exit', () => reject(new Error(`serve exited:\n${stderr}`)));
  });
}
