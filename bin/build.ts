// `npm run build`: dist/swarmpull, one executable with no dependencies on the host: the CLI bundled by esbuild,
// turned into a Single Executable Application blob by the pinned Node 24, injected into a copy of that same
// Node binary with postject (the blob must come from the Node version it runs in).
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nodeFlags } from './node-flags.ts';

const root = join(import.meta.dirname, '..');
const dist = join(root, 'dist');
const bin = (name: string) => join(root, 'node_modules/.bin', name);
const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist);
run(bin('esbuild'), [
  'bin/swarmpull.ts',
  '--bundle',
  '--platform=node',
  '--format=cjs',
  '--target=node24',
  '--minify-syntax',
  '--log-level=warning',
  `--outfile=${join(dist, 'swarmpull.cjs')}`,
]);
writeFileSync(
  join(dist, 'sea-config.json'),
  JSON.stringify({
    main: join(dist, 'swarmpull.cjs'),
    output: join(dist, 'sea.blob'),
    disableExperimentalSEAWarning: true,
    useCodeCache: true,
    execArgv: nodeFlags(),
  }),
);
// process.execPath is the pinned Node 24 when run through npm (node_modules/.bin comes first on the PATH).
run(process.execPath, ['--experimental-sea-config', join(dist, 'sea-config.json')]);
const out = join(dist, 'swarmpull');
copyFileSync(process.execPath, out);
chmodSync(out, 0o755);
run(bin('postject'), [out, 'NODE_SEA_BLOB', join(dist, 'sea.blob'), '--sentinel-fuse', 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2']);
for (const f of ['swarmpull.cjs', 'sea-config.json', 'sea.blob']) rmSync(join(dist, f));
console.log(`built ${out} (${(statSync(out).size / 1048576).toFixed(0)} MiB, Node ${process.version})`);
