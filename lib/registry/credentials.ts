// Finds stored registry credentials the way docker and podman do, when no --creds was given:
// REGISTRY_AUTH_FILE (podman's auth.json), then $DOCKER_CONFIG/config.json (default ~/.docker/config.json).
// In each file: credHelpers[host] → docker-credential-<name>, else credsStore, else auths[host].
// Anything that goes wrong (unreadable file, missing or failing helper) means "anonymous", with a debug line.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { DOCKER_HUB } from '../reference.ts';

export interface Credentials {
  username: string;
  /** the password, or the identity (refresh) token when username is IDENTITY_TOKEN_USER */
  password: string;
}

/** docker's convention: a helper or config entry whose user is "<token>" holds an OAuth2 refresh token. */
export const IDENTITY_TOKEN_USER = '<token>';

export interface LookupOptions {
  log?: ((msg: string) => void) | undefined;
  env?: NodeJS.ProcessEnv;
  helperTimeoutMs?: number;
}

interface ConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

export async function lookupCredentials(registry: string, opts: LookupOptions = {}): Promise<Credentials | undefined> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? (() => {});
  const files: string[] = [];
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
  files.push(join(env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker'), 'config.json'));
  for (const file of files) {
    const config = await readConfig(file, log);
    if (!config) continue;
    const creds = await fromConfig(config, registry, file, { ...opts, log });
    if (creds) return creds;
  }
  log(`credentials: none found for ${registry}; pulling anonymously`);
  return undefined;
}

async function readConfig(file: string, log: (msg: string) => void): Promise<ConfigFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log(`credentials: cannot read ${file}: ${(err as Error).message}`);
    return undefined;
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as ConfigFile;
  } catch {
    // fall through
  }
  log(`credentials: ${file} is not a JSON object; ignored`);
  return undefined;
}

async function fromConfig(config: ConfigFile, registry: string, file: string, opts: LookupOptions & { log: (m: string) => void }) {
  const helperKey = matchKey(config.credHelpers, registry);
  if (helperKey !== undefined && typeof config.credHelpers![helperKey] === 'string') {
    const creds = await runHelper(config.credHelpers![helperKey]!, registry, opts);
    if (creds) return creds;
  } else if (typeof config.credsStore === 'string' && config.credsStore) {
    const creds = await runHelper(config.credsStore, registry, opts);
    if (creds) return creds;
  }
  const authKey = matchKey(config.auths, registry);
  if (authKey === undefined) return undefined;
  const entry = config.auths![authKey];
  if (!entry || typeof entry !== 'object') return undefined;
  if (typeof entry.identitytoken === 'string' && entry.identitytoken) {
    opts.log(`credentials: identity token for ${registry} from ${file}`);
    return { username: IDENTITY_TOKEN_USER, password: entry.identitytoken };
  }
  if (typeof entry.auth === 'string' && entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) {
      opts.log(`credentials: user ${JSON.stringify(decoded.slice(0, colon))} for ${registry} from ${file}`);
      return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    }
    opts.log(`credentials: the "auth" entry for ${authKey} in ${file} is not base64 of user:password; ignored`);
  }
  if (typeof entry.username === 'string' && typeof entry.password === 'string' && entry.username) {
    opts.log(`credentials: user ${JSON.stringify(entry.username)} for ${registry} from ${file}`);
    return { username: entry.username, password: entry.password };
  }
  return undefined;
}

/** The host names a registry may be stored under: docker.io is also index.docker.io (docker login's key). */
function aliases(registry: string): string[] {
  return registry === DOCKER_HUB ? [DOCKER_HUB, 'index.docker.io', 'registry-1.docker.io'] : [registry];
}

/** Find the key for a registry: exact first, then keys written as URLs ("https://host", "http://host/v1/"). */
export function matchKey(map: Record<string, unknown> | undefined, registry: string): string | undefined {
  if (!map || typeof map !== 'object') return undefined;
  const names = aliases(registry);
  const keys = Object.keys(map);
  const exact = keys.find((k) => names.includes(k));
  if (exact !== undefined) return exact;
  return keys.find((k) => names.includes(k.replace(/^https?:\/\//, '').replace(/\/.*$/, '')));
}

/** `docker-credential-<name> get`, server URL on stdin, JSON {Username, Secret} on stdout. */
async function runHelper(name: string, registry: string, opts: LookupOptions & { log: (m: string) => void }) {
  // The name becomes part of a program name looked up on PATH: no slashes, no surprises.
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    opts.log(`credentials: ignoring credential helper with an odd name ${JSON.stringify(name.slice(0, 60))}`);
    return undefined;
  }
  const program = `docker-credential-${name}`;
  const serverUrl = registry === DOCKER_HUB ? 'https://index.docker.io/v1/' : registry;
  let stdout: string;
  try {
    stdout = await runHelperProgram(program, serverUrl, opts.env ?? process.env, opts.helperTimeoutMs ?? 10_000);
  } catch (err) {
    opts.log(`credentials: ${program} ${(err as Error).message}; ignored`);
    return undefined;
  }
  let parsed: { Username?: unknown; Secret?: unknown };
  try {
    parsed = JSON.parse(stdout) as typeof parsed;
  } catch {
    opts.log(`credentials: ${program} did not print JSON; ignored`);
    return undefined;
  }
  if (typeof parsed.Username !== 'string' || typeof parsed.Secret !== 'string' || !parsed.Secret) {
    opts.log(`credentials: ${program} gave no Username/Secret for ${registry}; ignored`);
    return undefined;
  }
  opts.log(
    parsed.Username === IDENTITY_TOKEN_USER
      ? `credentials: identity token for ${registry} from ${program}`
      : `credentials: user ${JSON.stringify(parsed.Username)} for ${registry} from ${program}`,
  );
  return { username: parsed.Username, password: parsed.Secret };
}

/** Run `<program> get` with `input` on stdin; its stdout, or an error whose message says what went wrong. */
function runHelperProgram(program: string, input: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, ['get'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    // Settle on the timer without waiting for the pipes: a helper's own children could hold them open.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      child.stdout.destroy();
      child.stderr.destroy();
      reject(new Error(`gave no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < 1 << 20) stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 4096) stderr += d;
    });
    child.stdin.on('error', () => {}); // a helper that exits without reading stdin must not crash us (EPIPE)
    child.stdin.end(input);
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new Error(err.code === 'ENOENT' ? 'not found on PATH' : `could not run (${err.code ?? err.message})`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      // Helpers' stderr is theirs to word: keep one short line (docker's say "credentials not found in native keychain").
      if (code === 0) resolve(stdout);
      else reject(new Error(`failed (exit ${code}: ${stderr.trim().split('\n')[0]!.slice(0, 200)})`));
    });
  });
}
