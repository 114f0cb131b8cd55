import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWwwAuthenticate } from '../../lib/registry/challenge.ts';
import { SwarmpullError } from '../../lib/errors.ts';

test('Bearer challenge as distribution sends it', () => {
  const [c, ...rest] = parseWwwAuthenticate(
    'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
  );
  assert.equal(rest.length, 0);
  assert.deepEqual(c, {
    scheme: 'bearer',
    params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' },
  });
});

test('scheme and parameter names are case-insensitive; token values and spaces around "=" are accepted', () => {
  const [c] = parseWwwAuthenticate('BEARER Realm = "r" , SERVICE=svc.example');
  assert.equal(c!.scheme, 'bearer');
  assert.deepEqual(c!.params, { realm: 'r', service: 'svc.example' });
});

test('quoted strings keep commas, equals signs and escaped quotes', () => {
  const [c] = parseWwwAuthenticate(
    'Bearer realm="https://a/token?x=1,y=2",scope="repository:a:pull,push repository:b:pull",error="say \\"no\\", \\\\ok"',
  );
  assert.equal(c!.params.realm, 'https://a/token?x=1,y=2');
  assert.equal(c!.params.scope, 'repository:a:pull,push repository:b:pull');
  assert.equal(c!.params.error, 'say "no", \\ok');
});

test('several challenges in one header, and a bare scheme', () => {
  const cs = parseWwwAuthenticate('Negotiate, Basic realm="registry", Bearer realm="https://t/token",service="s"');
  assert.deepEqual(cs.map((c) => c.scheme), ['negotiate', 'basic', 'bearer']);
  assert.deepEqual(cs[1]!.params, { realm: 'registry' });
  assert.deepEqual(cs[2]!.params, { realm: 'https://t/token', service: 's' });
});

test('token68 form', () => {
  const cs = parseWwwAuthenticate('Negotiate dG9rZW4=, Basic realm="x"');
  assert.equal(cs[0]!.token68, 'dG9rZW4=');
  assert.deepEqual(cs[0]!.params, {});
  assert.equal(cs[1]!.params.realm, 'x');
  // "realm=" with no value is, by the grammar, a token68 (base64 padding), not a realm: the caller finds no realm.
  assert.deepEqual(parseWwwAuthenticate('Bearer realm='), [{ scheme: 'bearer', params: {}, token68: 'realm=' }]);
});

test('empty parameters between commas are skipped', () => {
  const [c] = parseWwwAuthenticate('Basic ,, realm="r" ,,');
  assert.deepEqual(c!.params, { realm: 'r' });
});

test('hostile and malformed inputs give a clear error, never a crash or a hang', () => {
  const bad = [
    '',
    '   ',
    ',,,',
    '=',
    '"realm"',
    'Bearer realm="unterminated',
    'Bearer realm="ends with backslash\\',
    'Bearer realm=,service=x',
    'Bearer realm="a" service="b"',
    'Bearer realm="a",realm="b"',
    'Bearer realm="a\u0000b"',
    'Bearer realm="line\r\nX-Injected: 1"',
    'Bearer =x',
    'Bearer realm="a",=b',
    '\u00e9t\u00e9 realm="x"',
    'Bearer ' + 'a=b,'.repeat(100),
    'x'.repeat(20_000),
    'Bearer realm="' + '\\"'.repeat(5000),
  ];
  for (const h of bad) {
    assert.throws(() => parseWwwAuthenticate(h), (err: unknown) => {
      assert.ok(err instanceof SwarmpullError, `not a SwarmpullError for ${JSON.stringify(h.slice(0, 40))}`);
      assert.match(err.message, /^malformed WWW-Authenticate header from the registry: /);
      assert.ok(!err.message.includes('\n'));
      return true;
    });
  }
});

test('long pathological inputs are parsed in linear time', () => {
  const t0 = performance.now();
  const long = 'Basic ' + ',' .repeat(8000) + ' realm="' + 'a'.repeat(7000) + '"';
  assert.equal(parseWwwAuthenticate(long)[0]!.params.realm!.length, 7000);
  assert.throws(() => parseWwwAuthenticate('Bearer ' + 'a'.repeat(15_000) + ' b'));
  assert.throws(() => parseWwwAuthenticate('Bearer realm="' + 'a'.repeat(15_000)));
  assert.ok(performance.now() - t0 < 500);
});
