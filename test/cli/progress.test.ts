// Progress as a user sees it: the CLI runs in a real terminal (tmux) against a real registry, and the test reads the
// screen: one bar per layer (none for the config), one overall line with bytes, rate, share from peers and ETA,
// sizes and rates rounded as sizes. Without a terminal: one line every few seconds with the same overall figures.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type Registry } from '../support/registry.ts';
import { buildImage, pushImage, type FixtureImage } from '../support/fixtures.ts';
import { cliCommand, runCli } from '../support/cli.ts';
import { openTerminal } from '../support/terminal.ts';

const KiB = 1024;
// 1 MiB/s over ~2.6 MiB: long enough (about 2.5 s) to read the screen while the pull is under way.
const RATE = '1M';

let registry: Registry;
let work: string;
let image: FixtureImage;
let ref: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'swarmpull-progress-'));
  registry = await startRegistry();
  // A 300-byte layer: the kind whose rate used to print as "846.376811594203 B/s".
  image = await buildImage(join(work, 'src'), 'v1', { layers: [1536 * KiB, 300, 1024 * KiB], seed: 'progress' });
  ref = `${registry.host}/progress/app:v1`;
  await pushImage(image.layoutDir, 'v1', ref);
});

after(async () => {
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

const fresh = (name: string) => join(work, `${name}-${Math.random().toString(16).slice(2, 8)}`);
const short = (digest: string) => digest.slice(7, 19);
const OVERALL = /^ total +\|[^|]+\| (\d+)% ([\d.]+ [KMG]?i?B)\/([\d.]+ [KMG]?i?B), ([\d.]+ [KMG]?i?B|--)\/s, (\d+)% from peers, ETA (\S+)$/m;
// A figure with more than one decimal anywhere on the screen is a number printed raw.
const RAW_NUMBER = /\d\.\d{2,}/;

test('on a terminal: a bar per layer, none for the config, and one overall line with bytes, rate, peers and ETA', async () => {
  const [cmd, argv] = cliCommand(['pull', ref, '--no-mdns', '--oci', fresh('oci'), '--store', fresh('store'), '--max-download-rate', RATE, '--linger', '0']);
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: work, TERM: 'screen', ...(process.env.SWARMPULL_BIN ? { SWARMPULL_BIN: process.env.SWARMPULL_BIN } : {}) };
  const term = await openTerminal(cmd, argv, { env, cols: 150, rows: 20 });
  try {
    // Under way: the overall line has a rate and an ETA in seconds, and is not yet at 100%.
    const during = await term.waitFor(/ total .*\d+% .*ETA \d+s$/m, 30_000);
    const mid = OVERALL.exec(during);
    assert.ok(mid, during);
    assert.ok(Number(mid[1]) < 100, during);
    assert.notEqual(mid[4], '--', `a rate once bytes flow:\n${during}`);

    const end = await term.waitFor(/\[exit \d+\]/, 60_000);
    assert.match(end, /\[exit 0\]/, end);
    const lines = end.split('\n');
    const layerLines = lines.filter((l) => /^ [0-9a-f]{12} \|/.test(l));
    assert.deepEqual(layerLines.map((l) => l.slice(1, 13)).sort(), image.layers.map((l) => short(l.digest)).sort(), `one bar per layer:\n${end}`);
    assert.ok(!end.includes(short(image.config.digest)), `no bar for the config:\n${end}`);
    for (const l of layerLines) assert.match(l, /\| 100% /, l);
    const overall = OVERALL.exec(end);
    assert.ok(overall, `one overall line:\n${end}`);
    assert.equal(lines.filter((l) => l.startsWith(' total ')).length, 1, end);
    assert.equal(overall[1], '100');
    assert.equal(overall[2], overall[3], 'all bytes done');
    assert.equal(overall[5], '0', 'no peers here');
    assert.equal(overall[6], '0s');
    assert.doesNotMatch(end, RAW_NUMBER, `sizes and rates rounded:\n${end}`);
    assert.match(end, /pulling .*\(3 layers, /, end);
  } finally {
    await term.close();
  }
});

test('without a terminal: a line every few seconds with the overall rate, share from peers and ETA', async () => {
  // ~2.6 MiB at 400 KiB/s: about 6.5 s, so at least one periodic line (every 5 s).
  const r = await runCli(['pull', ref, '--no-mdns', '--oci', fresh('oci'), '--store', fresh('store'), '--max-download-rate', '400K', '--linger', '0']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^swarmpull: \d+% [\d.]+ [KM]iB\/[\d.]+ MiB, [\d.]+ [KM]iB\/s, 0% from peers, ETA \d+s \(registry /m, r.stderr);
  assert.doesNotMatch(r.stderr, RAW_NUMBER, r.stderr);
});
