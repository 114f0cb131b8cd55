// `node test/support/system-deps.ts demo|test`, run by `npm run demo` and `npm test` before anything else: the tests
// drive real programs that are Debian packages, and a fresh machine has none of them. As root with apt-get, install
// what is missing (one line saying what and why); otherwise stop with one line naming the packages and the command.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export type Scope = 'demo' | 'test';

interface Need {
  /** looked up on PATH, as the tests spawn it; or, starting with `/`, a file that must exist (a library) */
  command: string;
  /** the Debian/Ubuntu package that has it */
  pkg: string;
  /** what it is for, in the one line that says why it is being installed */
  why: string;
  scopes: Scope[];
  /** only root uses it (network namespaces, dockerd); without root the tests that need it are skipped */
  rootOnly?: boolean;
}

export const NEEDS: readonly Need[] = [
  { command: 'docker-registry', pkg: 'docker-registry', why: 'the real registry', scopes: ['demo', 'test'] },
  { command: 'skopeo', pkg: 'skopeo', why: 'pushing images to it', scopes: ['demo', 'test'] },
  { command: 'ip', pkg: 'iproute2', why: 'network namespaces', scopes: ['demo', 'test'], rootOnly: true },
  { command: 'tc', pkg: 'iproute2', why: 'network namespaces', scopes: ['demo', 'test'], rootOnly: true },
  { command: 'umoci', pkg: 'umoci', why: 'checking OCI layouts', scopes: ['test'] },
  { command: 'dockerd', pkg: 'docker.io', why: 'docker load', scopes: ['test'], rootOnly: true },
  { command: 'docker', pkg: 'docker.io', why: 'docker load', scopes: ['test'], rootOnly: true },
  { command: 'htpasswd', pkg: 'apache2-utils', why: 'registry passwords', scopes: ['test'] },
  { command: 'openssl', pkg: 'openssl', why: 'the token server certificate', scopes: ['test'] },
  { command: 'zsh', pkg: 'zsh', why: 'completion tests', scopes: ['test'] },
  { command: 'fish', pkg: 'fish', why: 'completion tests', scopes: ['test'] },
  { command: 'tmux', pkg: 'tmux', why: 'a terminal for the progress test', scopes: ['test'] },
  // The arm64 binary: its code cache is made, and the binary tested, by arm64 Node under user-mode emulation; the
  // cross packages hold its loader and C/C++ libraries (bin/build/emulator.ts).
  { command: 'qemu-aarch64-static', pkg: 'qemu-user-static', why: 'running the arm64 binary', scopes: ['test'] },
  { command: '/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1', pkg: 'libc6-arm64-cross', why: "the arm64 binary's C library", scopes: ['test'] },
  { command: '/usr/aarch64-linux-gnu/lib/libstdc++.so.6', pkg: 'libstdc++6-arm64-cross', why: "the arm64 binary's C++ library", scopes: ['test'] },
];

// apt on a slow mirror: update plus a few hundred MiB of packages (docker.io is the big one).
const APT_TIMEOUT_MS = 20 * 60_000;
const APT_LOCK_WAIT_S = 300;

function onPath(command: string, path: string): boolean {
  if (command.startsWith('/')) return exists(command);
  return path.split(delimiter).some((dir) => {
    if (!dir) return false;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function exists(file: string): boolean {
  try {
    accessSync(file, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** The needs of `scope` whose command is not on `path`. */
export function missing(scope: Scope, opts: { root: boolean; path: string }): Need[] {
  return NEEDS.filter((n) => n.scopes.includes(scope) && (opts.root || !n.rootOnly) && !onPath(n.command, opts.path));
}

const unique = (xs: string[]) => [...new Set(xs)];

function apt(args: string[]): { ok: boolean; why: string } {
  const r = spawnSync('apt-get', args, {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    timeout: APT_TIMEOUT_MS,
    maxBuffer: 64 << 20,
  });
  if (r.status === 0) return { ok: true, why: '' };
  const first = `${r.stderr ?? ''}\n${r.stdout ?? ''}`.split('\n').map((l) => l.trim()).filter(Boolean).at(0);
  return { ok: false, why: r.error ? r.error.message : `exit ${r.status ?? r.signal}${first ? `: ${first}` : ''}` };
}

function main(scope: Scope): number {
  const path = process.env.PATH ?? '';
  const root = process.getuid?.() === 0;
  const needs = missing(scope, { root, path });
  if (needs.length === 0) return 0;
  const pkgs = unique(needs.map((n) => n.pkg));
  const install = `apt-get update && apt-get install -y --no-install-recommends ${pkgs.join(' ')}`;
  const what = `npm ${scope === 'demo' ? 'run demo' : 'test'}`;
  const hasApt = onPath('apt-get', path);
  if (!root || !hasApt) {
    const how = hasApt ? `run as root: ${install}` : `install them with the system's package manager (Debian/Ubuntu: ${install})`;
    process.stderr.write(`swarmpull: ${what} needs the packages ${pkgs.join(' ')} (missing: ${needs.map((n) => n.command).join(', ')}); ${how}\n`);
    return 1;
  }
  const whyOf = (pkg: string) => needs.find((n) => n.pkg === pkg)!.why;
  process.stderr.write(`swarmpull: installing ${pkgs.map((p) => `${p} (${whyOf(p)})`).join(', ')} with apt-get, needed by ${what}\n`);
  // A fresh Ubuntu runs unattended-upgrades at boot: wait for its lock rather than fail.
  const lock = ['-o', `DPkg::Lock::Timeout=${APT_LOCK_WAIT_S}`];
  const steps = [['update', '-qq', ...lock], ['install', '-y', '-qq', '--no-install-recommends', ...lock, ...pkgs]];
  for (const step of steps) {
    const r = apt(step);
    if (!r.ok) {
      process.stderr.write(`swarmpull: apt-get ${step[0]} failed (${r.why}); run it yourself: ${install}\n`);
      return 1;
    }
  }
  const still = missing(scope, { root, path });
  if (still.length) {
    process.stderr.write(`swarmpull: after apt-get install, still not on PATH: ${still.map((n) => n.command).join(', ')}\n`);
    return 1;
  }
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const scope = process.argv[2];
  if (scope !== 'demo' && scope !== 'test') {
    process.stderr.write('usage: node test/support/system-deps.ts demo|test\n');
    process.exitCode = 2;
  } else {
    try {
      process.exitCode = main(scope);
    } catch (e) {
      process.stderr.write(`swarmpull: checking system packages failed: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    }
  }
}
