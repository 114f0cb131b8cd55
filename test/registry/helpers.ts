// Shared bits for the registry client tests (not a test file itself).
import { chmod, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { SwarmpullError, type ExitCode } from '../../lib/errors.ts';

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `swarmpull-${prefix}-`));
}

/**
 * Put `docker-credential-<name>` into `dir`: it logs the server URL it was asked for to dir/asked.log and prints
 * dir/creds-<url with non-alphanumerics as _> if that file exists, else fails like docker's helpers do.
 * `sleep: true` makes it hang instead (for timeouts).
 */
export async function installCredHelper(dir: string, name = 'swarmtest', opts: { sleep?: boolean } = {}): Promise<CredHelper> {
  await mkdir(dir, { recursive: true });
  const script = `#!/bin/sh
[ "$1" = get ] || exit 2
${opts.sleep ? 'exec sleep 30' : ''}
url=$(cat)
printf '%s\\n' "$url" >> "${dir}/asked.log"
f="${dir}/creds-$(printf %s "$url" | tr -c 'A-Za-z0-9' '_')"
if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain" >&2; exit 1; fi
`;
  const path = join(dir, `docker-credential-${name}`);
  await writeFile(path, script);
  await chmod(path, 0o755);
  return {
    dir,
    async set(serverUrl: string, username: string, secret: string) {
      await writeFile(join(dir, `creds-${serverUrl.replace(/[^A-Za-z0-9]/g, '_')}`), JSON.stringify({ ServerURL: serverUrl, Username: username, Secret: secret }));
    },
    async asked(): Promise<string[]> {
      try {
        return (await readFile(join(dir, 'asked.log'), 'utf8')).trim().split('\n').filter(Boolean);
      } catch {
        return [];
      }
    },
  };
}

export interface CredHelper {
  dir: string;
  set(serverUrl: string, username: string, secret: string): Promise<void>;
  asked(): Promise<string[]>;
}

/** Assert a promise rejects with a SwarmpullError of this exit code whose message matches. */
export async function rejectsWith(p: Promise<unknown>, exitCode: ExitCode, message?: RegExp): Promise<SwarmpullError> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof SwarmpullError, `expected a SwarmpullError, got ${String(caught)}`);
  assert.equal(caught.exitCode, exitCode, `exit code for: ${caught.message}`);
  if (message) assert.match(caught.message, message);
  assert.ok(!caught.message.includes('\n'), 'one-line message');
  return caught;
}

/** Set environment variables for the duration of a test; returns the function that restores them. */
export function setEnv(vars: Record<string, string | undefined>): () => void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const apply = (v: Record<string, string | undefined>) => {
    for (const [k, val] of Object.entries(v)) {
      if (val === undefined) delete process.env[k];
      else process.env[k] = val;
    }
  };
  apply(vars);
  return () => apply(saved);
}

/** Collects a client's --debug log lines. */
export function logCollector(): { log: (msg: string) => void; lines: string[] } {
  const lines: string[] = [];
  return { lines, log: (msg: string) => lines.push(msg) };
}

export function assertNoSecrets(lines: string[], secrets: string[]): void {
  for (const secret of secrets) {
    for (const line of lines) assert.ok(!line.includes(secret), `a log line holds a secret: ${line.slice(0, 120)}`);
    const b64 = Buffer.from(secret).toString('base64');
    for (const line of lines) assert.ok(!line.includes(b64), 'a log line holds a base64 secret');
  }
}
