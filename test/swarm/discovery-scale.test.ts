// mDNS traffic that stays flat as the LAN grows (RFC 6762 §7): answers the asker listed as known, questions another
// host just asked, answers enough others already gave, and lookups with enough peers are not sent. Real processes
// in network namespaces on a bridge, real multicast; a probe process hears everything and sends what a test needs.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { canUseNetns, createLan, type Lan, type LanHost } from '../support/netns.ts';
import { subtypeName } from '../../lib/swarm/ids.ts';
import { LanPeer } from './lan-peer.ts';

const skip = canUseNetns() ? false : 'needs root and working `ip netns`';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const newId = () => randomBytes(20).toString('hex');
const PROBE_SCRIPT = fileURLToPath(new URL('./fixtures/mdns-probe.ts', import.meta.url));

interface ProbeEvent {
  ev: 'ready' | 'packet' | 'ack';
  t: number;
  kind?: 'query' | 'response';
  from?: string;
  questions?: string[];
  answers?: [string, string | null, number][];
  cmd?: string;
}

/** test/swarm/fixtures/mdns-probe.ts in a host of the LAN. */
class LanProbe {
  readonly events: ProbeEvent[] = [];
  private readonly child: ChildProcess;
  private readonly listeners = new Set<() => void>();
  private stderr = '';

