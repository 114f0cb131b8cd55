// Private swarms against a real `swarmpull serve --swarm-key`, attacked over TCP by a peer without the key
// (scripted byte by byte with test/support/bt-wire.ts): it must learn nothing of the blob, not even its size,
// however it plays back the seeder's own nonces and proofs. A pull that holds the key still gets every byte.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bencode from 'bencode';
import { pieceLength } from '../../lib/store/pieces.ts';
import { swarmId } from '../../lib/swarm/ids.ts';
import { startRegistry, stopProcess, type Registry } from '../support/registry.ts';
import { buildImage, pushImage, type FixtureImage } from '../support/fixtures.ts';
import { runCli, servingPort, startCli } from '../support/cli.ts';
import { extended, handshake, Msg, SWARMPULL_EXT_ID, WireReader, type WireMessage } from '../support/bt-wire.ts';

const MiB = 1 << 20;

/** One raw connection to the seeder: what it said, in order. */
class RawPeer {
  readonly socket: Socket;
  readonly messages: WireMessage[] = [];
  closed = false;
  private waiters: (() => void)[] = [];
  /** `from`: a loopback address of its own, as another host would have (the seeder penalizes addresses) */
  constructor(port: number, infoHash: Buffer, from: string) {
    this.socket = connect({ host: '127.0.0.1', port, localAddress: from });
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    WireReader.attach(this.socket, (m) => {
      this.messages.push({ id: m.id, body: Buffer.from(m.body) });
      this.wake();
    });
    this.socket.write(handshake(infoHash));
  }
  private wake() {
    for (const w of this.waiters.splice(0)) w();
  }
  /** the first message matching `f`, waiting up to 5 s */
  async next(f: (m: WireMessage) => boolean): Promise<WireMessage | undefined> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const m = this.messages.find(f);
      if (m || this.closed || Date.now() > deadline) return m;
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }
  async extHandshake(): Promise<Record<string, unknown>> {
    const m = await this.next((m) => m.id === Msg.extended && m.body[0] === 0);
    assert.ok(m, 'the seeder sent no extension handshake');
    return bencode.decode(m.body.subarray(1)) as Record<string, unknown>;
  }
  async authMac(): Promise<Uint8Array> {
    const m = await this.next((m) => m.id === Msg.extended && m.body[0] === SWARMPULL_EXT_ID);
    assert.ok(m, 'the seeder sent no proof');
    return (bencode.decode(m.body.subarray(1)) as { mac: Uint8Array }).mac;
  }
  /** our extension handshake, with the nonce of our choice */
  sayNonce(nonce: Uint8Array) {
    this.socket.write(extended(0, { m: { swarmpull: SWARMPULL_EXT_ID }, p: 7000, v: 'swarmpull', nonce, key: 1 }));
  }
  sayProof(mac: Uint8Array) {
    this.socket.write(extended(SWARMPULL_EXT_ID, { t: 'auth', mac }));
  }
  /** what the seeder told of the blob: a bitfield, have-all, have, or any extension message past its proof */
  get leaked(): string[] {
    const proofs = this.messages.filter((m) => m.id === Msg.extended && m.body[0] === SWARMPULL_EXT_ID).slice(1);
    const about = this.messages.filter((m) => ([Msg.bitfield, Msg.haveAll, Msg.have, Msg.unchoke] as number[]).includes(m.id));
    return [...about.map((m) => `message ${m.id}`), ...proofs.map((m) => `extension message ${(bencode.decode(m.body.subarray(1)) as { t?: unknown }).t}`)];
  }
  async waitClosed(): Promise<boolean> {
    await this.next(() => false);
    return this.closed;
  }
}

describe('swarm key: a peer without it gets nothing', () => {
  let work: string;
  let registry: Registry;
  let image: FixtureImage;
  let ref: string;
  let seeded: string;
  let keyFile: string;
  let server: ChildProcess;
  let port: number;
  let infoHash: Buffer;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'swarmpull-key-'));
    registry = await startRegistry();
    image = await buildImage(join(work, 'src'), 'v1', { layers: [2 * MiB, MiB], seed: 'swarm-key' });
    ref = `${registry.host}/key/app:v1`;
    await pushImage(image.layoutDir, 'v1', ref);
    keyFile = join(work, 'key');
    await writeFile(keyFile, 'the-swarm-key-of-this-test-0123456789\n');
    seeded = join(work, 'seeded');
    const r = await runCli(['pull', ref, '--no-mdns', '--oci', join(work, 'oci0'), '--store', seeded, '-q', '--linger', '0']);
    assert.equal(r.code, 0, r.stderr);
    const layer = image.layers[0]!;
    infoHash = swarmId(layer.digest, pieceLength(layer.size));
    server = startCli(['serve', '--no-mdns', '--port', '0', '--store', seeded, '--swarm-key', keyFile]);
    port = await servingPort(server);
  });
  after(async () => {
    if (server) await stopProcess(server);
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('the extension handshake tells no size when a key is in use', async () => {
    const p = new RawPeer(port, infoHash, '127.0.0.2');
    try {
      const h = await p.extHandshake();
      assert.equal(h.key, 1);
      assert.equal(h.s, undefined, `the seeder told the blob's size (${h.s}) before any proof`);
    } finally {
      p.socket.destroy();
    }
  });

  test("echoing the seeder's own nonce and proof back: refused, nothing told", async () => {
    const p = new RawPeer(port, infoHash, '127.0.0.3');
    try {
      const theirs = (await p.extHandshake()).nonce as Uint8Array;
      p.sayNonce(theirs);
      const mac = await p.authMac().catch(() => undefined);
      if (mac) p.sayProof(mac);
      assert.ok(await p.waitClosed(), 'the seeder kept the connection');
      assert.deepEqual(p.leaked, []);
    } finally {
      p.socket.destroy();
    }
  });

  test("two connections with each other's nonces, each proof played back on the other: refused, nothing told", async () => {
    const a = new RawPeer(port, infoHash, '127.0.0.4');
    const b = new RawPeer(port, infoHash, '127.0.0.4');
    try {
      const [na, nb] = [(await a.extHandshake()).nonce as Uint8Array, (await b.extHandshake()).nonce as Uint8Array];
      a.sayNonce(nb);
      b.sayNonce(na);
      const [ma, mb] = await Promise.all([a.authMac().catch(() => undefined), b.authMac().catch(() => undefined)]);
      if (mb) a.sayProof(mb);
      if (ma) b.sayProof(ma);
      assert.ok(await a.waitClosed(), 'the seeder kept connection a');
      assert.ok(await b.waitClosed(), 'the seeder kept connection b');
      assert.deepEqual([...a.leaked, ...b.leaked], []);
    } finally {
      a.socket.destroy();
      b.socket.destroy();
    }
  });

  test('a pull holding the key gets every byte from the seeder', async () => {
    const r = await runCli(['pull', ref, '--no-mdns', '--no-registry', '--peers', `127.0.0.1:${port}`, '--swarm-key', keyFile, '--oci', join(work, 'oci1'), '--store', join(work, 'store1'), '--json', '-q', '--linger', '0']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { bytes: { peers: number; registry: number } };
    assert.equal(j.bytes.peers, image.size);
    assert.equal(j.bytes.registry, 0);
  });
});
