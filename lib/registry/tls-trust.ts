// Whom a registry's TLS certificate may be signed by, and which client certificate to show it, as docker and
// podman decide: the OS trust store (plus Node's bundled roots), plus the CAs in certs.d/HOST[:PORT]/*.crt, and a
// client certificate from certs.d/HOST[:PORT]/*.cert with its *.key. Read once per host, then kept in one
// SecureContext (parsing several hundred roots takes milliseconds, too long for every connection).
import { readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext, getCACertificates, type SecureContext } from 'node:tls';
import { failure } from '../errors.ts';

/** Where certs.d trees live, in the order docker and podman read them; SWARMPULL_CERTS_D (colon-separated) replaces
 *  the list, so tests and unusual hosts need not touch /etc. */
export function certsDRoots(env: NodeJS.ProcessEnv = process.env): string[] {
  const override = env.SWARMPULL_CERTS_D;
  if (override !== undefined) return override.split(':').filter(Boolean);
  return [join(env.HOME || homedir(), '.config/containers/certs.d'), '/etc/containers/certs.d', '/etc/docker/certs.d'];
}

export interface HostTrust {
  /** PEM CA certificates from certs.d for this host */
  cas: string[];
  /** client certificate and key (PEM) from certs.d, if one is there */
  client?: { cert: Buffer; key: Buffer; path: string };
  /** the certs.d directories that held something, for --debug */
  dirs: string[];
}

/** certs.d/HOST[:PORT]/ under every root: every *.crt is a CA; NAME.cert with NAME.key is a client certificate. */
export function readCertsD(hostPort: string, roots: string[]): HostTrust {
  const trust: HostTrust = { cas: [], dirs: [] };
  // A name with a slash or a leading dot could point outside the tree.
  if (!/^[A-Za-z0-9[][A-Za-z0-9.:[\]-]*$/.test(hostPort)) return trust;
  for (const root of roots) {
    const dir = join(root, hostPort);
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      continue; // no directory for this host: the usual case
    }
    const read = (name: string) => {
      try {
        return readFileSync(join(dir, name));
      } catch (err) {
        throw failure(`cannot read ${join(dir, name)}: ${(err as Error).message}`, err);
      }
    };
    let used = false;
    for (const name of names) {
      if (name.endsWith('.crt')) {
        trust.cas.push(read(name).toString('utf8'));
        used = true;
      } else if (name.endsWith('.cert')) {
        const keyName = name.slice(0, -'.cert'.length) + '.key';
        if (!names.includes(keyName)) throw failure(`${join(dir, name)} is a client certificate without its key ${keyName}`);
        trust.client ??= { cert: read(name), key: read(keyName), path: join(dir, name) };
        used = true;
      } else if (name.endsWith('.key') && !names.includes(name.slice(0, -'.key'.length) + '.cert')) {
        throw failure(`${join(dir, name)} is a client key without its certificate`);
      }
    }
    if (used) trust.dirs.push(dir);
  }
  return trust;
}

let systemRoots: string[] | undefined;

/** Node's bundled roots, NODE_EXTRA_CA_CERTS, and the OS store (OpenSSL's default file and directory, which honour
 *  SSL_CERT_FILE and SSL_CERT_DIR), deduplicated. The single binary runs the same code, so it trusts the same. */
export function defaultRoots(): string[] {
  systemRoots ??= [...new Set([...getCACertificates('default'), ...getCACertificates('system')])];
  return systemRoots;
}

/** The SecureContext for connections to one host: default roots + its certs.d CAs, and its client certificate. */
export function secureContextFor(trust: HostTrust): SecureContext {
  try {
    // Without CAs of its own, Node's default store: its bundled roots plus the OS store, as bin/swarmpull.ts runs
    // with --use-system-ca, built once per process in C++. Handing it the same roots as PEM text (a `ca` list
    // replaces the store) cost ~40 ms more per pull, measured.
    return createSecureContext({
      ...(trust.cas.length ? { ca: [...defaultRoots(), ...trust.cas] } : {}),
      ...(trust.client ? { cert: trust.client.cert, key: trust.client.key } : {}),
    });
  } catch (err) {
    const where = trust.dirs.join(', ') || 'the trust store';
    throw failure(`unusable certificate or key in ${where}: ${(err as Error).message}`, err);
  }
}