  constructor(lan: Lan, host: LanHost) {
    this.child = lan.spawn(host, process.execPath, [PROBE_SCRIPT, '--interface', host.address], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.events.push(JSON.parse(line) as ProbeEvent);
      for (const l of this.listeners) l();
    });
  }

  waitFor(what: string, pred: (e: ProbeEvent) => boolean, timeoutMs: number, from = 0): Promise<ProbeEvent> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.events.slice(from).find(pred);
        if (hit) done(() => resolve(hit));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`probe: no ${what} within ${timeoutMs} ms; stderr: ${this.stderr}`))), timeoutMs);
      const done = (f: () => void) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        f();
      };
      this.listeners.add(check);
      check();
    });
  }

  async command(c: Record<string, unknown>): Promise<void> {
    const from = this.events.length;
    this.child.stdin!.write(JSON.stringify(c) + '\n');
    await this.waitFor(`ack of ${c.cmd}`, (e) => e.ev === 'ack', 5000, from);
  }

  /** packets of a kind from an address about a subtype name (a question for it, or an answer), from index `from` on */
  packets(kind: 'query' | 'response', address: string, name: string, from = 0): ProbeEvent[] {
    return this.events.slice(from).filter((e) => e.ev === 'packet' && e.kind === kind && e.from === address && (kind === 'query' ? e.questions! : e.answers!.map((a) => a[0])).includes(name));
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((res) => this.child.once('exit', () => res()));
    this.child.stdin!.write(JSON.stringify({ cmd: 'stop' }) + '\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
}

describe('mDNS sends what the LAN does not already know', { skip }, () => {
  let lan: Lan;
  const running: { stop(): Promise<void> }[] = [];
  const peer = (i: number, port: number, args: string[]) => {
    const p = new LanPeer(lan, lan.hosts[i]!, port, args);
    running.push(p);
    return p;
  };
  const probe = async (i: number) => {
    const p = new LanProbe(lan, lan.hosts[i]!);
    running.push(p);
    await p.waitFor('ready', (e) => e.ev === 'ready', 10_000);
    return p;
  };
  const ready = (p: LanPeer) => p.waitFor('ready', (e) => e.ev === 'ready', 10_000);
  before(async () => {
    lan = await createLan({ hosts: 3 });
  });
  after(async () => {
    await Promise.all(running.map((p) => p.stop()));
    await lan?.destroy();
  });

  test('a responder listed as a known answer (with half its TTL left) stays silent; otherwise it answers', async () => {
    const A = newId();
    const name = subtypeName(Buffer.from(A, 'hex'));
    const responder = peer(0, 7000, ['--announce', A]);
    const { instance } = await ready(responder);
    const h0 = lan.hosts[0]!.address;
    const p = await probe(1);
    await sleep(1200); // past the start-up announcement and its one-second hold-off

    let from = p.events.length;
    await p.command({ cmd: 'query', name, known: [instance] });
    await sleep(1000);
    assert.deepEqual(p.packets('response', h0, name, from), [], 'it answered a query that listed its own answer');

    // a known answer with less than half the TTL left does not count (RFC 6762 §7.1)
    from = p.events.length;
    await p.command({ cmd: 'query', name, known: [instance], ttl: 30 });
    await p.waitFor('an answer to a stale known answer', (e) => p.packets('response', h0, name, from).includes(e), 2000, from);

    // another host's instance listed: ours is not, so it answers
    await sleep(1200);
    from = p.events.length;
    await p.command({ cmd: 'query', name, known: ['someone-else-7000-00000000._swarmpull._tcp.local'] });
    await p.waitFor('an answer', (e) => p.packets('response', h0, name, from).includes(e), 2000, from);
  });

  test('a host that hears another ask its question, with no known answers it lacks, does not ask it too', async () => {
    const B = newId();
    const C = newId();
    const h0 = lan.hosts[0]!.address;
    const p = await probe(1);
    const asker = peer(0, 7001, ['--lookup', B]);
    await ready(asker);
    // the probe asks B every 100 ms for 3 s: the asker's own back-off (0.25, 0.5, 1, 2 s) would ask 3-4 times more
    const from = p.events.length;
    for (const end = Date.now() + 3000; Date.now() < end; ) {
      await p.command({ cmd: 'query', name: subtypeName(Buffer.from(B, 'hex')) });
      await sleep(100);
    }
    const asked = p.packets('query', h0, subtypeName(Buffer.from(B, 'hex')), from);
    assert.ok(asked.length <= 1, `asked ${asked.length} times while another host asked the same: ${JSON.stringify(asked)}`);

    // the same, but the probe lists a known answer the asker lacks: its answers would leave that one out, so the
    // asker keeps asking
    const fromC = p.events.length;
    await asker.command('lookup', C);
    for (const end = Date.now() + 2500; Date.now() < end; ) {
      await p.command({ cmd: 'query', name: subtypeName(Buffer.from(C, 'hex')), known: ['someone-else-7000-00000000._swarmpull._tcp.local'] });
      await sleep(100);
    }
    const askedC = p.packets('query', h0, subtypeName(Buffer.from(C, 'hex')), fromC);
    assert.ok(askedC.length >= 3, `asked only ${askedC.length} times`);
  });

  test('a responder that hears enough others answer during its delay stays silent', async () => {
    const D = newId();
    const name = subtypeName(Buffer.from(D, 'hex'));
    const h0 = lan.hosts[0]!.address;
    // eight more addresses on host 1, each a responder of its own
    const net = lan.hosts[1]!.address.split('.').slice(0, 3).join('.');
    const others = Array.from({ length: 8 }, (_, i) => `${net}.${200 + i}`);
    for (const a of others) {
      const r = await lan.exec(1, 'ip', ['addr', 'add', `${a}/24`, 'dev', 'eth0']);
      assert.equal(r.code, 0, r.stderr);
    }
    const responder = peer(0, 7002, ['--announce', D]);
    await ready(responder);
    const p = await probe(1);
    await sleep(1200);

    let from = p.events.length;
    await p.command({ cmd: 'query', name, answerFrom: others });
    await sleep(1000);
    assert.equal(others.filter((a) => p.packets('response', a, name, from).length).length, 8, 'the probe did not hear its own answers');
    assert.deepEqual(p.packets('response', h0, name, from), [], 'it answered after eight others had');

    // seven are not enough
    await sleep(1200);
    from = p.events.length;
    await p.command({ cmd: 'query', name, answerFrom: others.slice(1) });
    await p.waitFor('an answer', (e) => p.packets('response', h0, name, from).includes(e), 2000, from);
  });

  test('a lookup that heard 16 peers does not ask (their answers are fresh)', async () => {
    const F = newId();
    const name = subtypeName(Buffer.from(F, 'hex'));
    const h0 = lan.hosts[0]!.address;
    const net = lan.hosts[1]!.address.split('.').slice(0, 3).join('.');
    const others = Array.from({ length: 16 }, (_, i) => `${net}.${220 + i}`);
    for (const a of others) {
      const r = await lan.exec(1, 'ip', ['addr', 'add', `${a}/24`, 'dev', 'eth0']);
      assert.equal(r.code, 0, r.stderr);
    }
    const p = await probe(1);
    const asker = peer(0, 7004, ['--lookup', F]);
    await ready(asker);
    await p.waitFor('a query', (e) => p.packets('query', h0, name).includes(e), 2000);
    await p.command({ cmd: 'answer', name, from: others.slice(0, 15) });
    await asker.waitFor('15 peers', () => asker.peers(F).size === 15, 3000);
    let from = p.events.length;
    await p.waitFor('a query with 15 peers known', (e) => p.packets('query', h0, name, from).includes(e), 6000, from);
    await p.command({ cmd: 'answer', name, from: others.slice(15) });
    await asker.waitFor('16 peers', () => asker.peers(F).size === 16, 3000);
    from = p.events.length;
    await sleep(4000); // its back-off (steps of 2 and 4 s by now) would have asked again
    assert.deepEqual(p.packets('query', h0, name, from), [], 'asked with 16 fresh peers known');
  });

  test('a lookup stops asking while it has enough peers, and asks again below the floor', async () => {
    const E = newId();
    const name = subtypeName(Buffer.from(E, 'hex'));
    const h0 = lan.hosts[0]!.address;
    const p = await probe(1);
    const asker = peer(0, 7003, ['--lookup', E]);
    await ready(asker);
    await p.waitFor('a query', (e) => p.packets('query', h0, name).includes(e), 2000);
    await sleep(300);

    await asker.command('connected', E, { peers: 8 });
    let from = p.events.length;
    await sleep(3000); // its back-off would have asked at least once more (1 s and 2 s steps)
    assert.deepEqual(p.packets('query', h0, name, from), [], 'asked with enough peers');

    await asker.command('connected', E, { peers: 5 }); // fewer, but not below the floor
    from = p.events.length;
    await sleep(1000);
    assert.deepEqual(p.packets('query', h0, name, from), [], 'asked again above the floor');

    await asker.command('connected', E, { peers: 3 });
    from = p.events.length;
    await p.waitFor('a query again', (e) => p.packets('query', h0, name, from).includes(e), 1000, from);
  });
});
