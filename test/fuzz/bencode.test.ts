// Fuzz: the bencode check every peer payload passes before the `bencode` package decodes it (extension
// handshakes and swarmpull's extension messages).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import bencode from 'bencode';
import { bencodeProblem, decodeBencode, MAX_BENCODE_DEPTH } from '../../lib/swarm/safe-bencode.ts';
import { bencodeSoup, fc, fuzz, mutated } from './fuzz.ts';

type Value = number | Uint8Array | Value[] | { [k: string]: Value };

/** Values bencode can carry, nested at most `depth` deep, dict keys ASCII (the decoder turns keys into text). */
const valueArb = (depth: number): fc.Arbitrary<Value> =>
  fc.letrec<{ v: Value }>((tie) => ({
    v: fc.oneof(
      { depthSize: 'small', maxDepth: depth },
      fc.integer({ min: -(2 ** 48), max: 2 ** 48 }),
      fc.uint8Array({ maxLength: 40 }),
      fc.array(tie('v'), { maxLength: 5 }),
      fc.dictionary(fc.stringMatching(/^[a-z_]{1,8}$/).filter((k) => k !== '__proto__'), tie('v'), { maxKeys: 5 }),
    ),
  })).v;

const CORPUS = [
  { m: { swarmpull: 1 }, p: 7881, v: 'swarmpull', nonce: Buffer.alloc(16, 7), key: 0 },
  { t: 'claim', p: [1, 2, 3] },
  { t: 'pex', peers: ['10.0.0.1:7881', '10.0.0.2:7000'] },
  { t: 'auth', mac: Buffer.alloc(32, 1) },
].map((v) => Buffer.from(bencode.encode(v)));

// Inputs the decoder mishandles: a negative length loops forever; deep nesting overflows the stack.
const REGRESSIONS = ['l-3:e', 'd1:a-1:e', 'i-0e', 'i03e', '03:abc', '3:ab', 'l'.repeat(100_000), 'd9:__proto__d1:ti5eee', 'i1e2', ''];

test('malformed bencode that hangs or crashes the decoder is refused by the check', () => {
  for (const s of REGRESSIONS) {
    assert.notEqual(bencodeProblem(Buffer.from(s)), null, s.slice(0, 20));
    assert.throws(() => decodeBencode(Buffer.from(s)), /^Error: malformed bencode: /, s.slice(0, 20));
  }
  const deep = (d: number) => Buffer.from('l'.repeat(d) + 'e'.repeat(d));
  assert.equal(bencodeProblem(deep(MAX_BENCODE_DEPTH)), null);
  assert.match(bencodeProblem(deep(MAX_BENCODE_DEPTH + 1))!, /nested deeper/);
});

test('fuzz: canonical bencode round-trips through the check and the decoder', async (t) => {
  const r = await fuzz('bencode round trip', valueArb(MAX_BENCODE_DEPTH - 1), (v) => {
    const bytes = bencode.encode(v);
    assert.equal(bencodeProblem(bytes), null);
    assert.deepEqual(bencode.encode(decodeBencode(bytes)), bytes);
  });
  t.diagnostic(`${r.runs} values in ${r.seconds.toFixed(1)} s`);
});

test('fuzz: any bytes either pass the check and decode, or are refused with a reason; nothing hangs', async (t) => {
  const input = fc.oneof(
    mutated(fc.constantFrom(...CORPUS), CORPUS, 1 << 16),
    fc.uint8Array({ maxLength: 256 }).map((a) => Buffer.from(a)),
    fc.string({ unit: fc.constantFrom(...'ilde0123456789:-abc'), maxLength: 200 }).map((s) => Buffer.from(s)),
    bencodeSoup,
  );
  let refused = 0;
  const r = await fuzz('bencode check', input, (buf) => {
    const problem = bencodeProblem(buf);
    if (problem === null) {
      // What passes decodes to exactly the bytes it came from: the check and the decoder agree.
      assert.deepEqual(Buffer.from(bencode.encode(decodeBencode(buf))), buf);
    } else {
      refused++;
      assert.equal(typeof problem, 'string');
      assert.throws(() => decodeBencode(buf), /malformed bencode/);
    }
  });
  t.diagnostic(`${r.runs} inputs (${refused} refused) in ${r.seconds.toFixed(1)} s`);
  assert.ok(refused > 0 && refused < r.runs, 'the inputs should mix valid and malformed bencode');
});
