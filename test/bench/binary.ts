// `npm run bench:binary`: each built executable's size and how fast `--version` starts with an empty environment
// (median of 21 runs). The host's own architecture runs natively; the other under qemu user-mode emulation, marked as
// such (emulated start-up says nothing about a real arm64 host's). Run `npm run build` first.
// SWARMPULL_BIN=path measures that one binary (natively).
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { runnerFor, type Arch, type Runner } from '../../bin/build/emulator.ts';

const dist = join(import.meta.dirname, '../../dist');
const RUNS = 21;
const NATIVE: Runner = { prefix: [], env: {}, how: 'native' };

const targets: { bin: string; runner: Runner | { missing: string } }[] = process.env.SWARMPULL_BIN
  ? [{ bin: process.env.SWARMPULL_BIN, runner: NATIVE }]
  : (['x64', 'arm64'] as Arch[])
      .map((arch) => ({ bin: join(dist, `swarmpull-linux-${arch}`), runner: runnerFor(arch) }))
      .filter(({ bin }) => existsSync(bin));
if (targets.length === 0) throw new Error(`no binaries in ${dist}: run npm run build first`);

console.log(`| binary | size | runs | \`--version\` start (median of ${RUNS}) | min | max |`);
console.log('|---|---|---|---|---|---|');
for (const { bin, runner } of targets) {
  const size = `${(statSync(bin).size / 2 ** 20).toFixed(0)} MiB`;
  if ('missing' in runner) {
    console.log(`| ${bin} | ${size} | not run: ${runner.missing} | | | |`);
    continue;
  }
  const env = Object.entries(runner.env).map(([k, v]) => `${k}=${v}`);
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now();
    const r = spawnSync('env', ['-i', ...env, ...runner.prefix, bin, '--version'], { encoding: 'utf8' });
    times.push(performance.now() - start);
    if (r.status !== 0) throw new Error(`${bin} --version exited ${r.status}: ${r.stderr}`);
  }
  times.sort((a, b) => a - b);
  const ms = (i: number) => `${times[i]!.toFixed(0)} ms`;
  const how = runner.how === 'native' ? 'native' : `emulated: ${runner.how}`;
  console.log(`| ${bin} | ${size} | ${how} | ${ms(RUNS >> 1)} | ${ms(0)} | ${ms(RUNS - 1)} |`);
}
