// One benchmark process in a LAN host: started behind a gate (so that all hosts can be released at one instant)
// and under GNU time (its wait4 rusage gives exact peak RSS and CPU seconds, however short the process).
import type { ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { cliCommand } from '../../support/cli.ts';
import type { Lan, LanHost } from '../../support/netns.ts';

export const TIME_BIN = '/usr/bin/time';
const TIME_FORMAT = 'rusage %e %M %U %S';
const GATE = fileURLToPath(new URL('./gate.ts', import.meta.url));
/** for anything but the .ts CLI: announce, wait for a line on stdin, become the command */
const SHELL_GATE = 'echo "gate: ready" >&2; read -r _; exec "$@"';

export interface ProcessOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** epoch ms at which the harness saw the process end */
  exitAt: number;
  /** from GNU time: peak resident set (MiB) and CPU seconds (user + system); absent if it was killed */
  peakRssMiB?: number;
  cpuSeconds?: number;
  /** the system part of cpuSeconds (the network stack's work for the process's sockets lands here) */
  sysSeconds?: number;
  /** CPU seconds spent before the gate (module loading), when the preload gate could tell */
  startupCpuSeconds?: number;
  /** peak proportional (PSS) and private (USS) memory, MiB, sampled (see MemorySampler) */
  peakPssMiB?: number;
  peakUssMiB?: number;
}

/**
 * argv for a gated command. The swarmpull CLI run from source gets the preload gate (start-up done before the
 * release); a binary (SWARMPULL_BIN) or another tool waits in a shell, its start-up counted in its time.
 */
export function gatedCommand(command: { swarmpull: string[] } | { argv: string[] }): string[] {
  if ('swarmpull' in command) {
    const [cmd, argv] = cliCommand(command.swarmpull);
    if (!process.env.SWARMPULL_BIN) return [cmd, '--import', GATE, ...argv];
    return ['sh', '-c', SHELL_GATE, 'gate', cmd, ...argv];
  }
  return ['sh', '-c', SHELL_GATE, 'gate', ...command.argv];
}

export class HostProcess {
  readonly host: LanHost;
  readonly proc: ChildProcess;
  /** resolves when the process waits at its gate */
  readonly ready: Promise<void>;
  readonly done: Promise<ProcessOutcome>;
  private stdout = '';
  private stderr = '';

  constructor(lan: Lan, host: LanHost, argv: string[], timeFile: string, timeoutMs: number) {
    this.host = host;
    // detached: a process group of its own, so a kill reaches the command under `time`, not only `time`
    this.proc = lan.spawn(host, TIME_BIN, ['-f', TIME_FORMAT, '-o', timeFile, ...argv], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.proc.stdin!.on('error', () => {}); // a process that died at its gate
    this.proc.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    this.ready = new Promise((resolve, reject) => {
      this.proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
        this.stderr += d;
        if (/^gate: ready.*\n/m.test(this.stderr)) resolve();
      });
      this.proc.once('close', () => reject(new Error(`${host.name}: exited before its gate:\n${this.stderr}`)));
    });
    this.ready.catch(() => {});
    const timer = setTimeout(() => this.kill(), timeoutMs);
    const memory = new MemorySampler(this.proc.pid!);
    this.done = new Promise((resolve) => {
      this.proc.once('close', async (code, signal) => {
        clearTimeout(timer);
        memory.stop();
        const exitAt = Date.now();
        const usage = await readUsage(timeFile);
        const gate = /^gate: ready ?([\d.]*)\n/m.exec(this.stderr);
        const stderr = this.stderr.replace(/^gate: ready.*\n/m, '');
        const startup = gate?.[1] ? { startupCpuSeconds: Number(gate[1]) } : {};
        resolve({ code, signal, stdout: this.stdout, stderr, exitAt, ...usage, ...startup, ...memory.peaks() });
      });
    });
  }

  release(): void {
    this.proc.stdin!.end('\n');
  }

  kill(): void {
    try {
      process.kill(-this.proc.pid!, 'SIGKILL');
    } catch {}
  }
}

/** GNU time's line; a command killed by a signal gets a "Command terminated by signal" line before it. */
async function readUsage(file: string): Promise<{ peakRssMiB?: number; cpuSeconds?: number; sysSeconds?: number }> {
  const text = await readFile(file, 'utf8').catch(() => '');
  if (/terminated by signal/.test(text)) return {};
  const m = /^rusage ([\d.]+) (\d+) ([\d.]+) ([\d.]+)$/m.exec(text);
  if (!m) return {};
  return { peakRssMiB: Number(m[2]) / 1024, cpuSeconds: Number(m[3]) + Number(m[4]), sysSeconds: Number(m[4]) };
}

/** how often /proc is read for memory: a pull's memory moves with its pieces, slower than this */
const MEMORY_SAMPLE_MS = 200;

/**
 * Peak PSS and USS of the command GNU time runs (its one child), from /proc/PID/smaps_rollup. RSS (GNU time's %M)
 * counts in full, in every process, the pages of the executable they share (the single binary: ~63 MB of them):
 * PSS divides shared pages among their users, USS counts only the process's own. USS here is Private_Dirty (heap,
 * buffers, stacks): Private_Clean would add the executable's pages whenever the others using them have exited,
 * which the last process of a fan-out always sees (measured: 118 MiB "USS" of which ~65 MiB was the binary).
 */
class MemorySampler {
  private pss = 0;
  private uss = 0;
  private child = 0;
  private readonly timePid: number;
  private readonly timer: NodeJS.Timeout;

  constructor(timePid: number) {
    this.timePid = timePid;
    this.timer = setInterval(() => void this.sample(), MEMORY_SAMPLE_MS);
  }

  private async sample(): Promise<void> {
    try {
      this.child ||= Number((await readFile(`/proc/${this.timePid}/task/${this.timePid}/children`, 'utf8')).trim().split(' ')[0]) || 0;
      if (!this.child) return;
      const rollup = await readFile(`/proc/${this.child}/smaps_rollup`, 'utf8');
      const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? 0);
      this.pss = Math.max(this.pss, kib('Pss') / 1024);
      this.uss = Math.max(this.uss, kib('Private_Dirty') / 1024);
    } catch {
      // the process is gone, or not started yet
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }

  peaks(): { peakPssMiB?: number; peakUssMiB?: number } {
    return this.pss > 0 ? { peakPssMiB: this.pss, peakUssMiB: this.uss } : {};
  }
}
