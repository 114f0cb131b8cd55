// What the namespace benchmarks check before they start, and the clean-up they share.
import { existsSync, rmSync } from 'node:fs';
import { canUseNetns } from '../support/netns.ts';

/**
 * Exit 2 with one line unless we are root, every file in `needs` exists and network namespaces can be made.
 * `hint` says how to get what is missing.
 */
export function preflight(bench: string, needs: string[], hint: string): void {
  const fail = (msg: string): never => {
    process.stderr.write(`${bench}: ${msg}\n`);
    process.exit(2);
  };
  if (process.getuid?.() !== 0) fail(`needs root (network namespaces, veths, tc): run it as root, e.g. sudo npm run bench:${bench} -- ...`);
  for (const file of needs) if (!existsSync(file)) fail(`${file} is missing (${hint})`);
  if (!canUseNetns()) fail('cannot create network namespaces here (`ip netns add` failed)');
}

/**
 * Directories removed when the process exits. Ctrl-C or kill exits through process.exit, so the exit hooks run
 * (test/support/netns.ts tears down every LAN and kills every process in it): call this before the first LAN, so
 * that ours runs before netns.ts's own signal handler.
 */
export function scratchDirs(): string[] {
  const dirs: string[] = [];
  process.on('exit', () => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));
  return dirs;
}
