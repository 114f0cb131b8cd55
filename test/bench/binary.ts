// `npm run bench:binary`: the built executable's size and how fast `--version` starts with an empty environment
// (median of 21 runs). Run `npm run build` first.
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';

const bin = process.env.SWARMPULL_BIN ?? join(import.meta.dirname, '../../dist/swarmpull');
const RUNS = 21;

const times: number[] = [];
for (let i = 0; i < RUNS; i++) {
  const start = performance.now();
  const r = spawnSync('env', ['-i', bin, '--version'], { encoding: 'utf8' });
  times.push(performance.now() - start);
  if (r.status !== 0) throw new Error(`${bin} --version exited ${r.status}: ${r.stderr}`);
}
times.sort((a, b) => a - b);
const ms = (i: number) => times[i]!.toFixed(0);
console.log(`| binary | size | \`--version\` start (median of ${RUNS}) | min | max |`);
console.log('|---|---|---|---|---|');
console.log(`| ${bin} | ${(statSync(bin).size / 2 ** 20).toFixed(0)} MiB | ${ms(RUNS >> 1)} ms | ${ms(0)} ms | ${ms(RUNS - 1)} ms |`);
