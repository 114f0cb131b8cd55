// `npm run build [-- --arch x64|arm64|all]`: dist/swarmpull-linux-<arch>, one executable per architecture with no
// dependencies on the host: the CLI bundled by esbuild, turned into a Single Executable Application blob by the pinned
// Node 24 of that architecture, injected into a copy of that same Node binary with postject (the blob must come from
// the Node version it runs in). dist/swarmpull is the host's own architecture; dist/SHA256SUMS lists the binaries.
//
// The blob's V8 code cache is architecture-specific, so the arm64 blob is made by arm64 Node itself, under qemu
// user-mode emulation on an x64 host. Without an emulator the arm64 blob has no code cache (it starts slower).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, linkSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { runnerFor, type Arch } from './build/emulator.ts';
import { pinnedNode, pinnedNodeVersion } from './build/pinned-node.ts';
import { nodeFlags } from './node-flags.ts';

const ARCHES: Arch[] = ['x64', 'arm64'];
const root = join(import.meta.dirname, '..');
const dist = join(root, 'dist');
const bin = (name: string) => join(root, 'node_modules/.bin', name);
const run = (cmd: string, args: string[], env: Record<string, string> = {}) =>
  execFileSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });

function archesFromArgs(): Arch[] {
  let arch: string;
  try {
    arch = parseArgs({ options: { arch: { type: 'string', default: 'all' } } }).values.arch;
  } catch (e) {
    usage((e as Error).message);
  }
  if (arch === 'all') return ARCHES;
  if ((ARCHES as string[]).includes(arch)) return [arch as Arch];
  usage(`--arch must be one of ${ARCHES.join(', ')}, all; not ${arch}`);
}

function usage(message: string): never {
  console.error(`build: ${message}`);
  process.exit(2);
}

function bundle(): string {
  const out = join(dist, 'swarmpull.cjs');
  run(bin('esbuild'), [
    'bin/swarmpull.ts',
    '--bundle',
    '--platform=node',
    '--format=cjs',
    '--target=node24',
    '--minify-syntax',
    '--log-level=warning',
    `--outfile=${out}`,
  ]);
  return out;
}

/** dist/swarmpull-linux-<arch> from the bundle; says whether its blob carries a code cache. */
function buildFor(arch: Arch, main: string): { path: string; codeCache: boolean } {
  const node = pinnedNode(arch);
  const runner = runnerFor(arch);
  const codeCache = !('missing' in runner);
  const config = join(dist, `sea-config-${arch}.json`);
  const blob = join(dist, `sea-${arch}.blob`);
  writeFileSync(
    config,
    JSON.stringify({ main, output: blob, disableExperimentalSEAWarning: true, useCodeCache: codeCache, execArgv: nodeFlags() }),
  );
  if ('missing' in runner) {
    console.warn(`build: ${arch}: ${runner.missing}; building it without a code cache (slower start-up)`);
    run(pinnedNode(process.arch as Arch), ['--experimental-sea-config', config]);
  } else {
    if (runner.how !== 'native') console.log(`build: ${arch}: making the code cache with ${arch} Node under ${runner.how}`);
    const [cmd, ...args] = [...runner.prefix, node, '--experimental-sea-config', config];
    run(cmd!, args, runner.env);
  }
  const out = join(dist, `swarmpull-linux-${arch}`);
  copyFileSync(node, out);
  chmodSync(out, 0o755);
  run(bin('postject'), [out, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2']);
  rmSync(config);
  rmSync(blob);
  return { path: out, codeCache };
}

const arches = archesFromArgs();
if (!(ARCHES as string[]).includes(process.arch)) usage(`cannot build on a ${process.arch} host`);
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist);
const main = bundle();
const built = arches.map((arch) => ({ arch, ...buildFor(arch, main) }));
rmSync(main);
// sha256sum -c format: "<hex>  <file name>", names relative to dist/
const sums = built.map(({ path }) => `${createHash('sha256').update(readFileSync(path)).digest('hex')}  ${basename(path)}\n`);
writeFileSync(join(dist, 'SHA256SUMS'), sums.join(''));
const own = built.find((b) => b.arch === process.arch);
if (own) linkSync(own.path, join(dist, 'swarmpull'));
for (const b of built) {
  const size = (statSync(b.path).size / 1048576).toFixed(0);
  console.log(`built ${b.path} (${size} MiB, Node ${pinnedNodeVersion()}${b.codeCache ? '' : ', no code cache'})`);
}
if (own) console.log(`dist/swarmpull is ${basename(own.path)}`);
