// The address policy for what peers and mDNS tell us (lib/swarm/candidates.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DialBudget, dialableFromNetwork, onLink, REDIAL_MS } from '../../lib/swarm/candidates.ts';

test('only plain unicast IPv4 addresses are dialable from the network', () => {
  for (const a of ['10.0.0.1', '192.168.1.20', '172.16.5.4', '169.254.1.1', '223.255.255.254']) assert.ok(dialableFromNetwork(a), a);
  for (const a of ['127.0.0.1', '127.9.9.9', '0.0.0.0', '0.1.2.3', '255.255.255.255', '224.0.0.251', '239.1.2.3', '240.0.0.1', 'fd00::1', 'host.local', '']) {
    assert.ok(!dialableFromNetwork(a), a);
  }
});

test('on-link: in the subnet of an interface address and netmask', () => {
  const iface = { address: '10.1.2.10', netmask: '255.255.255.0' };
  assert.ok(onLink('10.1.2.200', iface));
  assert.ok(!onLink('10.1.3.1', iface));
  assert.ok(!onLink('10.99.0.1', iface));
  assert.ok(onLink('10.1.9.9', { address: '10.1.2.10', netmask: '255.255.0.0' }));
  assert.ok(!onLink('10.1.2.11', { address: '10.1.2.10', netmask: '255.255.255.255' }));
  assert.ok(!onLink('not an address', iface));
});

test('dial budget: a burst per source, then a trickle; one dial per address and swarm per period', () => {
  const b = new DialBudget();
  const t0 = 1_000_000;
  let allowed = 0;
  for (let i = 0; i < 100; i++) if (b.allow('peer', 'swarm', `10.0.0.${i}:7000`, t0)) allowed++;
  assert.equal(allowed, 32);
  // another source has a budget of its own
  assert.ok(b.allow('other', 'swarm', '10.0.1.1:7000', t0));
  // 2 a second come back
  assert.ok(b.allow('peer', 'swarm', '10.0.2.1:7000', t0 + 500));
  assert.ok(!b.allow('peer', 'swarm', '10.0.2.2:7000', t0 + 500));
  // the same address for the same swarm: not again within REDIAL_MS, whoever names it; another swarm may
  assert.ok(!b.allow('third', 'swarm', '10.0.1.1:7000', t0 + REDIAL_MS - 1));
  assert.ok(b.allow('third', 'swarm2', '10.0.1.1:7000', t0 + 1));
  assert.ok(b.allow('third', 'swarm', '10.0.1.1:7000', t0 + REDIAL_MS));
});
