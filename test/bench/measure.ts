// Shared by the benchmarks: run a command, sampling its peak RSS (VmHWM) and CPU time from /proc.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';

export interface Measured {
  code: number | null;
  ms: number;
  peakRssMiB: number;
  cpuSeconds: number;
  stdout: string;
  stderr: string;
}

/** Peak RSS (MiB) and CPU seconds so far of a running process, or null once it is gone. */
export async function procStats(pid: number): Promise<{ hwm: number; cpu: number } | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
    // utime + stime (fields 14 and 15 of stat, 12 and 13 after the comm field), in clock ticks
    const cpu = (Number(stat[11]) + Number(stat[12])) / 100;
    return { hwm, cpu };
  } catch {
    return null;
  }
}

export function measure(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Measured> {
  const start = performance.now();
  const proc = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  let peak = 0;
  let cpu = 0;
  const timer = setInterval(async () => {
    const s = await procStats(proc.pid!);
    if (s) {
      peak = Math.max(peak, s.hwm);
      cpu = Math.max(cpu, s.cpu);
    }
  }, 50);
  return new Promise((resolve) =>
    proc.once('close', (code) => {
      clearInterval(timer);
      resolve({ code, ms: performance.now() - start, peakRssMiB: peak, cpuSeconds: cpu, stdout, stderr });
    }),
  );
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
