// Starts a real Debian `docker-registry` (distribution 2.8) on loopback with a config of the test's own.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

export interface RegistryOptions {
  /** htpasswd users (bcrypt-hashed with `htpasswd -Bbn`). */
  htpasswd?: { user: string; password: string }[];
  /** Token auth: realm of a token server, service name, and the PEM bundle of its signing certificate. */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /** Listen address, default 127.0.0.1:0 (port chosen by the kernel, read from the log). */
  addr?: string;
  /** Run inside this network namespace (`ip netns exec NS docker-registry ...`); give `addr` an address there. */
  netns?: string;
  /** Serve HTTPS with this certificate and key (PEM files); with `clientCas`, require a client certificate signed
   *  by one of them. Go serves HTTP/2 over TLS unless told otherwise. */
  tls?: { certificate: string; key: string; clientCas?: string[] };
  /** Keep the access log (one line per request, with its protocol, e.g. "HTTP/1.1"): read it with accessLog(). */
  accessLog?: boolean;
}

export interface Registry {
  /** host:port */
  host: string;
  dir: string;
  /** the registry's output so far (access log lines when `accessLog` was set) */
  log(): string;
  stop(): Promise<void>;
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<Registry> {
  const dir = await mkdtemp(join(tmpdir(), 'swarmpull-registry-'));
  let auth = '';
  if (opts.htpasswd) {
    const lines = opts.htpasswd.map(({ user, password }) =>
      execFileSync('htpasswd', ['-Bbn', user, password], { encoding: 'utf8' }).trim(),
    );
    await writeFile(join(dir, 'htpasswd'), lines.join('\n') + '\n');
    auth = `auth:\n  htpasswd:\n    realm: swarmpull-test\n    path: ${join(dir, 'htpasswd')}\n`;
  } else if (opts.token) {
    await writeFile(join(dir, 'token-ca.pem'), opts.token.rootCertBundle);
    auth =
      `auth:\n  token:\n    realm: ${opts.token.realm}\n    service: ${opts.token.service}\n` +
      `    issuer: ${opts.token.issuer}\n    rootcertbundle: ${join(dir, 'token-ca.pem')}\n`;
  }
  let tls = '';
  if (opts.tls) {
    tls = `  tls:\n    certificate: ${opts.tls.certificate}\n    key: ${opts.tls.key}\n`;
    if (opts.tls.clientCas) tls += `    clientcas:\n${opts.tls.clientCas.map((c) => `      - ${c}\n`).join('')}`;
  }
  const config =
    `version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: ${!opts.accessLog}\n` +
    `storage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\n  delete:\n    enabled: true\n` +
    `http:\n  addr: ${opts.addr ?? '127.0.0.1:0'}\n  secret: swarmpull-test\n` + tls +
    auth;
  await writeFile(join(dir, 'config.yml'), config);
  const argv = ['docker-registry', 'serve', join(dir, 'config.yml')];
  const [cmd, ...args] = opts.netns ? ['ip', 'netns', 'exec', opts.netns, ...argv] : argv;
  const proc = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const host = await listeningAddress(proc);
  let output = '';
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  return {
    host,
    dir,
    log: () => output,
    async stop() {
      await stopProcess(proc);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function listeningAddress(proc: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`docker-registry did not start within 10 s:\n${log}`));
    }, 10_000);
    const onData = (d: Buffer) => {
      log += d.toString();
      const m = /listening on ([^\s",]+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        proc.stderr!.off('data', onData);
        proc.stdout!.off('data', onData);
        proc.stderr!.resume();
        proc.stdout!.resume();
        resolve(m[1]!.replace(/^\[::\]/, '127.0.0.1'));
      }
    };
    proc.stderr!.on('data', onData);
    proc.stdout!.on('data', onData);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`docker-registry exited (${code}) before listening:\n${log}`));
    });
  });
}

/** SIGTERM, then SIGKILL after 5 s; resolves when the process is gone. */
export function stopProcess(proc: ChildProcess, graceMs = 5000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    proc.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    proc.kill('SIGTERM');
  });
}
