// Private swarms: both ends prove they hold the swarm key with an HMAC over the connection's transcript, so a peer
// without the key gets nothing and no proof can be replayed or reflected.
//
// Each side's proof is HMAC-SHA256(key, LABEL ‖ role ‖ infoHash ‖ initiator id ‖ responder id ‖ initiator nonce ‖
// responder nonce), every field of fixed length. The role ("initiator"/"responder", the side that dialled or was
// dialled) keeps a proof we send from ever being the proof we expect back; both nonces and both ids in a fixed order
// bind it to this connection. A peer could still hand us a nonce we issued on another connection of ours, to make
// us compute there the proof it needs here: the nonces we issue are remembered (issueNonce/isOurNonce) and refused
// as the other side's.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { usageError } from '../errors.ts';

const LABEL = 'swarmpull-auth-v2';
export const NONCE_BYTES = 16;
/** nonces of ours remembered: more than the connections a process holds at once (swarm.ts MAX_CONNECTIONS) */
const REMEMBERED_NONCES = 4096;

export type Role = 'initiator' | 'responder';

export interface Transcript {
  infoHash: Buffer;
  initiatorId: Buffer;
  responderId: Buffer;
  initiatorNonce: Buffer;
  responderNonce: Buffer;
}

/** The proof that the side playing `role` holds `key`, bound to this connection's transcript. */
export function proof(key: Buffer, role: Role, t: Transcript): Buffer {
  return createHmac('sha256', key)
    .update(LABEL)
    .update(role === 'initiator' ? 'I' : 'R')
    .update(t.infoHash)
    .update(t.initiatorId)
    .update(t.responderId)
    .update(t.initiatorNonce)
    .update(t.responderNonce)
    .digest();
}

export function checkProof(key: Buffer, role: Role, t: Transcript, mac: unknown): boolean {
  if (!(mac instanceof Uint8Array) || mac.length !== 32) return false;
  return timingSafeEqual(proof(key, role, t), mac);
}

const issued = new Set<string>();

/** A fresh nonce for a connection of ours, remembered so that a peer cannot hand it back as its own. */
export function issueNonce(): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  issued.add(nonce.toString('hex'));
  if (issued.size > REMEMBERED_NONCES) issued.delete(issued.values().next().value!);
  return nonce;
}

export function isOurNonce(nonce: Uint8Array): boolean {
  return issued.has(Buffer.from(nonce).toString('hex'));
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
