// End to end: the swarmpull CLI against a real docker-registry, outputs checked by umoci and skopeo.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, readFile, rm, readdir, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type Registry } from '../support/registry.ts';
import { buildImage, buildMultiArch, pushImage, type FixtureImage } from '../support/fixtures.ts';
import { runCli } from '../support/cli.ts';
import { buildProgram, PULL_EXAMPLES } from '../../lib/cli.ts';
import { parseReference } from '../../lib/reference.ts';

const run = promisify(execFile);
const KiB = 1024;

let registry: Registry;
let work: string;
let image: FixtureImage;
let ref: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'swarmpull-cli-'));
  registry = await startRegistry();
  image = await buildImage(join(work, 'src'), 'v1', { layers: [300 * KiB, 900 * KiB, 40 * KiB], seed: 'cli' });
  ref = `${registry.host}/cli/app:v1`;
  await pushImage(image.layoutDir, 'v1', ref);
});

after(async () => {
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

const fresh = async (name: string) => join(work, `${name}-${Math.random().toString(16).slice(2, 8)}`);

async function umociUnpack(layout: string, tag: string) {
  const bundle = await fresh('bundle');
  await run('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle]);
  return bundle;
}

test('pull --oci writes a layout umoci unpacks, and --json reports the pull', async () => {
  const out = await fresh('oci');
  const store = await fresh('store');
  const r = await runCli(['pull', '--no-mdns', ref, '--oci', out, '--store', store, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.equal(result.digest, image.digest);
  assert.equal(result.manifestDigest, image.digest);
  assert.equal(result.platform, 'linux/amd64');
  assert.equal(result.bytes.total, image.size);
  assert.equal(result.bytes.registry, image.size);
  assert.equal(result.bytes.cached, 0);
  assert.equal(result.bytes.peers, 0);
  assert.deepEqual(result.peers, { seen: 0, used: 0 });
  assert.ok(Date.parse(result.readyAt) >= Date.parse(result.startedAt));
  assert.match(result.readyAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  const bundle = await umociUnpack(out, 'v1');
  const files = await readdir(join(bundle, 'rootfs/data'));
  assert.equal(files.length, 3);

  // A second pull of the same image into another layout moves no blob bytes.
  const again = await runCli(['pull', '--no-mdns', ref, '--oci', await fresh('oci'), '--store', store, '--json', '-q']);
  assert.equal(again.code, 0, again.stderr);
  const second = JSON.parse(again.stdout);
  assert.equal(second.bytes.registry, 0);
  assert.equal(second.bytes.cached, image.size);
});

test('pull -o FILE writes a tar skopeo accepts; -o - streams it on stdout with nothing else there', async () => {
  const tar = join(await fresh('tar'), 'image.tar');
  await run('mkdir', ['-p', join(tar, '..')]);
  const store = await fresh('store');
  const r = await runCli(['pull', '--no-mdns', ref, '-o', tar, '--store', store]);
  assert.equal(r.code, 0, r.stderr);
  const dir = await fresh('dir');
  await run('skopeo', ['copy', '--quiet', `docker-archive:${tar}`, `dir:${dir}`]);
  // skopeo reads docker-archive layers uncompressed: they land under their diff_ids
  for (const l of image.layers) await stat(join(dir, l.diffId.slice(7)));
  const { stdout: listing } = await run('tar', ['-tf', tar]);
  assert.equal(listing.trim().split('\n').at(-1), 'manifest.json');

  // The same tar on stdout (blob order may differ between runs: compare the listing and the bytes of each blob).
  const viaStdout = await fresh('stdout.tar');
  const s = await runCli(['pull', '--no-mdns', ref, '-o', '-', '--store', store]);
  assert.equal(s.code, 0, s.stderr);
  await writeFile(viaStdout, s.stdoutBytes);
  const { stdout: listing2 } = await run('tar', ['-tf', viaStdout]);
  assert.deepEqual(listing2.trim().split('\n').sort(), listing.trim().split('\n').sort());
  const fromStdout = await fresh('dir');
  await run('skopeo', ['copy', '--quiet', `docker-archive:${viaStdout}`, `dir:${fromStdout}`]);
  for (const l of image.layers) assert.ok((await readFile(join(fromStdout, l.diffId.slice(7)))).equals(await readFile(join(dir, l.diffId.slice(7)))));
});

test('multi-arch: the host platform by default, --platform picks another; resolve prints the index digest', async () => {
  const multi = await buildMultiArch(join(work, 'multi'), 'm', [
    { layers: [10 * KiB], seed: 'ma' },
    { layers: [12 * KiB], seed: 'ma', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
  ]);
  const mref = `${registry.host}/cli/multi:m`;
  await pushImage(multi.layoutDir, 'm', mref, { all: true });
  const store = await fresh('store');
  const r = await runCli(['pull', '--no-mdns', mref, '--oci', await fresh('oci'), '--store', store, '--json', '-q']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).digest, multi.digest);
  assert.equal(JSON.parse(r.stdout).manifestDigest, multi.platforms[0]!.manifest.digest);
  const arm = await runCli(['pull', '--no-mdns', mref, '--platform', 'linux/arm64', '--oci', await fresh('oci'), '--store', store, '--json', '-q']);
  assert.equal(arm.code, 0, arm.stderr);
  assert.equal(JSON.parse(arm.stdout).platform, 'linux/arm64/v8');
  assert.equal(JSON.parse(arm.stdout).manifestDigest, multi.platforms[1]!.manifest.digest);
  const none = await runCli(['pull', '--no-mdns', mref, '--platform', 'linux/s390x', '--oci', await fresh('oci'), '--store', store]);
  assert.equal(none.code, 3);
  assert.match(none.stderr, /no linux\/s390x image.*available: linux\/amd64, linux\/arm64\/v8/);

  const resolved = await runCli(['resolve', mref]);
  assert.equal(resolved.code, 0, resolved.stderr);
  assert.equal(resolved.stdout.trim(), multi.digest);
  const armDigest = await runCli(['resolve', mref, '--platform', 'linux/arm64']);
  assert.equal(armDigest.stdout.trim(), multi.platforms[1]!.manifest.digest);
});

test('--platform as operators type it (linux/aarch64, linux/x86_64, linux/armhf, arm64/v8) picks the canonical entry', async () => {
  const multi = await buildMultiArch(join(work, 'aliases'), 'a', [
    { layers: [8 * KiB], seed: 'al' },
    { layers: [9 * KiB], seed: 'al', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    { layers: [7 * KiB], seed: 'al', platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
  ]);
  const mref = `${registry.host}/cli/aliases:a`;
  await pushImage(multi.layoutDir, 'a', mref, { all: true });
  const [amd64, arm64, armv7] = multi.platforms.map((p) => p.manifest.digest);
  const store = await fresh('store');
  const cases: [string, string, string][] = [
    ['linux/aarch64', arm64!, 'linux/arm64/v8'],
    ['arm64/v8', arm64!, 'linux/arm64/v8'],
    ['linux/x86_64', amd64!, 'linux/amd64'],
    ['linux/armhf', armv7!, 'linux/arm/v7'],
  ];
  for (const [typed, manifestDigest, platform] of cases) {
    const r = await runCli(['pull', '--no-mdns', mref, '--platform', typed, '--oci', await fresh('oci'), '--store', store, '--json', '-q']);
    assert.equal(r.code, 0, `${typed}: ${r.stderr}`);
    assert.equal(JSON.parse(r.stdout).manifestDigest, manifestDigest, typed);
    assert.equal(JSON.parse(r.stdout).platform, platform, typed);
  }
  const resolved = await runCli(['resolve', mref, '--platform', 'linux/aarch64']);
  assert.equal(resolved.stdout.trim(), arm64, resolved.stderr);
  // armel is arm/v6, which this index does not have: not found, naming the canonical form.
  const armel = await runCli(['pull', '--no-mdns', mref, '--platform', 'linux/armel', '--oci', await fresh('oci'), '--store', store]);
  assert.equal(armel.code, 3, armel.stderr);
  assert.match(armel.stderr, /no linux\/arm\/v6 image/);
});

test('Docker schema2 images pull too', async () => {
  const v2 = `${registry.host}/cli/schema2:v1`;
  await pushImage(image.layoutDir, 'v1', v2, { format: 'v2s2' });
  const out = await fresh('oci');
  const r = await runCli(['pull', '--no-mdns', v2, '--oci', out, '--store', await fresh('store'), '-q']);
  assert.equal(r.code, 0, r.stderr);
  await umociUnpack(out, 'v1');
});

test('failures: one line each and the documented exit code, nothing written', async () => {
  const store = await fresh('store');
  const out = await fresh('oci');
  const cases: [string[], number, RegExp][] = [
    [['pull', `${registry.host}/cli/app:nope`, '--oci', out, '--store', store], 3, /not found|unknown/i],
    [['pull', `${registry.host}/cli/nothing:v1`, '--oci', out, '--store', store], 3, /not found|unknown/i],
    [['pull', 'Bad//Ref', '--oci', out, '--store', store], 2, /invalid image reference/],
    [['pull', ref, '--oci', out, '-o', 'x.tar'], 2, /exclusive/],
    [['pull', ref, '--platform', 'linux'], 2, /invalid platform/],
    [['pull', ref, '--bogus-flag'], 2, /unknown option/],
    [['pull', '127.0.0.1:1/cli/app:v1', '--oci', out, '--store', store], 6, /unreachable|refused|connect/i],
  ];
  for (const [args, code, message] of cases) {
    const r = await runCli(args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  await assert.rejects(stat(out), 'no layout was written');
});

test('--version and --help', async () => {
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8'));
  const v = await runCli(['--version']);
  assert.equal(v.code, 0);
  assert.equal(v.stdout.trim(), pkg.version);
  const h = await runCli(['pull', '--no-mdns', '--help']);
  assert.equal(h.code, 0);
  for (const flag of ['--platform', '--oci', '--output', '--plain-http', '--insecure', '--creds', '--store', '--json', '--quiet', '--debug']) {
    assert.match(h.stdout, new RegExp(flag));
  }
});

test('pull --help ends with three examples, and each one parses', async () => {
  const h = await runCli(['pull', '--help']);
  assert.equal(h.code, 0, h.stderr);
  const tail = h.stdout.slice(h.stdout.lastIndexOf('\nExamples:\n'));
  assert.ok(h.stdout.includes('\nExamples:\n'), h.stdout);
  const commands = tail.split('\n').filter((l) => l.startsWith('  swarmpull ')).map((l) => l.trim().split(/\s+/).slice(1));
  assert.equal(commands.length, 3, tail);
  assert.equal(h.stdout.trimEnd().split('\n').at(-1)!.trim(), `swarmpull ${commands[2]!.join(' ')}`, 'the help ends with the examples');
  assert.deepEqual(commands, PULL_EXAMPLES.map((e) => [...e.argv]));
  assert.ok(commands.some((c) => c.includes('--oci') && c.includes('--json')), 'an OCI layout with --json');
  assert.ok(commands.some((c) => c.includes('--peers-file') && c.includes('--swarm-key')), 'a fleet pull');
  assert.ok(commands.some((c) => !c.includes('--oci') && !c.includes('-o') && !c.includes('--output')), 'a pull into docker load');
  for (const argv of commands) {
    // The real program's parser with the job swapped for a recorder: every flag must be known and take its value.
    const program = buildProgram();
    let parsed: { image: string; flags: Record<string, unknown> } | undefined;
    program.commands.find((c) => c.name() === 'pull')!.action((image: string, flags: Record<string, unknown>) => {
      parsed = { image, flags };
    });
    await program.parseAsync(argv, { from: 'user' });
    assert.ok(parsed, argv.join(' '));
    parseReference(parsed.image);
    for (const [i, word] of argv.entries()) {
      if (!word.startsWith('--')) continue;
      const key = word.slice(2).replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
      const next = argv[i + 1];
      assert.equal(parsed.flags[key], next && !next.startsWith('--') ? next : true, `${word} in ${argv.join(' ')}`);
    }
  }
});
