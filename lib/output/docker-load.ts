// The default output: `docker load`, fed the tar as blobs complete, so the daemon unpacks while the last
// layers still download. The docker CLI does the talking (DOCKER_HOST, contexts, TLS settings all apply).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { SwarmpullError, failure } from '../errors.ts';
import type { Descriptor } from '../image/types.ts';
import { DockerTarWriter } from './docker-tar.ts';
import type { ImageSink, ResolvedImage } from './sink.ts';

export interface DockerLoadOptions {
  /** the docker CLI, default `docker` from PATH */
  dockerBin?: string;
  env?: NodeJS.ProcessEnv;
  /** how long the up-front `docker version` may take, default 15 s */
  timeoutMs?: number;
}

const ALTERNATIVES = 'or write an OCI layout with --oci DIR or a tar with -o FILE';
const KEEP_OUTPUT = 64 * 1024;

export async function openDockerLoad(image: ResolvedImage, opts: DockerLoadOptions = {}): Promise<ImageSink> {
  const bin = opts.dockerBin ?? 'docker';
  const env = opts.env ?? process.env;
  // Ask the daemon first: `docker load` itself would only fail once the whole image had been downloaded.
  await checkDaemon(bin, env, opts.timeoutMs ?? 15_000);
  const child = spawn(bin, ['load'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const stdout = collect(child.stdout!);
  const stderr = collect(child.stderr!);
  const exited = new Promise<{ code: number | null; signal: string | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  const writer = new DockerTarWriter(image, child.stdin!);
  let state: 'open' | 'committed' | 'aborted' = 'open';

  const loadFailed = (r: { code: number | null; signal: string | null; error?: Error }) =>
    failure(`docker load failed: ${r.error?.message ?? (lastLine(stderr()) || `exit ${r.code ?? r.signal}`)}`);

  // A broken tar stream almost always means docker load stopped reading (EPIPE): its stderr says why.
  const explain = async (err: unknown): Promise<never> => {
    if (err instanceof SwarmpullError) throw err; // ours (a bad blob), not the stream's
    const gaveUp = new AbortController();
    const r = await Promise.race([exited, sleep(5_000, undefined, { signal: gaveUp.signal }).catch(() => undefined)]);
    gaveUp.abort(); // no timer left behind to hold the process open
    throw r && r.code !== 0 ? loadFailed(r) : err;
  };

  return {
    description: 'docker load',
    addBlob: (desc: Descriptor, path: string) => writer.addBlob(desc, path).catch(explain),
    async commit() {
      await writer.finish().catch(explain);
      const r = await exited;
      if (r.code !== 0) throw loadFailed(r);
      state = 'committed';
      const loaded = stdout().split('\n').map((l) => l.trim()).filter((l) => l.startsWith('Loaded image'));
      return loaded.join('; ') || lastLine(stdout()) || 'loaded';
    },
    async abort() {
      if (state !== 'open') return;
      state = 'aborted';
      // Kill before closing its stdin: a docker CLI that saw a clean EOF would send the daemon a complete request.
      // Killed, the request body is cut mid-stream and the daemon drops the whole load (and the tar's metadata,
      // written last, never got there anyway).
      await kill(child, exited);
      await writer.destroy();
    },
  };
}

async function checkDaemon(bin: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<void> {
  const { err, stdout, stderr } = await new Promise<{ err: (Error & { code?: unknown; killed?: boolean }) | null; stdout: string; stderr: string }>(
    (resolve) =>
      execFile(bin, ['version', '--format', '{{.Server.Version}}'], { env, timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) =>
        resolve({ err, stdout, stderr }),
      ),
  );
  if (err?.code === 'ENOENT' || err?.code === 'EACCES') {
    const what = bin.includes('/') ? `${bin} does not exist or is not executable` : `no ${bin} CLI on PATH`;
    throw failure(`cannot use docker load: ${what}; install docker, ${ALTERNATIVES}`, err);
  }
  if (err?.killed) throw failure(`the Docker daemon did not answer within ${Math.round(timeoutMs / 1000)} s; ${ALTERNATIVES}`, err);
  if (err || !stdout.trim()) {
    const why = lastLine(stderr) || err?.message || 'no server version reported';
    throw failure(`cannot reach the Docker daemon (${why}); start it or set DOCKER_HOST, ${ALTERNATIVES}`, err);
  }
}

/** Keep the last KEEP_OUTPUT bytes a stream produced (enough for docker's messages, bounded whatever it prints). */
function collect(stream: NodeJS.ReadableStream): () => string {
  let text = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    text = (text + chunk).slice(-KEEP_OUTPUT);
  });
  return () => text;
}

function lastLine(text: string): string {
  return text.trim().split('\n').pop()?.trim() ?? '';
}

async function kill(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await exited;
}
