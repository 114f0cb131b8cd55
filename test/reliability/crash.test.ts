// Crash safety: a pull SIGKILLed at many random points, then a clean pull. After every kill the store is
// consistent, the OCI layout (which already held another image) is valid, and no byte the store had already
// kept is fetched from the registry again. The registry is throttled so that kills land mid-transfer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pieceLayout, pieceRange } from '../../lib/store/pieces.ts';
import { startRegistry, type Registry } from '../support/registry.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { buildImage, pushImage, type FixtureImage } from '../support/fixtures.ts';
import { collect, runCli, startCli } from '../support/cli.ts';
import { blobBytes, blobRequestInfo, blobRequests, checkStore, layoutTags, umociUnpack, type StoreReport } from './helpers.ts';
import { seeded } from '../support/random.ts';

const run = promisify(execFile);
const KiB = 1024;
const MiB = 1024 * KiB;

const KILLS = 20;
const SEED = Number(process.env.SWARMPULL_TEST_SEED ?? 0x5eed);
/** per answer; a pull draws on up to 4 answers at once */
const RATE = 768 * KiB;
/** lib/pull.ts: registry requests at once per host */
const REGISTRY_CONCURRENCY = 4;

let registry: Registry;
let proxy: FaultProxy;
let work: string;
let image: FixtureImage;
let other: FixtureImage;
let ref: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'swarmpull-crash-'));
  registry = await startRegistry();
  image = await buildImage(join(work, 'src'), 'a', { layers: [4 * MiB, 3 * MiB, 2 * MiB + 100 * KiB, 300 * KiB], seed: 'crash' });
  other = await buildImage(join(work, 'other'), 'other', { layers: [200 * KiB], seed: 'crash-other' });
  await pushImage(image.layoutDir, 'a', `${registry.host}/crash/app:a`);
  proxy = await startFaultProxy({ target: registry.host });
  ref = `${proxy.host}/crash/app:a`;
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

/** Bytes the store holds: complete blobs and the pieces its partials mark complete. */
function keptBytes(known: StoreReport): number {
  let n = 0;
  for (const d of [image.config, ...image.layers]) {
    if (known.blobs.includes(d.digest)) n += d.size;
    const layout = pieceLayout(d.size);
    for (const p of known.partials.get(d.digest) ?? []) n += pieceRange(layout, p).end - pieceRange(layout, p).start;
  }
  return n;
}

/** Bytes of complete blobs or of pieces the store had kept before a run that the run fetched again. */
function refetched(known: StoreReport, from: number): string[] {
  const out: string[] = [];
  for (const req of blobRequests(proxy, from)) {
    if (req.bytes === 0) continue;
    const { digest, start } = blobRequestInfo(req);
    const end = start + req.bytes;
    if (known.blobs.includes(digest)) out.push(`${digest.slice(7, 19)}: complete, fetched again (${req.bytes} bytes)`);
    const size = [image.config, ...image.layers].find((d) => d.digest === digest)!.size;
    const layout = pieceLayout(size);
    for (const p of known.partials.get(digest) ?? []) {
      const r = pieceRange(layout, p);
      if (r.start < end && start < r.end) out.push(`${digest.slice(7, 19)}: piece ${p} was kept, fetched again`);
    }
  }
  return out;
}

