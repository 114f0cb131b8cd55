// Fuzz: `--peers` lists and `--peers-file` files (plain lists and Ansible INI inventories).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIPv4, isIPv6 } from 'node:net';
import { ExitCode } from '../../lib/errors.ts';
import { parsePeers, parsePeersText, type StaticPeer } from '../../lib/swarm/static-peers.ts';
import { fc, fuzz, parsesOrRejects, textInputs } from './fuzz.ts';

const HOST_NAME = /^(?!-)[a-z0-9_-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9_-]{1,63}(?<!-))*\.?$/i;

function assertPeers(peers: StaticPeer[], what: string): void {
  const seen = new Set<string>();
  for (const p of peers) {
    assert.ok(isIPv4(p.host) || isIPv6(p.host) || (HOST_NAME.test(p.host) && p.host.length <= 253), `${what}: host ${JSON.stringify(p.host)}`);
    assert.ok(Number.isInteger(p.port) && p.port >= 1 && p.port <= 65535, `${what}: port ${p.port}`);
    const key = `${p.host.toLowerCase()}|${p.port}`;
    assert.ok(!seen.has(key), `${what}: ${key} twice`);
    seen.add(key);
  }
}

const ipv4 = fc.ipV4();
const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9](?:\.[a-z]{2,5}){0,2}$/);
const port = fc.integer({ min: 1, max: 65535 });
const entry = fc.oneof(
  fc.tuple(fc.oneof(ipv4, name), fc.option(port)).map(([h, p]) => (p ? `${h}:${p}` : h)),
  fc.tuple(fc.ipV6(), port).map(([h, p]) => `[${h}]:${p}`),
);
const list = fc.array(entry, { minLength: 1, maxLength: 6 }).map((es) => es.join(','));
const inventoryLine = fc.oneof(
  entry.filter((e) => !e.startsWith('[')),
  fc.tuple(name, fc.option(ipv4), fc.option(port)).map(([n, a, p]) => `${n}${a ? ` ansible_host=${a}` : ''}${p ? ` swarmpull_port=${p}` : ''}`),
  fc.tuple(fc.stringMatching(/^[a-z]{1,5}$/), fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 20 })).map(([n, a, b]) => `${n}[${String(a).padStart(2, '0')}:${b}].lan`),
  fc.constantFrom('[web]', '[db:vars]', '[all:children]', 'ansible_user=x', '# comment', '; comment', '', '   '),
);
const file = fc.array(inventoryLine, { maxLength: 12 }).map((ls) => ls.join('\n'));
const CORPUS = ['10.0.0.1:7881,10.0.0.2', '[web]\nweb[01:03].lan ansible_host=10.0.0.5 swarmpull_port=7000\n[web:vars]\nx=1', 'a.example:1\n# c\nb.example'];

test('fuzz: --peers lists parse to valid, distinct peers or a usage error (exit 2)', async (t) => {
  let parsed = 0;
  const r = await fuzz('--peers', textInputs(list, CORPUS, 4000), (input) => {
    for (const defaultPort of [undefined, 7881]) {
      const peers = parsesOrRejects(() => parsePeers(input, defaultPort), [ExitCode.usage], `--peers ${JSON.stringify(input.slice(0, 80))}`);
      if (peers) {
        parsed++;
        assertPeers(peers, '--peers');
      }
    }
  });
  t.diagnostic(`${r.runs} lists (${parsed} parses) in ${r.seconds.toFixed(1)} s`);
});

test('fuzz: peers files and inventories parse to valid, distinct peers or a usage error (exit 2)', async (t) => {
  let parsed = 0;
  let most = 0;
  const r = await fuzz('--peers-file', textInputs(file, CORPUS, 20_000), (text) => {
    const peers = parsesOrRejects(() => parsePeersText(text, 'peers.txt', 7881), [ExitCode.usage], `peers file ${JSON.stringify(text.slice(0, 80))}`);
    if (!peers) return;
    parsed++;
    most = Math.max(most, peers.length);
    assertPeers(peers, 'peers file');
  });
  t.diagnostic(`${r.runs} files (${parsed} parsed, at most ${most} peers) in ${r.seconds.toFixed(1)} s, slowest ${r.slowestMs.toFixed(1)} ms`);
});
