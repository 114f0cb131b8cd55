// The V8 flags swarmpull runs with live on one line, the shebang of bin/swarmpull.ts; the single binary
// (its SEA execArgv) and the tests (which start the CLI with `node`) read them from there.
//
// --max-semi-space-size=1 (MiB): a young generation this small is collected often, and with it the 64 KiB socket
// read buffers that die young. Measured on a 1 GiB pull: peak RSS 180-190 -> 155 MiB and 20% less CPU from the
// registry; ~5% more CPU on peer transfers (many small wire objects).
//
// --use-system-ca: Node's default trust store holds the OS store too (SSL_CERT_FILE and SSL_CERT_DIR honoured), so a
// registry without certs.d CAs gets the default SecureContext instead of one built from hundreds of PEM roots
// (lib/registry/tls-trust.ts).
import { readFileSync } from 'node:fs';

export const ENTRY = new URL('./swarmpull.ts', import.meta.url);

export function nodeFlags(): string[] {
  const shebang = readFileSync(ENTRY, 'utf8').split('\n', 1)[0]!;
  const m = /^#!\/usr\/bin\/env -S node((?: --[\w-]+(?:=\S+)?)*)$/.exec(shebang);
  if (!m) throw new Error(`bin/swarmpull.ts: unexpected shebang ${shebang}`);
  return m[1]!.split(' ').filter(Boolean);
}
