// Platforms ("linux/arm64/v8"), the host's own, and matching them against an index's entries.
import { usageError, quoted } from '../errors.ts';
import type { Platform } from './types.ts';

// Operators type platforms the way their machines name them (`uname -m`, Debian's dpkg): these become the OCI names
// an index uses, as containerd's platforms.Normalize does, so `linux/aarch64`, `linux/x86_64`, `linux/armhf` and
// `arm64/v8` pick the same image as `linux/arm64`, `linux/amd64`, `linux/arm/v7` and `linux/arm64`.
const KNOWN_OS = new Set(['aix', 'android', 'darwin', 'dragonfly', 'freebsd', 'hurd', 'illumos', 'ios', 'js', 'linux', 'nacl', 'netbsd', 'openbsd', 'plan9', 'solaris', 'windows', 'zos']);
const KNOWN_ARCH = new Set(['386', 'amd64', 'amd64p32', 'arm', 'armbe', 'arm64', 'arm64be', 'ppc64', 'ppc64le', 'loong64', 'mips', 'mipsle', 'mips64', 'mips64le', 'mips64p32', 'mips64p32le', 'ppc', 'riscv', 'riscv64', 's390', 's390x', 'sparc', 'sparc64', 'wasm']);

function normaliseOs(os: string): string {
  const lower = os.toLowerCase();
  return lower === 'macos' ? 'darwin' : lower;
}

/** containerd's normalizeArch: aliases to OCI names, and the variant each architecture implies or drops. */
function normaliseArch(arch: string, variant = ''): { architecture: string; variant?: string } {
  const a = arch.toLowerCase();
  const v = variant.toLowerCase();
  const out = (architecture: string, variant: string) => ({ architecture, ...(variant ? { variant } : {}) });
  switch (a) {
    case 'i386':
      return out('386', '');
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      return out('amd64', v === 'v1' ? '' : v);
    case 'aarch64':
    case 'arm64':
      return out('arm64', ['8', 'v8', 'v8.0'].includes(v) ? '' : ['9', '9.0', 'v9.0'].includes(v) ? 'v9' : v);
    case 'armhf':
      return out('arm', 'v7');
    case 'armel':
      return out('arm', 'v6');
    case 'arm':
      return out('arm', v === '' || v === '7' ? 'v7' : ['5', '6', '8'].includes(v) ? `v${v}` : v);
    default:
      return out(a, v);
  }
}

/**
 * `os/arch[/variant]`, `arch/variant` or `arch` (containerd's specifiers; the OS defaults to linux, since
 * container images are Linux images), normalised: `linux/aarch64` → linux/arm64, `armhf` → linux/arm/v7.
 */
export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  const invalid = () =>
    usageError(`invalid platform ${quoted(s, 100)}: expected os/arch[/variant], e.g. linux/arm64`);
  if (parts.length > 3 || parts.some((p) => !/^[a-z0-9_.-]+$/i.test(p))) throw invalid();
  if (parts.length === 1) {
    // A bare architecture is a Linux image of it; a bare OS names no image, so it stays a mistake.
    const arch = normaliseArch(parts[0]!);
    if (!KNOWN_ARCH.has(arch.architecture)) throw invalid();
    return { os: 'linux', ...arch };
  }
  if (parts.length === 2 && !KNOWN_OS.has(normaliseOs(parts[0]!))) {
    const arch = normaliseArch(parts[0]!, parts[1]);
    if (KNOWN_ARCH.has(arch.architecture)) return { os: 'linux', ...arch };
  }
  return { os: normaliseOs(parts[0]!), ...normaliseArch(parts[1]!, parts[2]) };
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? '/' + p.variant : ''}`;
}

const NODE_ARCH: Record<string, Platform> = {
  x64: { os: 'linux', architecture: 'amd64' },
  arm64: { os: 'linux', architecture: 'arm64', variant: 'v8' },
  arm: { os: 'linux', architecture: 'arm', variant: 'v7' },
  ia32: { os: 'linux', architecture: '386' },
  ppc64: { os: 'linux', architecture: 'ppc64le' },
  s390x: { os: 'linux', architecture: 's390x' },
  riscv64: { os: 'linux', architecture: 'riscv64' },
};

/** Container images are Linux images, whatever OS swarmpull itself runs on. */
export function hostPlatform(): Platform {
  return NODE_ARCH[process.arch] ?? { os: 'linux', architecture: process.arch };
}

// Variants that are implied when an index leaves them out (as containerd's platform matcher does).
const DEFAULT_VARIANT: Record<string, string> = { arm64: 'v8', arm: 'v7' };

function normalise(p: Platform): Platform {
  const arch = normaliseArch(p.architecture, p.variant);
  const variant = arch.variant ?? DEFAULT_VARIANT[arch.architecture];
  return { os: normaliseOs(p.os), architecture: arch.architecture, ...(variant ? { variant } : {}) };
}

export function platformMatches(candidate: Platform, wanted: Platform): boolean {
  const c = normalise(candidate);
  const w = normalise(wanted);
  return c.os === w.os && c.architecture === w.architecture && (c.variant ?? '') === (w.variant ?? '');
}
