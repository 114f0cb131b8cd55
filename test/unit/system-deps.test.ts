// A fresh machine: `npm run demo` and `npm test` check for the Debian packages they drive before anything else.
// Where they cannot install them (not root, or no apt-get) they stop with one line naming the packages and the
// command. "Missing" is simulated with a PATH that holds only node and npm (and apt-get where the case needs it).
// The install itself (root, apt-get) is not run here: other tests on this machine use those packages.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { access, chmod, mkdir, mkdtemp, realpath, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { collect } from '../support/cli.ts';
import { missing, NEEDS } from '../support/system-deps.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NOBODY = 65534;
let work: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'swarmpull-deps-'));
  await chmod(work, 0o777);
});
after(() => rm(work, { recursive: true, force: true }));

/** A directory for PATH with node (this Node 24), npm and, if asked, apt-get, and nothing else. */
async function barePath(name: string, withApt: boolean): Promise<string> {
  const dir = join(work, name);
  await mkdir(dir);
  await symlink(process.execPath, join(dir, 'node'));
  const npm = await realpath(await which('npm'));
  await symlink(npm, join(dir, 'npm'));
  if (withApt) await symlink(await which('apt-get'), join(dir, 'apt-get'));
  return dir;
}

async function which(cmd: string): Promise<string> {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/bin', '/usr/sbin'])) {
    const p = join(dir, cmd);
    if (await access(p).then(() => true, () => false)) return p;
  }
  throw new Error(`${cmd} not on PATH`);
}

function npmRun(script: string[], path: string, asNobody: boolean) {
  const home = join(work, `home-${Math.random().toString(16).slice(2, 8)}`);
  const env = { PATH: path, HOME: home, npm_config_update_notifier: 'false', npm_config_script_shell: '/bin/sh', npm_config_cache: join(home, 'npm') };
  const proc = spawn(join(path, 'npm'), script, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], ...(asNobody ? { uid: NOBODY, gid: NOBODY } : {}) });
  return collect(proc, 120_000);
}

/** Our own line: npm adds its "npm error" footer after a failed script, which is npm's, not ours. */
const ownLines = (stderr: string) => stderr.split('\n').filter((l) => l && !l.startsWith('npm ') && !l.startsWith('> '));

test('not root: npm run demo and npm test stop with one line naming the packages and the root command', { skip: process.getuid?.() !== 0 && 'needs root to switch to nobody' }, async () => {
  const path = await barePath('nobody-apt', true);
  // What is missing for nobody on that PATH, in the order NEEDS lists it (libraries checked by file are on this
  // machine already: the suite installed them).
  const pkgsFor = (scope: 'demo' | 'test') => [...new Set(missing(scope, { root: false, path }).map((n) => n.pkg))];
  for (const [script, pkgs] of [
    [['run', 'demo'], pkgsFor('demo')],
    [['test'], pkgsFor('test')],
  ] as const) {
    assert.ok(pkgs.includes('docker-registry') && pkgs.includes('skopeo'), pkgs.join(' '));
    const r = await npmRun([...script], path, true);
    assert.notEqual(r.code, 0, r.stderr);
    const lines = ownLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, new RegExp(`^swarmpull: npm ${script.join(' ')} needs the packages ${pkgs.join(' ')} `));
    assert.ok(lines[0]!.endsWith(`run as root: apt-get update && apt-get install -y --no-install-recommends ${pkgs.join(' ')}`), lines[0]);
    assert.doesNotMatch(r.stderr, /\n\s+at |exec of|did not start/, 'no stack trace, no test ran');
  }
});

test('root without apt-get (not Debian): one line naming the packages and the Debian command', { skip: process.getuid?.() !== 0 && 'root only' }, async () => {
  const path = await barePath('root-noapt', false);
  const r = await npmRun(['run', 'demo'], path, false);
  assert.notEqual(r.code, 0, r.stderr);
  const lines = ownLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  // As root the demo also wants iproute2 (network namespaces).
  assert.match(lines[0]!, /^swarmpull: npm run demo needs the packages docker-registry skopeo iproute2 .*package manager \(Debian\/Ubuntu: apt-get update && apt-get install -y --no-install-recommends docker-registry skopeo iproute2\)$/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

test('what is missing depends on the scope and on root; nothing is missing on this machine', () => {
  const none = '/nonexistent';
  assert.deepEqual(missing('demo', { root: false, path: none }).map((n) => n.pkg), ['docker-registry', 'skopeo']);
  assert.ok(missing('demo', { root: true, path: none }).some((n) => n.pkg === 'iproute2'));
  assert.ok(missing('test', { root: true, path: none }).some((n) => n.pkg === 'docker.io'));
  assert.ok(!missing('test', { root: false, path: none }).some((n) => n.pkg === 'docker.io'), 'dockerd tests skip without root');
  for (const n of NEEDS) assert.ok(n.scopes.length > 0 && n.why, n.command);
  // `npm test` ran the check before this file: everything is there now.
  assert.deepEqual(missing('test', { root: process.getuid?.() === 0, path: process.env.PATH ?? '' }).map((n) => n.command), []);
});
