// A real terminal for tests that check what a user sees: a detached tmux session of a given size runs the command,
// and `capture-pane` returns the screen as tmux rendered it (cursor moves and line clears applied).
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const POLL_MS = 100;
let sessions = 0;

export interface Terminal {
  /** the visible screen, trailing blank lines dropped */
  screen(): Promise<string>;
  /** polls the screen until it matches, or throws with the last screen after timeoutMs */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<string>;
  close(): Promise<void>;
}

const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** Runs `cmd args` with exactly `env` in a cols×rows terminal; "[exit N]" is printed when it ends. */
export async function openTerminal(cmd: string, args: string[], opts: { env: Record<string, string>; cols?: number; rows?: number }): Promise<Terminal> {
  const socket = join(tmpdir(), `swarmpull-tty-${process.pid}-${++sessions}`);
  const tmux = (...a: string[]) => run('tmux', ['-S', socket, ...a], { timeout: 10_000 });
  const envArgs = Object.entries(opts.env).map(([k, v]) => quote(`${k}=${v}`));
  // The pane stays open after the command so its last screen can be read; the sleep bounds a forgotten session.
  const line = `env -i ${envArgs.join(' ')} ${[cmd, ...args].map(quote).join(' ')}; echo "[exit $?]"; sleep 600`;
  await tmux('-f', '/dev/null', 'new-session', '-d', '-x', String(opts.cols ?? 150), '-y', String(opts.rows ?? 30), '-s', 'swarmpull', line);
  const screen = async () => (await tmux('capture-pane', '-p', '-t', 'swarmpull')).stdout.trimEnd();
  return {
    screen,
    async waitFor(pattern, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const s = await screen();
        if (pattern.test(s)) return s;
        if (Date.now() > deadline) throw new Error(`the terminal never showed ${pattern}; it shows:\n${s}`);
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    },
    async close() {
      await tmux('kill-server').catch(() => {});
      await rm(socket, { force: true });
    },
  };
}
