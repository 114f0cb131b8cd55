// The shipped artefact: with SWARMPULL_BIN set (npm run test:binary), the single executable runs with an empty
// environment, as on a host without Node. Without it the tests run bin/swarmpull.ts and this file has nothing to check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { promisify } from 'node:util';
import { VERSION } from '../../lib/version.ts';
import { collect } from '../support/cli.ts';

const bin = process.env.SWARMPULL_BIN;
const skip = bin ? false : 'set SWARMPULL_BIN to the built executable (npm run test:binary)';

const runBare = (args: string[]) => collect(spawn('env', ['-i', bin!, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }), 30_000);

test('the binary runs with an empty environment: --version', { skip }, async () => {
  const r = await runBare(['--version']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), VERSION);
});

test('the binary runs with an empty environment: a bad reference is a usage error on one line', { skip }, async () => {
  const r = await runBare(['pull', 'Not A Reference', '--oci', '/nonexistent']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^swarmpull: /);
});

test('the binary prints the committed completion scripts', { skip }, async () => {
  const r = await runBare(['completion', 'bash']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /complete -F _swarmpull swarmpull/);
});

// Only where `npm run build` put the binary (beside swarmpull-linux-*), not for one installed elsewhere.
const dist = bin ? dirname(resolve(bin)) : '';
const built = bin ? readdirSync(dist).filter((f) => f.startsWith('swarmpull-linux-')) : [];
const skipSums = skip || (built.length === 0 ? `no swarmpull-linux-* beside ${bin}` : false);

test('SHA256SUMS beside the binaries lists each of them, and sha256sum -c accepts them', { skip: skipSums }, async () => {
  assert.ok(existsSync(`${dist}/SHA256SUMS`), `${dist}/SHA256SUMS: npm run build writes it beside the binaries`);
  const { stdout } = await promisify(execFile)('sha256sum', ['--strict', '-c', 'SHA256SUMS'], { cwd: dist });
  assert.deepEqual(stdout.trim().split('\n').sort(), built.map((f) => `${f}: OK`).sort());
});
