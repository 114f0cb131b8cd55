// A certificate authority of the tests' own, made with openssl: a CA, a server certificate for 127.0.0.1 and
// localhost signed by it, and a client certificate signed by it (for registries that require one). Also a
// certs.d tree in a temp dir, laid out as docker and podman read /etc/docker/certs.d/HOST[:PORT]/.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestPki {
  dir: string;
  /** PEM of the CA certificate */
  caPem: string;
  caPath: string;
  /** server certificate (SAN 127.0.0.1, 127.0.0.2, localhost) and key, PEM files */
  serverCert: string;
  serverKey: string;
  /** client certificate and key, PEM files */
  clientCert: string;
  clientKey: string;
  /** a second CA that signed nothing the servers use: "some other CA" */
  otherCaPath: string;
  remove(): Promise<void>;
}

export interface PkiOptions {
  /** the server certificate's subjectAltName, default IP:127.0.0.1,IP:127.0.0.2,DNS:localhost */
  serverSan?: string;
}

export async function makePki(opts: PkiOptions = {}): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'swarmpull-pki-'));
  const p = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => run('openssl', args, { cwd: dir });
  const ca = async (name: string, cn: string) =>
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${cn}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      '-keyout', p(`${name}.key`), '-out', p(`${name}.crt`));
  const leaf = async (name: string, cn: string, ext: string) => {
    await openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`));
    await writeFile(p(`${name}.ext`), ext);
    await openssl('x509', '-req', '-in', p(`${name}.csr`), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial',
      '-days', '2', '-extfile', p(`${name}.ext`), '-out', p(`${name}.crt`));
  };
  await ca('ca', 'swarmpull test CA');
  await ca('other-ca', 'swarmpull other CA');
  const san = opts.serverSan ?? 'IP:127.0.0.1,IP:127.0.0.2,DNS:localhost';
  await leaf('server', 'swarmpull test registry', `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
  await leaf('client', 'swarmpull test client', 'extendedKeyUsage=clientAuth\n');
  return {
    dir,
    caPem: await readFile(p('ca.crt'), 'utf8'),
    caPath: p('ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
    otherCaPath: p('other-ca.crt'),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Files to put into ROOT/HOST/ of a certs.d tree: name → source file. */
export async function writeCertsD(root: string, host: string, files: Record<string, string>): Promise<string> {
  const dir = join(root, host);
  await mkdir(dir, { recursive: true });
  for (const [name, source] of Object.entries(files)) await writeFile(join(dir, name), await readFile(source));
  return dir;
}
