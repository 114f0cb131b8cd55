// Reads of the peer sockets we dial go into one buffer of ours, used again for every read of every such socket
// (net.connect's `onread`; Node offers it only for sockets it creates that way), instead of a fresh buffer Node
// allocates per read. Safe because the wire parses each read at once and keeps no view of it: blocks are copied
// into their piece, a message split across reads into a buffer of its own, and handlers copy what they keep.
import type { OnReadOpts } from 'node:net';

/** one read's most: 4 loopback reads' worth, so a fast link is read in fewer, larger reads */
const READ_BYTES = 256 * 1024;
let shared: Buffer | undefined;

export interface ReusedReads {
  onread: OnReadOpts;
  /** where each read goes, set once the socket's reader exists (reads before that are dropped: none come) */
  deliver: ((chunk: Buffer) => void) | null;
}

export function reusedReads(): ReusedReads {
  const reads: ReusedReads = {
    deliver: null,
    onread: {
      buffer: () => (shared ??= Buffer.allocUnsafe(READ_BYTES)),
      callback: (bytes: number, buf: Uint8Array) => {
        reads.deliver?.((buf as Buffer).subarray(0, bytes));
        return true;
      },
    },
  };
  return reads;
}