test(`SIGKILL at ${KILLS} random points of a pull, then a clean pull: nothing fetched twice, store and OCI layout valid throughout`, async (t) => {
  t.diagnostic(`seed ${SEED} (SWARMPULL_TEST_SEED replays it)`);
  // the same seed gives the same kill points, so a failing run can be replayed (seed in the log)
  const rand = seeded(SEED);
  const store = join(work, 'store');
  const out = join(work, 'oci');
  const bundle = join(work, 'bundle');
  // The layout already holds another image: no kill may damage it.
  await run('skopeo', ['copy', '--quiet', `oci:${other.layoutDir}:other`, `oci:${out}:other`]);
  const sources = new Map([image.config, ...image.layers].map((d) => [d.digest, join(image.layoutDir, 'blobs/sha256', d.digest.slice(7))]));
  proxy.plan((req) => (req.url.includes('/blobs/') ? { rateBytesPerSec: RATE } : undefined));
  const firstRequest = proxy.requests.length;

  let finishedBeforeKill = 0;
  const kills: string[] = [];
  for (let i = 0; kills.length < KILLS && i < KILLS * 2; i++) {
    const known = await checkStore(store, sources);
    const left = image.size - keptBytes(known);
    const from = proxy.requests.length;
    const proc = startCli(['pull', '--no-mdns', ref, '--oci', out, '--store', store, '-q', '--linger', '0']);
    const done = collect(proc, 120_000);
    let exited = false;
    void done.then(() => (exited = true));
    // Where to kill: a few runs during start-up and resolution; the others after a random share of the bytes still
    // missing (about an equal share per kill left, so kills keep landing mid-transfer as the store fills up), or,
    // once nothing is missing, at a random moment of writing the output.
    const early = rand() < 0.15;
    const share = Math.round(rand() * Math.min((2 * left) / (KILLS - kills.length), 0.9 * left));
    const at = early ? `start+${Math.round(rand() * 400)} ms` : left > 0 ? `after ${share} bytes` : `output+${Math.round(rand() * 300)} ms`;
    if (early) await Promise.race([sleep(Number(/\d+/.exec(at)![0])), done]);
    else {
      for (let waited = 0; proxy.requests.length === from && !exited && waited < 30_000; waited += 5) await sleep(5);
      if (left > 0) while (!exited && blobBytes(proxy, from) < share) await sleep(5);
      else await Promise.race([sleep(Number(/\d+/.exec(at)![0])), done]);
    }
    proc.kill('SIGKILL');
    const r = await done;
    if (r.signal === 'SIGKILL') kills.push(at);
    else {
      assert.equal(r.code, 0, `run ${i} ended on its own with a failure: ${r.stderr}`);
      finishedBeforeKill++;
    }

    assert.deepEqual(refetched(known, from), [], `run ${i} fetched again what the store had kept`);
    await checkStore(store, sources);
    await umociUnpack(out, 'other', bundle);
    if ((await layoutTags(out)).includes('a')) await umociUnpack(out, 'a', bundle);
  }
  t.diagnostic(`kills: ${kills.join(', ')}; ${finishedBeforeKill} runs finished before their kill`);
  assert.equal(kills.length, KILLS, `${KILLS} runs were killed`);

  const known = await checkStore(store, sources);
  const from = proxy.requests.length;
  proxy.plan();
  const r = await runCli(['pull', '--no-mdns', ref, '--oci', out, '--store', store, '-q', '--json', '--linger', '0']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(refetched(known, from), [], 'the clean pull fetched again what the store had kept');
  const result = JSON.parse(r.stdout);
  assert.equal(result.bytes.total, image.size);
  const final = await checkStore(store, sources);
  for (const d of [image.config, ...image.layers]) assert.ok(final.blobs.includes(d.digest), `${d.digest} is in the store`);
  assert.deepEqual((await layoutTags(out)).sort(), ['a', 'other']);
  await umociUnpack(out, 'a', bundle);
  await umociUnpack(out, 'other', bundle);

  // What a kill can cost: the pieces its registry answers were in the middle of. Never whole images.
  const total = blobBytes(proxy, firstRequest);
  const bound = image.size + kills.length * REGISTRY_CONCURRENCY * pieceLayout(image.layers[0]!.size).pieceLength;
  t.diagnostic(`registry sent ${total} blob bytes over ${KILLS + 1} runs for an image of ${image.size} (${(total / image.size).toFixed(2)}x); bound ${bound}`);
  assert.ok(total >= image.size, 'every byte came from the registry once');
  assert.ok(total <= bound, `registry sent ${total} bytes, more than the image plus the pieces in flight at each kill (${bound})`);
});
