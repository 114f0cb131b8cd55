import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { swarmId, subtypeLabel, subtypeName, SERVICE } from '../../lib/swarm/ids.ts';

const ZERO = 'sha256:' + '0'.repeat(64);
const EMPTY = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

// Frozen vectors (computed once, cross-checked with Python's hashlib + base64.b32encode). If these change,
// new and old swarmpull versions no longer meet in the same swarm.
test('swarm ids are frozen', () => {
  assert.equal(swarmId(ZERO, 1048576).toString('hex'), '51bef708ed7df15fac93436abaf36d029462ed4b');
  assert.equal(swarmId(EMPTY, 2097152).toString('hex'), 'c36941c841f0ba363a73271b406f3c8f2ff789c4');
  assert.equal(subtypeLabel(swarmId(ZERO, 1048576)), 'kg7pochnpxyv7letinvlv43nakkgf3kl');
  assert.equal(subtypeName(swarmId(EMPTY, 2097152)), '_ynuudscb6c5dmotte4nua3z4r4x7pcoe._sub._swarmpull._tcp.local');
});

test('the id is sha256 over the three ASCII parts, concatenated, first 20 bytes', () => {
  const expected = createHash('sha256').update(`swarmpull-v1${EMPTY}4194304`).digest().subarray(0, 20);
  assert.deepEqual(swarmId(EMPTY, 4194304), expected);
  assert.equal(swarmId(EMPTY, 4194304).length, 20);
  // the piece length is part of the id
  assert.notDeepEqual(swarmId(EMPTY, 1048576), swarmId(EMPTY, 2097152));
});

test('bad input is refused', () => {
  assert.throws(() => swarmId('sha256:' + 'A'.repeat(64), 1048576), TypeError);
  assert.throws(() => swarmId('sha512:' + '0'.repeat(128), 1048576), TypeError);
  assert.throws(() => swarmId(EMPTY, 0), TypeError);
  assert.throws(() => swarmId(EMPTY, 1.5), TypeError);
  assert.throws(() => subtypeLabel(Buffer.alloc(19)), TypeError);
});

test('labels are RFC 4648 base32, lowercase, unpadded, 32 characters', () => {
  // RFC 4648 §10 test vector, uppercased there: BASE32("foobar") = "MZXW6YTBOI======"
  const foobarPadded = Buffer.concat([Buffer.from('foobar'), Buffer.alloc(14)]);
  assert.ok(subtypeLabel(foobarPadded).startsWith('mzxw6ytboi'));
  assert.equal(subtypeLabel(Buffer.alloc(20)), 'a'.repeat(32));
  assert.equal(subtypeLabel(Buffer.alloc(20, 0xff)), '7'.repeat(32));
  assert.equal(subtypeLabel(Buffer.from(Array.from({ length: 20 }, (_, i) => i))), 'aaaqeayeaudaocajbifqydiob4ibceqt');
  for (let i = 0; i < 200; i++) {
    const label = subtypeLabel(swarmId(EMPTY, 1 + i));
    assert.match(label, /^[a-z2-7]{32}$/);
  }
  const name = subtypeName(Buffer.alloc(20, 7));
  assert.ok(name.endsWith('._sub.' + SERVICE));
  assert.ok(name.split('.').every((l) => l.length <= 63));
});
