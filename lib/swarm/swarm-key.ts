// Private swarms: both ends prove they hold the swarm key with an HMAC over both sides' nonces, so a peer
// without the key gets nothing and a recorded proof cannot be replayed on another connection.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { usageError } from '../errors.ts';

const LABEL = 'swarmpull-auth-v1';

/** The proof that the side with `senderNonce` holds `key`, bound to this connection and blob. */
export function proof(key: Buffer, infoHash: Buffer, senderNonce: Buffer, receiverNonce: Buffer): Buffer {
  return createHmac('sha256', key).update(LABEL).update(infoHash).update(senderNonce).update(receiverNonce).digest();
}

export function checkProof(key: Buffer, infoHash: Buffer, senderNonce: Buffer, receiverNonce: Buffer, mac: unknown): boolean {
  if (!(mac instanceof Uint8Array) || mac.length !== 32) return false;
  return timingSafeEqual(proof(key, infoHash, senderNonce, receiverNonce), mac);
}

/** --swarm-key FILE, else SWARMPULL_SWARM_KEY (the key itself); at least 16 bytes. */
export async function loadSwarmKey(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<Buffer | undefined> {
  let key: Buffer | undefined;
  if (file) {
    key = await readFile(file).catch((err: Error) => {
      throw usageError(`cannot read --swarm-key ${file}: ${err.message}`);
    });
  } else if (env.SWARMPULL_SWARM_KEY) key = Buffer.from(env.SWARMPULL_SWARM_KEY);
  if (!key) return undefined;
  const trimmed = Buffer.from(key.toString('latin1').trim(), 'latin1');
  if (trimmed.length < 16) throw usageError('the swarm key must be at least 16 bytes (e.g. head -c 32 /dev/urandom | base64)');
  return trimmed;
}
