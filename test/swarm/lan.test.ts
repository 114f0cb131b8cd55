// The test LAN itself (test/support/netns.ts): addressing, reachability of the root namespace, isolation,
// tbf shaping, veth counters and a clean teardown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { canUseNetns, createLan } from '../support/netns.ts';

const skip = canUseNetns() ? false : 'needs root and working `ip netns`';
const BYTES = 2_500_000; // 20 Mbit: one second at the shaped rate

const server = (addr: string, bytes: number) => `
import { createServer } from 'node:net';
createServer((s) => s.end(Buffer.alloc(${bytes}))).listen(9000, '${addr}', () => console.log('listening'));`;
const client = (addr: string, port: number) => `
import { connect } from 'node:net';
const t0 = performance.now(); let n = 0;
connect(${port}, '${addr}').on('data', (d) => (n += d.length)).on('end', () => console.log(JSON.stringify({ n, ms: performance.now() - t0 })));`;

test('a shaped LAN: hosts reach each other and the bridge, nothing else, at the set rate', { skip }, async (t) => {
  const lan = await createLan({ hosts: 2, rateMbit: 20, withRegistryHost: true });
  const root = createServer((s) => s.end('hello from the root namespace'));
  try {
    assert.equal(lan.hosts.length, 2);
    assert.match(lan.subnet, /^10\.\d+\.\d+\.0\/24$/);
    assert.equal(lan.hosts[1]!.address, lan.subnet.replace(/0\/24$/, '11'));
    assert.equal(lan.registryHost!.address, lan.subnet.replace(/0\/24$/, '2'));
    const addr = await lan.exec(lan.registryHost!, 'ip', ['-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    assert.match(addr.stdout, new RegExp(`inet ${lan.registryHost!.address.replaceAll('.', '\\.')}/24`));

    // isolation: no default route, so anything outside the LAN is unreachable (and nothing is sent)
    const out = await lan.exec(0, 'ip', ['route', 'get', '192.0.2.1']);
    assert.notEqual(out.code, 0);

    // a process in the root namespace listening on the bridge address is reachable from a host
    root.listen(0, lan.bridgeAddress);
    await once(root, 'listening');
    const port = (root.address() as { port: number }).port;
    const hello = await lan.exec(1, process.execPath, ['--input-type=module', '-e', client(lan.bridgeAddress, port)], { timeoutMs: 10_000 });
    assert.equal(JSON.parse(hello.stdout).n, 'hello from the root namespace'.length, hello.stderr);

    // h0 → h1 through both shapers (h0's eth0 egress, then h1's root-side veth egress)
    const tx0 = lan.txBytes(0);
    const rx1 = lan.rxBytes(1);
    const srv = lan.spawn(0, process.execPath, ['--input-type=module', '-e', server(lan.hosts[0]!.address, BYTES)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(srv.stdout!, 'data');
    const res = await lan.exec(1, process.execPath, ['--input-type=module', '-e', client(lan.hosts[0]!.address, 9000)], { timeoutMs: 20_000 });
    const { n, ms } = JSON.parse(res.stdout) as { n: number; ms: number };
    const mbit = (n * 8) / ms / 1000;
    t.diagnostic(`${n} bytes in ${Math.round(ms)} ms = ${mbit.toFixed(1)} Mbit/s at 20 Mbit/s tbf`);
    assert.equal(n, BYTES);
    assert.ok(mbit > 14 && mbit < 22, `${mbit} Mbit/s`);
    assert.ok(lan.txBytes(0) - tx0 >= BYTES, 'h0 sent counter');
    assert.ok(lan.rxBytes(1) - rx1 >= BYTES, 'h1 received counter');
    assert.ok(lan.rxBytes(0) < lan.txBytes(0), 'h0 mostly sent');
  } finally {
    root.close();
    await lan.destroy();
  }
  // nothing of it is left
  assert.ok(!execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).includes(lan.tag));
  assert.ok(!execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' }).includes(lan.tag));
  assert.ok(!execFileSync('ip', ['-4', 'route'], { encoding: 'utf8' }).includes(lan.subnet.replace(/\.0\/24$/, '.')));
});
