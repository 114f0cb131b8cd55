import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePeers, parsePeersText, readPeersFile } from '../../lib/swarm/static-peers.ts';
import { SwarmpullError } from '../../lib/errors.ts';

const usage = (re: RegExp) => (err: unknown) => err instanceof SwarmpullError && err.exitCode === 2 && re.test(err.message);

test('--peers: IPv4, names and bracketed IPv6', () => {
  assert.deepEqual(parsePeers('10.0.0.5:6881, web1.example.com:7000,[fd00::1]:6882,,'), [
    { host: '10.0.0.5', port: 6881 },
    { host: 'web1.example.com', port: 7000 },
    { host: 'fd00::1', port: 6882 },
  ]);
  assert.deepEqual(parsePeers('a:1,a:1,A:1'), [{ host: 'a', port: 1 }]);
  assert.deepEqual(parsePeers('node7', 6881), [{ host: 'node7', port: 6881 }]);
  assert.deepEqual(parsePeers(''), []);
});

test('--peers: clear errors', () => {
  assert.throws(() => parsePeers('node7'), usage(/"node7": expected host:port/));
  assert.throws(() => parsePeers('a:0'), usage(/bad port "0"/));
  assert.throws(() => parsePeers('a:65536'), usage(/bad port/));
  assert.throws(() => parsePeers('a:12x'), usage(/bad port/));
  assert.throws(() => parsePeers('fd00::1:6881'), usage(/IPv6 addresses need brackets/));
  assert.throws(() => parsePeers('[zz::1]:1'), usage(/not an IPv6 address/));
  assert.throws(() => parsePeers('999.1.1.1:1'), usage(/not a valid IPv4/));
  assert.throws(() => parsePeers('bad host:1'), usage(/not a valid host name/));
  assert.throws(() => parsePeers('-x:1'), usage(/not a valid host name/));
});

test('plain peers file: comments, blanks, host and host:port', () => {
  const text = '# fleet\n\n10.0.0.1:7000\n  10.0.0.2   # default port\n[fd00::2]:7001\r\n[fd00::3]\nweb3\n; also a comment\n';
  assert.deepEqual(parsePeersText(text, 'f', 6881), [
    { host: '10.0.0.1', port: 7000 },
    { host: '10.0.0.2', port: 6881 },
    { host: 'fd00::2', port: 7001 },
    { host: 'fd00::3', port: 6881 },
    { host: 'web3', port: 6881 },
  ]);
  assert.throws(() => parsePeersText('a:1\nweb3\n', 'peers.txt'), usage(/^peers\.txt:2: "web3": expected host:port$/));
  assert.throws(() => parsePeersText('a:1\nb c\n', 'peers.txt'), usage(/^peers\.txt:2: /));
});

test('Ansible INI inventory', () => {
  const inventory = `
# production
mail.example.com

[web]
web1 ansible_host=10.0.0.5
web2 ansible_host="10.0.0.6" ansible_port=2222   # ssh port, not ours
web3.example.com:2222
web[05:07].example.com ansible_user=deploy

[db]
db1 ansible_host=10.0.1.1 swarmpull_port=7001
db-[a:b]

[web:vars]
ansible_user=deploy
http_port=80

[prod:children]
web
db
`;
  assert.deepEqual(parsePeersText(inventory, 'hosts.ini', 6881), [
    { host: 'mail.example.com', port: 6881 },
    { host: '10.0.0.5', port: 6881 },
    { host: '10.0.0.6', port: 6881 },
    { host: 'web3.example.com', port: 6881 },
    { host: 'web05.example.com', port: 6881 },
    { host: 'web06.example.com', port: 6881 },
    { host: 'web07.example.com', port: 6881 },
    { host: '10.0.1.1', port: 7001 },
    { host: 'db-a', port: 6881 },
    { host: 'db-b', port: 6881 },
  ]);
});

test('inventory errors name the line', () => {
  assert.throws(() => parsePeersText('[web]\nweb1 ansible_host=10.0.0.5\n', 'inv'), usage(/^inv:2: no port for "web1"/));
  assert.throws(() => parsePeersText('[web]\nweb1 ansible_host=999.0.0.5\n', 'inv', 1), usage(/^inv:2: "999\.0\.0\.5": not a valid IPv4/));
  assert.throws(() => parsePeersText('[web]\nweb1 swarmpull_port=http\n', 'inv', 1), usage(/^inv:2: bad swarmpull_port "http"/));
  assert.throws(() => parsePeersText('[web]\nweb1 oops\n', 'inv', 1), usage(/^inv:2: expected key=value/));
  assert.throws(() => parsePeersText('[web\nweb1\n', 'inv', 1), usage(/^inv:1: malformed section header/));
  assert.throws(() => parsePeersText('[web]\nw[1:99999999]\n', 'inv', 1), usage(/^inv:2: range too large/));
  // past 2^53 a loop step would not move (found by the fuzzer: it grew an array until it failed)
  assert.throws(() => parsePeersText(`[web]\nw[${'1'.repeat(30)}:${'1'.repeat(29)}2]\n`, 'inv', 1), usage(/^inv:2: range too large/));
  assert.throws(() => parsePeersText('all:\n  hosts:\n', 'inv.yml', 1), usage(/YAML inventories are not supported/));
});

test('readPeersFile reads a file and reports a missing one', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'swarmpull-peers-'));
  try {
    await writeFile(join(dir, 'peers'), '10.0.0.1:7000\n');
    assert.deepEqual(await readPeersFile(join(dir, 'peers')), [{ host: '10.0.0.1', port: 7000 }]);
    await assert.rejects(readPeersFile(join(dir, 'nope'), 6881), usage(/nope: ENOENT/));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
