// Preloaded (`node --import`) into every benchmark host's swarmpull: loads the CLI's modules, says so on stderr,
// then blocks until the harness writes a line to stdin. So all hosts are released at one instant with their
// start-up (~0.7 s of module loading each, which N hosts would otherwise fight over on 2 shared cores) behind them.
import { readSync } from 'node:fs';

await import('../../../lib/cli.ts');
// with the CPU seconds start-up took, which the report can tell apart from the pull's
const startup = process.cpuUsage();
process.stderr.write(`gate: ready ${((startup.user + startup.system) / 1e6).toFixed(3)}\n`);

const byte = Buffer.alloc(1);
const nap = new Int32Array(new SharedArrayBuffer(4));
for (;;) {
  try {
    // EOF or a newline opens the gate
    if (readSync(0, byte, 0, 1, null) === 0 || byte[0] === 0x0a) break;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    Atomics.wait(nap, 0, 0, 2); // a non-blocking stdin: poll every 2 ms
  }
}
