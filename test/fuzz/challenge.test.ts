// Fuzz: WWW-Authenticate headers from a registry (or anything pretending to be one).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExitCode } from '../../lib/errors.ts';
import { parseWwwAuthenticate, type Challenge } from '../../lib/registry/challenge.ts';
import { fc, fuzz, parsesOrRejects, textInputs } from './fuzz.ts';

const token = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}$/);
const quotable = fc.string({ unit: fc.constantFrom(...'ab:/?=,; "\\\t~é'.split('')), maxLength: 30 });
const value = fc.oneof(token.map((v) => ({ v, text: v })), quotable.map((v) => ({ v, text: `"${v.replace(/["\\]/g, (c) => '\\' + c)}"` })));
const challengeArb = fc.oneof(
  fc.record({
    scheme: token,
    params: fc.uniqueArray(fc.tuple(token, value), { maxLength: 5, selector: ([k]) => k.toLowerCase() }),
  }),
  fc.record({ scheme: token, token68: fc.stringMatching(/^[A-Za-z0-9\-._~+/]{1,20}=*$/) }),
);
const headerArb = fc.array(challengeArb, { minLength: 1, maxLength: 4 }).map((cs) => ({
  text: cs
    .map((c) => ('token68' in c ? `${c.scheme} ${c.token68}` : `${c.scheme}${c.params.length ? ' ' : ''}${c.params.map(([k, v]) => `${k}=${v.text}`).join(', ')}`))
    .join(', '),
  expected: cs.map((c): Challenge =>
    'token68' in c
      ? { scheme: c.scheme.toLowerCase(), params: {}, token68: c.token68 }
      : { scheme: c.scheme.toLowerCase(), params: Object.fromEntries(c.params.map(([k, v]) => [k.toLowerCase(), v.v])) },
  ),
}));

const CORPUS = [
  'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
  'Basic realm="registry"',
  'Negotiate dG9rZW4=, Basic realm="x"',
  'Bearer realm="https://a/token?x=1,y=2",error="say \\"no\\", \\\\ok"',
];

test('fuzz: well-formed WWW-Authenticate headers parse to exactly their challenges', async (t) => {
  const r = await fuzz('WWW-Authenticate round trip', headerArb, ({ text, expected }) => {
    assert.deepEqual(parseWwwAuthenticate(text), expected, text);
  });
  t.diagnostic(`${r.runs} headers in ${r.seconds.toFixed(1)} s`);
});

test('fuzz: any header parses to well-formed challenges or is rejected with exit 1', async (t) => {
  let parsed = 0;
  const anyHeader = textInputs(headerArb.map((h) => h.text), CORPUS, 20_000);
  const r = await fuzz('WWW-Authenticate', anyHeader, (header) => {
    const cs = parsesOrRejects(() => parseWwwAuthenticate(header), [ExitCode.failure], `header ${JSON.stringify(header.slice(0, 80))}`);
    if (!cs) return;
    parsed++;
    assert.ok(cs.length >= 1);
    for (const c of cs) {
      assert.match(c.scheme, /^[!#$%&'*+\-.^_`|~0-9a-z]+$/);
      for (const [k, v] of Object.entries(c.params)) {
        assert.match(k, /^[!#$%&'*+\-.^_`|~0-9a-z]+$/);
        assert.equal(typeof v, 'string');
      }
      assert.ok(Object.keys(c.params).length <= 64);
    }
  });
  t.diagnostic(`${r.runs} headers (${parsed} parsed) in ${r.seconds.toFixed(1)} s, slowest ${r.slowestMs.toFixed(1)} ms`);
});
