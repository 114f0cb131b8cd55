// How this host runs a Linux executable of another architecture: natively when it is the host's own, else under
// qemu user-mode emulation (Debian qemu-user-static). The build uses it to make the arm64 code cache with arm64 Node
// itself; the tests use it to run the arm64 binary. Only arm64 on an x64 host (and the reverse) is known here.
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export type Arch = 'x64' | 'arm64';

/** How to start an executable of one architecture: argv prefix and environment additions. */
export interface Runner {
  /** prepended to [executable, ...args]; empty when the kernel runs it (natively or through binfmt) */
  prefix: string[];
  env: Record<string, string>;
  /** for messages: "native", "qemu-aarch64 (binfmt)", "qemu-aarch64-static" */
  how: string;
}

const QEMU: Record<Arch, { name: string; interp: string; crossRoot: string }> = {
  arm64: { name: 'aarch64', interp: 'ld-linux-aarch64.so.1', crossRoot: '/usr/aarch64-linux-gnu' },
  x64: { name: 'x86_64', interp: 'ld-linux-x86-64.so.2', crossRoot: '/usr/x86_64-linux-gnu' },
};

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {}
  }
  return undefined;
}

function binfmtEnabled(qemuName: string): boolean {
  try {
    return readFileSync(`/proc/sys/fs/binfmt_misc/qemu-${qemuName}`, 'utf8').startsWith('enabled');
  } catch {
    return false;
  }
}

/** A Runner for `arch` on this host, or the reason there is none (for a test's skip message). */
export function runnerFor(arch: Arch): Runner | { missing: string } {
  if (arch === process.arch) return { prefix: [], env: {}, how: 'native' };
  const q = QEMU[arch];
  // Node is dynamically linked: the emulated loader and libc/libstdc++ come from Debian's cross packages
  // (libc6-arm64-cross, libstdc++6-arm64-cross) under crossRoot, or from multiarch (libc6:arm64) under /lib.
  let env: Record<string, string>;
  if (existsSync(join(q.crossRoot, 'lib', q.interp))) env = { QEMU_LD_PREFIX: q.crossRoot };
  else if (existsSync(join('/lib', q.interp))) env = {};
  else return { missing: `no ${arch} C library for emulation (apt-get install libc6-${arch}-cross libstdc++6-${arch}-cross)` };
  if (binfmtEnabled(q.name)) return { prefix: [], env, how: `qemu-${q.name} (binfmt)` };
  const qemu = onPath(`qemu-${q.name}-static`) ?? onPath(`qemu-${q.name}`);
  if (qemu) return { prefix: [qemu], env, how: qemu };
  return { missing: `no qemu-${q.name}: binfmt_misc has no enabled qemu-${q.name} and qemu-${q.name}-static is not installed (apt-get install qemu-user-static binfmt-support)` };
}
