// Bencode from peers is hostile: the `bencode` package loops forever (and runs out of memory) on a negative
// string length ("l-3:e"), overflows the stack on deep nesting, and lets a "__proto__" key replace a dict's
// prototype. Every payload is checked here, in one bounded pass, before that decoder sees it.
import bencode from 'bencode';

/** Nesting deeper than this is refused: swarmpull's messages nest 2 deep, BEP 10 handshakes 2. */
export const MAX_BENCODE_DEPTH = 8;

const I = 0x69; // 'i'
const L = 0x6c; // 'l'
const D = 0x64; // 'd'
const E = 0x65; // 'e'
const COLON = 0x3a;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;
const PROTO = Buffer.from('__proto__');

/**
 * Why `buf` is not exactly one canonical bencoded value (integers and lengths without signs or leading zeros,
 * integers of at most 15 digits, dict keys printable ASCII in strictly increasing order and not "__proto__",
 * nesting at most `maxDepth`); null when it is one. Canonical input decodes to one meaning only: the decoder
 * would keep the last of two equal keys, and turn a key that is not UTF-8 into hex.
 */
export function bencodeProblem(buf: Uint8Array, maxDepth = MAX_BENCODE_DEPTH): string | null {
  const n = buf.length;
  let pos = 0;
  // Digits from pos up to the terminator; canonical: no leading zero (except "0" itself), at least one digit.
  const digits = (terminator: number, maxDigits: number): number | string => {
    const start = pos;
    while (pos < n && buf[pos]! >= ZERO && buf[pos]! <= NINE) pos++;
    const len = pos - start;
    if (len === 0) return 'expected digits';
    if (len > maxDigits) return 'number too long';
    if (len > 1 && buf[start] === ZERO) return 'leading zero';
    if (pos >= n || buf[pos] !== terminator) return 'truncated or bad number';
    let v = 0;
    for (let i = start; i < pos; i++) v = v * 10 + (buf[i]! - ZERO);
    pos++; // the terminator
    return v;
  };
  const string = (): { start: number; end: number } | string => {
    const len = digits(COLON, 9);
    if (typeof len === 'string') return `string length: ${len}`;
    if (len > n - pos) return 'string runs past the end';
    const start = pos;
    pos += len;
    return { start, end: pos };
  };
  const value = (depth: number): string | null => {
    if (pos >= n) return 'truncated';
    const c = buf[pos]!;
    if (c === I) {
      pos++;
      if (buf[pos] === MINUS) {
        pos++;
        if (buf[pos] === ZERO) return 'negative zero';
      }
      const v = digits(E, 15);
      return typeof v === 'string' ? `integer: ${v}` : null;
    }
    if (c === L || c === D) {
      if (depth >= maxDepth) return `nested deeper than ${maxDepth}`;
      pos++;
      let previousKey: Uint8Array | null = null;
      while (pos < n && buf[pos] !== E) {
        if (c === D) {
          const at = string();
          if (typeof at === 'string') return `dict key: ${at}`;
          const key = buf.subarray(at.start, at.end);
          if (!key.every((b) => b >= 0x20 && b <= 0x7e)) return 'dict key not printable ASCII';
          if (previousKey && Buffer.compare(previousKey, key) >= 0) return 'dict keys not in increasing order';
          if (PROTO.equals(key)) return 'dict key __proto__';
          previousKey = key;
        }
        const problem = value(depth + 1);
        if (problem) return problem;
      }
      if (pos >= n) return 'unterminated list or dict';
      pos++; // 'e'
      return null;
    }
    const s = string();
    return typeof s === 'string' ? s : null;
  };
  if (n === 0) return 'empty';
  const problem = value(0);
  if (problem) return problem;
  return pos === n ? null : 'bytes after the value';
}

/** Decode a peer's bencoded payload; throws an Error naming the problem for anything malformed. */
export function decodeBencode(buf: Uint8Array): unknown {
  const problem = bencodeProblem(buf);
  if (problem) throw new Error(`malformed bencode: ${problem}`);
  return bencode.decode(buf);
}
