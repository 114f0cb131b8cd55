// bittorrent-protocol's Wire, hardened against hostile peers by overriding private members of the library: which
// is why package.json pins its exact version, and why this module checks at load that those members are there (an
// update that renamed one would otherwise leave a hole open without a word).
import Wire from 'bittorrent-protocol';
import { bencodeProblem } from './safe-bencode.ts';

/** the largest message we accept: a block plus headers, or an extension message (bitfields are smaller) */
const MAX_MESSAGE = 64 * 1024;

type WireInternals = {
  _parse(size: number, parser: (b: Uint8Array) => void): void;
  _onMessageLength(b: Uint8Array): void;
  _onExtended(ext: number, buf: Uint8Array): void;
  _write(data: Uint8Array, cb: (err?: Error | null) => void): void;
  _processBuffer(): void;
};
const wireInternals = Wire.prototype as unknown as WireInternals;
/** the library's receive buffer: bytes of the message being parsed, and how many that message needs */
type WireBuffer = { _buffer: Uint8Array[]; _bufferSize: number; _parserSize: number; _encryptor: unknown };

/**
 * A Wire hardened against hostile peers: oversized messages are refused instead of buffered (the library accepts
 * up to 2 GiB), malformed bencode never reaches the library's decoder, and whatever a peer's bytes make the
 * library (or a handler of ours) throw closes that connection instead of crashing the process.
 */
export class BoundedWire extends Wire {
  /** when the last message (keep-alives included) arrived */
  lastMessageAt = Date.now();
  /** why we refused the peer's bytes, if we did */
  refusal = '';

  // streamx's _write(data, cb), not the node Duplex signature the type declarations borrow
  _write(data: Uint8Array, cb: unknown): void {
    let called = false;
    const done = (err?: Error | null) => {
      called = true;
      (cb as (err?: Error | null) => void)(err);
    };
    try {
      this.joinWaiting(data, done) || wireInternals._write.call(this, data, done);
    } catch (err) {
      this.refuse(`peer sent what we cannot handle (${(err as Error).message})`);
      // streamx finishes destroying only once the write under way has called back
      if (!called) done(null);
    }
  }

  /**
   * Bytes of a message wait for the rest of it: join them with only as much of `data` as that message needs, and
   * leave the rest of `data` to the library. (The library copies all it buffered plus all of `data` on every read:
   * with 16 KiB messages and ~24 KB socket reads, every received byte about twice.) Returns whether it took `data`.
   */
  private joinWaiting(data: Uint8Array, done: (err?: Error | null) => void): boolean {
    const w = this as unknown as WireBuffer;
    if (w._encryptor || w._buffer.length === 0) return false;
    const need = w._parserSize - w._bufferSize;
    if (need > data.length) {
      w._buffer.push(data);
      w._bufferSize += data.length;
      done(null);
      return true;
    }
    w._buffer = [Buffer.concat([...w._buffer, data.subarray(0, need)])];
    w._bufferSize += need;
    wireInternals._processBuffer.call(this);
    wireInternals._write.call(this, data.subarray(need), done);
    return true;
  }

  /** Close, and parse nothing more of what is buffered. */
  private refuse(why: string): void {
    this.refusal ||= why;
    wireInternals._parse.call(this, Number.MAX_VALUE, () => {});
    this.destroy(new Error(why));
  }

  _onMessageLength(buffer: Uint8Array): void {
    this.lastMessageAt = Date.now();
    const length = ((buffer[0]! << 24) >>> 0) + (buffer[1]! << 16) + (buffer[2]! << 8) + buffer[3]!;
    if (length > MAX_MESSAGE) return this.refuse(`message of ${length} bytes`);
    wireInternals._onMessageLength.call(this, buffer);
  }

  _onExtended(ext: number, buf: Uint8Array): void {
    // The library decodes the extension handshake itself, with a decoder that hangs on some inputs.
    const problem = ext === 0 ? bencodeProblem(buf) : null;
    if (problem) return this.refuse(`malformed extension handshake: ${problem}`);
    wireInternals._onExtended.call(this, ext, buf);
  }
}

/** The private methods overridden or called below, and the fields of the receive buffer read and written. */
const PRIVATE_METHODS = ['_parse', '_onMessageLength', '_onExtended', '_write', '_processBuffer'] as const;
const PRIVATE_FIELDS = ['_buffer', '_bufferSize', '_parserSize', '_encryptor'] as const;

/** What is missing of the private members the hardening relies on, in `proto` and in a fresh `instance`. */
export function missingInternals(proto: object, instance: object): string[] {
  const p = proto as Record<string, unknown>;
  const missing: string[] = PRIVATE_METHODS.filter((m) => typeof p[m] !== 'function').map((m) => `method ${m}`);
  for (const f of PRIVATE_FIELDS) if (!(f in instance)) missing.push(`field ${f}`);
  return missing;
}

const missing = missingInternals(Wire.prototype, new Wire());
if (missing.length) {
  throw new Error(`bittorrent-protocol is not the version swarmpull's hardening was written for (see package.json): no ${missing.join(', ')}`);
}
