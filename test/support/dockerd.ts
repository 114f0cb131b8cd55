// Starts a private Docker daemon (Debian docker.io, 20.10) for tests that `docker load`: vfs storage, no
// networking, everything under one short temp dir (unix socket paths are limited to 107 bytes). As root only.
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { stopProcess } from './registry.ts';

const run = promisify(execFile);

export interface Dockerd {
  /** unix://SOCK, for DOCKER_HOST or `docker -H` */
  host: string;
  /** process.env with DOCKER_HOST pointing at this daemon */
  env: NodeJS.ProcessEnv;
  dir: string;
  stop(): Promise<void>;
}

/** For `test(name, { skip: dockerdSkip }, ...)`: a reason when this process cannot start dockerd. */
export const dockerdSkip: string | false = process.getuid?.() === 0 ? false : 'dockerd needs root';

export async function startDockerd(opts: { timeoutMs?: number } = {}): Promise<Dockerd> {
  const dir = await mkdtemp('/tmp/spd-');
  const sock = join(dir, 's.sock');
  const host = `unix://${sock}`;
  const env = { ...process.env, DOCKER_HOST: host };
  const log = await open(join(dir, 'log'), 'w');
  const proc = spawn(
    'dockerd',
    [
      '--storage-driver=vfs',
      '--iptables=false',
      '--ip6tables=false',
      '--bridge=none',
      '--data-root', join(dir, 'd'),
      '--exec-root', join(dir, 'e'),
      '--pidfile', join(dir, 'p'),
      '-H', host,
    ],
    { stdio: ['ignore', log.fd, log.fd] },
  );
  await log.close();
  const stop = async () => {
    await stopProcess(proc, 15_000);
    // dockerd stops the containerd it started; make sure, whatever happened to dockerd.
    await killProcessesUnder(dir);
    await unmountUnder(dir);
    await rm(dir, { recursive: true, force: true });
  };
  const failed = (why: string) => async () => {
    const text = await readFile(join(dir, 'log'), 'utf8').catch(() => '');
    await stop();
    return new Error(`dockerd ${why}:\n${text.split('\n').slice(-30).join('\n')}`);
  };
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw await failed(`exited (${proc.exitCode ?? proc.signalCode})`)();
    const ok = await run('docker', ['-H', host, 'version', '--format', '{{.Server.Version}}'], { env, timeout: 5_000 }).then(
      () => true,
      () => false,
    );
    if (ok) return { host, env, dir, stop };
    if (Date.now() > deadline) throw await failed('did not answer within the timeout')();
    await sleep(200);
  }
}

/** SIGTERM, then SIGKILL, every process whose command line names `dir` (containerd, shims): only ours do. */
async function killProcessesUnder(dir: string): Promise<void> {
  for (let round = 0; round < 50; round++) {
    const pids = await processesNaming(dir);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, round < 25 ? 'SIGTERM' : 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await sleep(200);
  }
}

async function processesNaming(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(dir + '/')) pids.push(Number(name));
  }
  return pids;
}

/** dockerd may leave mounts (netns, shm) under its roots; rm -rf must not walk into them. */
async function unmountUnder(dir: string): Promise<void> {
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8').catch(() => ''))
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => !!p && p.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await run('umount', ['-l', m]).catch(() => {});
}
