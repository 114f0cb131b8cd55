// A seeder's memory against leechers that ask for much and take little: a real `swarmpull serve` seeding a 256 MiB
// blob, eight raw-wire connections from another address that each ask for 512 blocks of different pieces and then
// never read (or read, and keep asking for blocks of random pieces). The serve process's peak RSS (VmHWM) stays
// under 200 MB, and an honest pull of the same blob from the same seeder, during the attack, completes.
// Loopback, no root: the image is pinned by digest and its registry is a closed port, so the pull takes the
// manifest and every blob from the seeder (the offline path).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pieceLayout } from '../../lib/store/pieces.ts';
import { swarmId } from '../../lib/swarm/ids.ts';
import { runCli, servingPort, startCli } from '../support/cli.ts';
import { stopProcess } from '../support/registry.ts';
import { GreedyLeecher, type Greed } from './fixtures/greedy-leecher.ts';

const MiB = 1 << 20;
const BLOB_SIZE = 256 * MiB;
const ATTACKERS = 8;
/** the goal: 8 such connections keep a seeder of a 256 MiB-1 GiB blob under this */
const MAX_PEAK_RSS = 200 * 1000 * 1000;
/** how long the attack runs before the honest pull starts: the seeder has read and queued what it will */
const ATTACK_MS = 4_000;
/** a peer whose socket takes none of its answers for this long is dropped (lib/swarm/peer.ts) */
const UPLOAD_STALL_MS = 30_000;

let work: string;
let store: string;
let blob: { digest: string; size: number };
let pinned: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'swarmpull-seeder-memory-'));
  store = join(work, 'store');
  const blobs = join(store, 'blobs/sha256');
  await mkdir(blobs, { recursive: true });
  blob = await writeRandomBlob(blobs, BLOB_SIZE);
  const put = async (body: Buffer) => {
    const hex = createHash('sha256').update(body).digest('hex');
    await writeFile(join(blobs, hex), body);
    return { digest: `sha256:${hex}`, size: body.length };
  };
  const config = await put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [blob.digest] } })));
  const manifest = await put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...blob }],
      }),
    ),
  );
  // A registry that refuses every connection: the pull resolves the pinned digest from peers.
  pinned = `127.0.0.1:${await closedPort()}/memory/app@${manifest.digest}`;
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Random bytes written a MiB at a time and hashed on the way (about a second for 256 MiB). */
async function writeRandomBlob(dir: string, size: number): Promise<{ digest: string; size: number }> {
  const tmp = join(dir, 'tmp-blob');
  const hash = createHash('sha256');
  const file = await open(tmp, 'w');
  try {
    for (let at = 0; at < size; at += MiB) {
      const chunk = randomBytes(Math.min(MiB, size - at));
      hash.update(chunk);
      await file.write(chunk);
    }
  } finally {
    await file.close();
  }
  const hex = hash.digest('hex');
  await rm(join(dir, hex), { force: true });
  await import('node:fs/promises').then((fs) => fs.rename(tmp, join(dir, hex)));
  return { digest: `sha256:${hex}`, size };
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** `swarmpull serve` of the store; resolves once it serves, with its port */
async function serve(): Promise<{ proc: ChildProcess; port: number; stderr: () => string }> {
  const proc = startCli(['serve', '--no-mdns', '--port', '0', '--store', store, '--debug']);
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-200_000)));
  const port = await servingPort(proc, 30_000);
  return { proc, port, stderr: () => stderr };
}

/** the peak resident set of a process so far (VmHWM), in bytes */
async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)![1]) * 1024;
}

const mb = (n: number) => `${(n / 1e6).toFixed(0)} MB`;

for (const greed of ['no-read', 'spread'] as Greed[]) {
  test(`${ATTACKERS} connections that ask for 512 blocks of different pieces and ${greed === 'no-read' ? 'never read' : 'keep asking'}: the seeder stays under ${mb(MAX_PEAK_RSS)}, an honest pull completes`, async (t) => {
    const seeder = await serve();
    const attackers: GreedyLeecher[] = [];
    try {
      const idle = await peakRss(seeder.proc.pid!);
      const { pieceLength, count } = pieceLayout(blob.size);
      const infoHash = swarmId(blob.digest, pieceLength);
      for (let i = 0; i < ATTACKERS; i++) {
        attackers.push(new GreedyLeecher({ port: seeder.port, infoHash, pieceLength, pieceCount: count, greed, localAddress: '127.0.0.2' }));
      }
      await Promise.all(attackers.map((a) => a.attack()));
      const attackStart = Date.now();
      await new Promise((r) => setTimeout(r, ATTACK_MS));
      const underAttack = await peakRss(seeder.proc.pid!);

      const oci = join(work, `oci-${greed}`);
      const pull = await runCli(
        ['pull', pinned, '--oci', oci, '--store', join(work, `store-${greed}`), '--no-mdns', '--port', '0', '--peers', `127.0.0.1:${seeder.port}`, '--plain-http', '--json', '-q', '--linger', '0'],
        { timeoutMs: 240_000 },
      );
      const peak = await peakRss(seeder.proc.pid!);
      const received = attackers.reduce((n, a) => n + a.received, 0);
      t.diagnostic(`seeder peak RSS: ${mb(idle)} idle, ${mb(underAttack)} after ${ATTACK_MS / 1000} s of attack, ${mb(peak)} after the honest pull`);
      t.diagnostic(`attackers: ${received} blocks received`);
      assert.equal(pull.code, 0, `the honest pull failed:\n${pull.stderr.slice(-3000)}`);
      const json = JSON.parse(pull.stdout) as { bytes: { peers: number; registry: number } };
      assert.equal(json.bytes.registry, 0);
      assert.ok(json.bytes.peers >= blob.size, `${json.bytes.peers} bytes from peers`);
      assert.ok(peak < MAX_PEAK_RSS, `the seeder's peak RSS was ${mb(peak)}`);
      if (greed === 'no-read') {
        // What they hold is given back: each is dropped once its socket took none of its answers for 30 s (and the
        // address that broke a bound is left alone: its other connections go with the first). The attackers do not
        // read, so they do not notice: the seeder's log tells.
        const closes = () => seeder.stderr().split('\n').filter((l) => / peer 127\.0\.0\.2 closed: /.test(l));
        const dropped = () => closes().length;
        const until = attackStart + UPLOAD_STALL_MS + 10_000;
        while (dropped() < ATTACKERS && Date.now() < until) await new Promise((r) => setTimeout(r, 250));
        t.diagnostic(`${dropped()} of ${ATTACKERS} dropped ${((Date.now() - attackStart) / 1000).toFixed(0)} s after the attack began`);
        assert.equal(dropped(), ATTACKERS, 'a connection that never reads was kept');
        assert.ok(closes().some((l) => /took none of our answers for 30 s/.test(l)), closes().join('\n'));
      }
    } finally {
      for (const a of attackers) a.close();
      await stopProcess(seeder.proc);
    }
  });
}
