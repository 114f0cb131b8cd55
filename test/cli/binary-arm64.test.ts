// The arm64 binary, built on this x64 host, run here under qemu user-mode emulation (binfmt_misc, or
// qemu-aarch64-static directly) with an empty environment, as on an arm64 host without Node: it starts, picks the
// arm64 image of a multi-arch index from the real registry by default, writes an OCI layout umoci accepts, and swarms
// with an x64 process both ways (they speak the same wire). Run by `npm run test:binary` (SWARMPULL_BIN is the host's
// binary; dist/swarmpull-linux-arm64 lies beside it). Skipped, with the reason, on a machine that cannot emulate arm64.
// Emulated Node is 10-20x slower than native: small image, generous timeouts.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { runnerFor, type Runner } from '../../bin/build/emulator.ts';
import { VERSION } from '../../lib/version.ts';
import { collect, servingPort, type CliResult } from '../support/cli.ts';
import { buildMultiArch, pushImage } from '../support/fixtures.ts';
import { startRegistry, stopProcess, type Registry } from '../support/registry.ts';

const run = promisify(execFile);
const MiB = 1024 * 1024;
/** one emulated command: --version takes 1-3 s under qemu on a busy 2-core machine, a small pull 5-15 s */
const EMULATED_TIMEOUT_MS = 120_000;

const hostBin = process.env.SWARMPULL_BIN ? resolve(process.env.SWARMPULL_BIN) : undefined;
const armBin = hostBin ? join(dirname(hostBin), 'swarmpull-linux-arm64') : '';
const runner = runnerFor('arm64');
const skip = !hostBin
  ? 'set SWARMPULL_BIN to the built executable (npm run test:binary)'
  : !existsSync(armBin)
    ? `${armBin} is not built (npm run build)`
    : 'missing' in runner
      ? `cannot run arm64 here: ${runner.missing}`
      : false;

/** [command, args] that start the arm64 binary with an empty environment (but for the emulator's own) */
function armCommand(args: string[]): [string, string[]] {
  const r = runner as Runner;
  const env = Object.entries(r.env).map(([k, v]) => `${k}=${v}`);
  return ['env', ['-i', ...env, ...r.prefix, armBin, ...args]];
}
const hostCommand = (args: string[]): [string, string[]] => ['env', ['-i', hostBin!, ...args]];

function start([cmd, args]: [string, string[]]): ChildProcess {
  return spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}
const runArm = (args: string[]) => collect(start(armCommand(args)), EMULATED_TIMEOUT_MS);
const runHost = (args: string[]) => collect(start(hostCommand(args)), EMULATED_TIMEOUT_MS);

describe(`the arm64 binary under emulation (${'missing' in runner ? 'none' : runner.how})`, { skip }, () => {
  let work: string;
  let registry: Registry;
  let ref: string;
  let multi: Awaited<ReturnType<typeof buildMultiArch>>;
  const servers: ChildProcess[] = [];
  let n = 0;
  const fresh = (name: string) => join(work, `${name}-${++n}`);
  const sizeOf = (i: number) => multi.platforms[i]!.config.size + multi.platforms[i]!.layers.reduce((a, l) => a + l.size, 0);
  /** stores filled from the registry by each architecture's binary, for the swarm tests */
  let armStore: string;
  let x64Store: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'swarmpull-arm64-'));
    registry = await startRegistry();
    // Two layers per platform: 1 MiB + 512 KiB = 6 pieces, enough to swap, small enough for emulated sha256.
    multi = await buildMultiArch(join(work, 'src'), 'v1', [
      { layers: [MiB, MiB / 2], seed: 'arm64-bin' },
      { layers: [MiB, MiB / 2], seed: 'arm64-bin', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    ]);
    ref = `${registry.host}/arch/app:v1`;
    await pushImage(multi.layoutDir, 'v1', ref, { all: true });
  });
  after(async () => {
    for (const p of servers) await stopProcess(p);
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
  });

  const pullArgs = (store: string, oci: string, more: string[]) =>
    ['pull', ref, '--no-mdns', '--oci', oci, '--store', store, '--json', '-q', '--linger', '0', ...more];

  /** exit 0, a layout umoci unpacks, and the --json result */
  async function valid(r: CliResult, oci: string) {
    assert.equal(r.code, 0, r.stderr);
    await run('umoci', ['unpack', '--image', `${oci}:v1`, fresh('bundle')]);
    return JSON.parse(r.stdout) as { platform: string; manifestDigest: string; bytes: { total: number; registry: number; peers: number } };
  }

  /** `serve --store S` on a free port; resolves with the port once it serves */
  function serve(command: [string, string[]]): Promise<number> {
    const p = start(command);
    servers.push(p);
    return servingPort(p, EMULATED_TIMEOUT_MS);
  }

  test('--version, and nothing on stderr: the code cache in the blob is one arm64 Node accepts', async () => {
    const r = await runArm(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), VERSION);
    // A cache made by x64 Node prints "Warning: Code cache data rejected." here.
    assert.equal(r.stderr, '');
  });

  test('--help', async () => {
    const r = await runArm(['--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Usage: swarmpull/);
    assert.match(r.stdout, /\bpull\b/);
    assert.match(r.stdout, /\bserve\b/);
  });

  test('a pull from the registry picks linux/arm64/v8 by default and writes a valid OCI layout', { timeout: EMULATED_TIMEOUT_MS }, async () => {
    armStore = fresh('arm-store');
    const oci = fresh('oci');
    const j = await valid(await runArm(pullArgs(armStore, oci, ['--registry-only'])), oci);
    assert.equal(j.platform, 'linux/arm64/v8');
    assert.equal(j.manifestDigest, multi.platforms[1]!.manifest.digest);
    assert.equal(j.bytes.registry, sizeOf(1));
  });

  test('an arm64 seeder serves an x64 puller (--no-registry)', { timeout: 2 * EMULATED_TIMEOUT_MS }, async () => {
    assert.ok(armStore, 'needs the arm64 pull above');
    const port = await serve(armCommand(['serve', '--no-mdns', '--port', '0', '--store', armStore]));
    const oci = fresh('oci');
    const j = await valid(await runHost(pullArgs(fresh('store'), oci, ['--platform', 'linux/arm64', '--no-registry', '--peers', `127.0.0.1:${port}`])), oci);
    assert.equal(j.manifestDigest, multi.platforms[1]!.manifest.digest);
    assert.equal(j.bytes.peers, sizeOf(1));
  });

  test('an x64 seeder serves an arm64 puller (--no-registry)', { timeout: 2 * EMULATED_TIMEOUT_MS }, async () => {
    x64Store = fresh('x64-store');
    const seededOci = fresh('oci');
    const seeded = await valid(await runHost(pullArgs(x64Store, seededOci, ['--platform', 'linux/amd64', '--registry-only'])), seededOci);
    assert.equal(seeded.bytes.registry, sizeOf(0));
    const port = await serve(hostCommand(['serve', '--no-mdns', '--port', '0', '--store', x64Store]));
    const oci = fresh('oci');
    const j = await valid(await runArm(pullArgs(fresh('store'), oci, ['--platform', 'linux/amd64', '--no-registry', '--peers', `127.0.0.1:${port}`])), oci);
    assert.equal(j.manifestDigest, multi.platforms[0]!.manifest.digest);
    assert.equal(j.bytes.peers, sizeOf(0));
  });
});
