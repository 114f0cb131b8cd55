// Shared parts of the fuzz tests: a fixed, printed seed and a time budget per target (fast-check runs the
// property until the budget is spent), mutations of valid inputs, and the check that a rejection is the
// project's own clear error.
//   SWARMPULL_FUZZ_SECONDS  seconds per fuzz target (default 2; the wire target gets 3x)
//   SWARMPULL_FUZZ_SEED     the seed to replay a failure with (printed at the start of every target)
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { SwarmpullError, type ExitCode } from '../../lib/errors.ts';

export { fc };

export const FUZZ_SECONDS = Number(process.env.SWARMPULL_FUZZ_SECONDS ?? 2);
export const FUZZ_SEED = process.env.SWARMPULL_FUZZ_SEED ? Number(process.env.SWARMPULL_FUZZ_SEED) : 0x5eed_2026;

export interface FuzzResult {
  runs: number;
  seconds: number;
  /** the slowest single input, in ms */
  slowestMs: number;
}

/**
 * Run `check` on values of `arb` for `seconds` (at least `minRuns` times, whatever the machine's speed). A failure
 * names the seed and the shrunk counterexample; run again with SWARMPULL_FUZZ_SEED to reproduce. An input that
 * takes over `hangMs` fails too: catastrophic backtracking and the like (far above any parser's normal time).
 */
export async function fuzz<T>(
  name: string,
  arb: fc.Arbitrary<T>,
  check: (value: T) => void | Promise<void>,
  opts: { seconds?: number; minRuns?: number; hangMs?: number } = {},
): Promise<FuzzResult> {
  const seconds = opts.seconds ?? FUZZ_SECONDS;
  const minRuns = opts.minRuns ?? 100;
  const hangMs = opts.hangMs ?? 2000;
  // Printed first: a run that hangs or crashes the process still tells how to replay it.
  console.log(`fuzz ${name}: seed ${FUZZ_SEED}, ${seconds} s (SWARMPULL_FUZZ_SEED=${FUZZ_SEED} to replay)`);
  let runs = 0;
  let slowestMs = 0;
  const started = performance.now();
  const property = fc.asyncProperty(arb, async (v) => {
    runs++;
    const t0 = performance.now();
    await check(v);
    const ms = performance.now() - t0;
    slowestMs = Math.max(slowestMs, ms);
    assert.ok(ms < hangMs, `one input took ${Math.round(ms)} ms`);
  });
  await fc.assert(property, { seed: FUZZ_SEED, numRuns: 100_000_000, interruptAfterTimeLimit: seconds * 1000, markInterruptAsFailure: false });
  // A slow machine still gets a minimum of runs (with the next seeds, so they are new values).
  if (runs < minRuns) {
    await fc.assert(property, { seed: FUZZ_SEED + 1, numRuns: minRuns - runs });
  }
  return { runs, seconds: (performance.now() - started) / 1000, slowestMs };
}

/**
 * Call a parser: it returns a value, or throws a SwarmpullError with one of `codes` and a one-line message.
 * Anything else (a TypeError, a RangeError, an error without an exit code) fails the test.
 */
export function parsesOrRejects<T>(parse: () => T, codes: readonly ExitCode[], what: string): T | undefined {
  try {
    return parse();
  } catch (err) {
    assertCleanRejection(err, codes, what);
    return undefined;
  }
}

export async function parsesOrRejectsAsync<T>(parse: () => Promise<T>, codes: readonly ExitCode[], what: string): Promise<T | undefined> {
  try {
    return await parse();
  } catch (err) {
    assertCleanRejection(err, codes, what);
    return undefined;
  }
}

export function assertCleanRejection(err: unknown, codes: readonly ExitCode[], what: string): void {
  if (!(err instanceof SwarmpullError)) {
    assert.fail(`${what}: threw ${(err as Error)?.constructor?.name ?? typeof err} instead of a SwarmpullError: ${(err as Error)?.stack ?? err}`);
  }
  assert.ok(codes.includes(err.exitCode), `${what}: exit code ${err.exitCode}, expected one of ${codes.join(', ')}: ${err.message}`);
  assert.ok(!err.message.includes('\n'), `${what}: the message is not one line: ${JSON.stringify(err.message)}`);
  assert.ok(err.message.length > 0 && err.message.length <= 1000, `${what}: message of ${err.message.length} characters`);
}

// ---- mutations of valid inputs -------------------------------------------------------------------------------

/** Bytes that break parsers: separators, quotes, escapes, sign and digit runs, control and non-ASCII bytes. */
const INTERESTING = [
  '', '\0', '\n', '\r\n', '"', '\\', ',', '=', ':', ';', '@', '/', '[', ']', '{', '}', ' ', '\t', '-', '.', '_', '#',
  '-1', '0', '00', '4294967296', '9007199254740993', '1e308', '-0', 'NaN', 'null', 'true', '[]', '{}',
  '\u00ff', '\ufffd', '\ud800', 'é', '__proto__', 'constructor', 'toString',
].map((s) => Buffer.from(s, 'utf8'));

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'delete'; at: number; len: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'repeat'; at: number; len: number; times: number }
  | { kind: 'splice'; at: number; other: number; from: number; len: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.constantFrom(0, 1, 0x7f, 0x80, 0xff, 0x20, 0x2c, 0x3a, 0x22) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 64 }) }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.oneof(fc.constantFrom(...INTERESTING), fc.uint8Array({ maxLength: 16 }), fc.constant(Buffer.alloc(5000, 0x61)), fc.constant(Buffer.alloc(400, 0x39))),
  }),
  fc.record({ kind: fc.constant('repeat' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 16 }), times: fc.integer({ min: 2, max: 2000 }) }),
  fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), other: fc.nat(), from: fc.nat(), len: fc.integer({ min: 1, max: 256 }) }),
);

