// End to end, peers that must not be trusted: a seeder that serves corrupted pieces (caught at verification,
// repaired from the registry, banned), and hosts of another private swarm (--swarm-key).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createSwarmLan, ok, skipWithoutNetns, MiB, type SwarmLan } from './swarm-lan.ts';

const skip = skipWithoutNetns;
const CORRUPT_SEEDER = fileURLToPath(new URL('./fixtures/corrupt-seeder.ts', import.meta.url));

describe('peers not to be trusted', { skip }, () => {
  let s: SwarmLan;
  let hostile: ChildProcess | undefined;
  before(async () => {
    s = await createSwarmLan({ hosts: 4, rateMbit: 50, layers: [3 * MiB, 5 * MiB], seed: 'trust' });
  });
  after(async () => {
    hostile?.kill('SIGKILL');
    await s?.destroy();
  });

  test('a seeder serving corrupt pieces is caught at verification and banned, the honest one is not; the image is right', async (t) => {
    // h2 is an honest seeder: it pulled the image and serves it.
    ok(await s.pull(2, ['--no-mdns'], { store: 'honest' }).done, 'h2');
    const honest = s.serve(2, ['--no-mdns'], { store: 'honest' });
    await honest.waitForStderr(/serving \d+ blobs/, 20_000);
    // h1 claims to hold every blob and flips a byte in every other piece it sends.
    hostile = s.lan.spawn(1, process.execPath, [CORRUPT_SEEDER, '--layout', s.image.layoutDir, '--port', '7881', '--corrupt-every', '2'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const events: { ev: string; host?: string; why?: string }[] = [];
    const lines = createInterface({ input: hostile.stdout! });
    lines.on('line', (l) => events.push(JSON.parse(l)));
    await once(lines, 'line'); // listening

    const r = s.pull(0, ['--no-mdns', '--peers', `${s.hosts[1]!.address},${s.hosts[2]!.address}`]);
    const j = ok(await r.done, 'h0');
    await s.validate(r);
    const bans = r.stderr.split('\n').filter((l) => l.includes('banning peer'));
    t.diagnostic(`${j.bytes.peers} bytes from the two seeders, ${j.bytes.registry} from the registry (the repair checks every piece peers sent); ${bans.length} ban lines, e.g. ${bans[0]}`);
    assert.ok(j.bytes.peers > 0, 'the seeders were never used: nothing was tested');
    assert.equal(j.peers.used, 2, `both seeders should have sent pieces: ${JSON.stringify(j.peers)}`);
    assert.ok(bans.length >= 1, r.stderr);
    assert.ok(bans.every((l) => l.includes(`banning peer ${s.hosts[1]!.address}:`)), `only the bad seeder may be banned:\n${bans.join('\n')}`);
    // Each blob bans the seeder once, however many of its pieces were bad; for that blob alone, as it never vouched
    // for its pieces (an honest host forwarding a piece before its blob verifies looks just the same).
    assert.ok(bans.length <= 3, bans.join('\n'));
    assert.ok(bans.every((l) => l.endsWith('(this blob)')), bans.join('\n'));
    assert.ok(events.some((e) => e.ev === 'close' && /banned|closed/.test(e.why ?? '')), JSON.stringify(events));
  });

  /** h1: a corrupt seeder on port 7881 (h2 must serve honestly); its JSON events. */
  async function corruptSeeder(args: string[]): Promise<{ ev: string; host?: string; why?: string }[]> {
    hostile?.kill('SIGKILL');
    if (hostile) await once(hostile, 'exit');
    hostile = s.lan.spawn(1, process.execPath, [CORRUPT_SEEDER, '--layout', s.image.layoutDir, '--port', '7881', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    const events: { ev: string; host?: string; why?: string }[] = [];
    const lines = createInterface({ input: hostile.stdout! });
    lines.on('line', (l) => events.push(JSON.parse(l)));
    await once(lines, 'line'); // listening
    return events;
  }

  test('a seeder that vouches for corrupt pieces: banned for every blob; the repair costs the registry about the bad pieces', async (t) => {
    ok(await s.pull(2, ['--no-mdns'], { store: 'honest-v' }).done, 'h2');
    const honest = s.serve(2, ['--no-mdns'], { store: 'honest-v' });
    await honest.waitForStderr(/serving \d+ blobs/, 20_000);
    // one piece in four corrupted, vouched for as an honest seeder vouches for its verified blobs
    await corruptSeeder(['--corrupt-every', '4', '--vouch']);
    const r = s.pull(0, ['--no-mdns', '--peers', `${s.hosts[1]!.address},${s.hosts[2]!.address}`], { store: 'victim-v' });
    const j = ok(await r.done, 'h0');
    await s.validate(r);
    honest.proc.kill('SIGTERM');
    const bans = r.stderr.split('\n').filter((l) => l.includes('banning peer'));
    t.diagnostic(`${j.bytes.peers} bytes from peers, ${j.bytes.registry} from the registry for a ${s.image.size}-byte image; ${bans.join(' | ')}`);
    assert.ok(j.bytes.peers > 0, 'the seeders were never used: nothing was tested');
    assert.ok(bans.length >= 1 && bans.every((l) => l.includes(`banning peer ${s.hosts[1]!.address}:`) && l.endsWith('(every blob)')), r.stderr);
    // The honest seeder vouches for every piece: only the pieces it disagrees on are asked of the registry (a quarter
    // of the corrupt seeder's share, at most half the image), not every piece peers sent.
    assert.ok(j.bytes.registry < s.image.size / 2, `the registry sent ${j.bytes.registry} bytes of ${s.image.size}`);
  });

  test('a seeder that vouches for its corrupt pieces with matching hashes, and no one to dispute them: the second repair checks every piece', async (t) => {
    await corruptSeeder(['--corrupt-every', '4', '--vouch']);
    const r = s.pull(0, ['--no-mdns', '--peers', s.hosts[1]!.address], { store: 'victim-l' });
    const j = ok(await r.done, 'h0');
    await s.validate(r);
    const bans = r.stderr.split('\n').filter((l) => l.includes('banning peer'));
    t.diagnostic(`${j.bytes.peers} bytes from the liar, ${j.bytes.registry} from the registry; ${bans.join(' | ')}`);
    assert.ok(j.bytes.peers > 0, 'the seeder was never used: nothing was tested');
    assert.ok(bans.length >= 1 && bans.every((l) => l.includes(`banning peer ${s.hosts[1]!.address}:`) && l.endsWith('(every blob)')), r.stderr);
  });

  test('registry down: a corrupt seeder with a fresh id on every connection cannot fail the pull', async (t) => {
    ok(await s.pull(2, ['--no-mdns'], { store: 'honest-d' }).done, 'h2');
    const honest = s.serve(2, ['--no-mdns'], { store: 'honest-d' });
    await honest.waitForStderr(/serving \d+ blobs/, 20_000);
    await corruptSeeder(['--corrupt-every', '2', '--fresh-ids']);
    const r = s.pull(0, ['--no-mdns', '--no-registry', '--peers', `${s.hosts[1]!.address},${s.hosts[2]!.address}`], { store: 'victim-d' });
    const j = ok(await r.done, 'h0');
    await s.validate(r);
    honest.proc.kill('SIGTERM');
    const bans = r.stderr.split('\n').filter((l) => l.includes('banning peer'));
    t.diagnostic(`${j.bytes.peers} bytes from peers; ${bans.join(' | ')}`);
    assert.equal(j.bytes.registry, 0);
    assert.ok(bans.length >= 1 && bans.every((l) => l.includes(`banning peer ${s.hosts[1]!.address}:`)), r.stderr);
  });

  test('hosts with different swarm keys exchange nothing; with the same key they do', async (t) => {
    const keyA = join(s.work, 'key-a');
    const keyB = join(s.work, 'key-b');
    await writeFile(keyA, 'first-swarm-key-0123456789abcdef\n');
    await writeFile(keyB, 'other-swarm-key-0123456789abcdef\n');

    const apart = await Promise.all([
      s.pull(2, ['--swarm-key', keyA], { store: 'a' }).done,
      s.pull(3, ['--swarm-key', keyB], { store: 'b' }).done,
    ]);
    for (const [i, o] of apart.entries()) {
      const j = ok(o, `h${i + 2}`);
      assert.equal(j.bytes.peers, 0, o.stderr);
      assert.equal(j.bytes.registry, s.image.size);
      assert.equal(j.peers.seen, 0);
    }
    // They did find each other (mDNS) and were refused at the key check: the test above tested something.
    assert.match(apart.map((o) => o.stderr).join('\n'), /swarm key proof failed/);

    const together = await Promise.all([
      s.pull(2, ['--swarm-key', keyA], { store: 'c' }).done,
      s.pull(3, ['--swarm-key', keyA], { store: 'd' }).done,
    ]);
    const js = together.map((o, i) => ok(o, `h${i + 2}`));
    t.diagnostic(`same key: from peers ${js.map((j) => j.bytes.peers).join(', ')}; different keys: 0, 0`);
    // Each knows the other; which of them got pieces from the other depends on who started first.
    for (const [i, j] of js.entries()) assert.equal(j.peers.seen, 1, `h${i + 2}: ${JSON.stringify(j.peers)}\n${together[i]!.stderr}`);
    assert.ok(js[0]!.bytes.peers + js[1]!.bytes.peers > 0, together.map((o) => o.stderr).join('\n'));
  });
});