function applyMutation(buf: Buffer, m: Mutation, corpus: readonly Buffer[], maxLength: number): Buffer {
  const at = buf.length ? m.at % (buf.length + 1) : 0;
  switch (m.kind) {
    case 'flip': {
      if (!buf.length) return buf;
      const out = Buffer.from(buf);
      out[at % buf.length]! ^= 1 << m.bit;
      return out;
    }
    case 'set': {
      if (!buf.length) return buf;
      const out = Buffer.from(buf);
      out[at % buf.length] = m.value;
      return out;
    }
    case 'truncate':
      return buf.subarray(0, at);
    case 'delete':
      return Buffer.concat([buf.subarray(0, at), buf.subarray(at + m.len)]);
    case 'insert':
      return Buffer.concat([buf.subarray(0, at), m.bytes, buf.subarray(at)]).subarray(0, maxLength);
    case 'repeat': {
      const piece = buf.subarray(at, at + m.len);
      const times = Math.min(m.times, Math.floor(maxLength / Math.max(1, piece.length)));
      return Buffer.concat([buf.subarray(0, at), Buffer.concat(Array(times).fill(piece)), buf.subarray(at)]).subarray(0, maxLength);
    }
    case 'splice': {
      const other = corpus[m.other % corpus.length]!;
      const from = other.length ? m.from % other.length : 0;
      return Buffer.concat([buf.subarray(0, at), other.subarray(from, from + m.len), buf.subarray(at)]).subarray(0, maxLength);
    }
  }
}

/** A valid input from `valid`, then 1-4 mutations (bit flips, truncation, deletion, insertion, repetition, splicing). */
export function mutated(valid: fc.Arbitrary<Buffer>, corpus: readonly Buffer[], maxLength = 1 << 16): fc.Arbitrary<Buffer> {
  return fc
    .tuple(valid, fc.array(mutationArb, { minLength: 1, maxLength: 4 }))
    .map(([buf, ms]) => ms.reduce((b, m) => applyMutation(b, m, corpus, maxLength), buf));
}

/** Text parsers: valid strings, mutated ones (bytes read back as latin1 or utf8), and random strings. */
export function textInputs(valid: fc.Arbitrary<string>, corpus: readonly string[], maxLength = 1 << 16): fc.Arbitrary<string> {
  const bytes = corpus.map((s) => Buffer.from(s, 'utf8'));
  const m = mutated(valid.map((s) => Buffer.from(s, 'utf8')), bytes, maxLength);
  return fc.oneof(
    { arbitrary: valid, weight: 2 },
    { arbitrary: m.map((b) => b.toString('utf8')), weight: 4 },
    { arbitrary: m.map((b) => b.toString('latin1')), weight: 2 },
    { arbitrary: fc.string({ maxLength: 300, unit: 'binary' }), weight: 1 },
    { arbitrary: fc.string({ maxLength: 300 }), weight: 1 },
  );
}

/** Structurally odd JSON values: wrong types, huge and negative numbers, long strings, deep nesting. */
export const weirdJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom<unknown>(null, true, -1, 0, 1.5, 2 ** 53 + 2, 1e308, -1e308, '', 'x'.repeat(70_000), [], {}, { __proto__: null }),
  fc.integer({ min: 1, max: 1000 }).map((d) => JSON.parse('['.repeat(d) + ']'.repeat(d)) as unknown),
);

/**
 * Bencode token soup: lists, dicts, integers and strings in any order and nesting, with negative and oversized
 * lengths and the keys swarmpull's messages use. What byte mutations of valid payloads rarely produce.
 */
export const bencodeSoup: fc.Arbitrary<Buffer> = fc
  .array(
    fc.oneof(
      fc.constantFrom('l', 'd', 'e', 'e', 'i0e', 'i1e', 'i-1e', 'i7881e', 'i99999999999999999999e', 'i-0e', 'ie', '0:', '1:a', '-1:', '-3:', '-4:', '999999:'),
      fc.constantFrom('m', 'p', 'v', 'key', 'nonce', 'swarmpull', 't', 'claim', 'pex', 'peers', 'auth', 'mac', 'toString', '__proto__', 'constructor', 'hasOwnProperty').map((k) => `${k.length}:${k}`),
      fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => `16:${Buffer.from(b).toString('latin1')}`),
    ),
    { maxLength: 24 },
  )
  .map((tokens) => Buffer.from(tokens.join(''), 'latin1'));

// A full collection on demand, without --expose-gc on the command line.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Collect garbage, then the memory a hostile input could pile up: JS heap plus buffers. */
export function retainedBytes(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}
