// Platforms ("linux/arm64/v8"), the host's own, and matching them against an index's entries.
import { usageError } from '../errors.ts';
import type { Platform } from './types.ts';

export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9_.-]+$/i.test(p))) {
    throw usageError(`invalid platform ${JSON.stringify(s.slice(0, 100))}: expected os/arch[/variant], e.g. linux/arm64`);
  }
  const [os, architecture, variant] = parts as [string, string, string?];
  return { os, architecture, ...(variant ? { variant } : {}) };
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
  const variant = p.variant ?? DEFAULT_VARIANT[p.architecture];
  return { os: p.os.toLowerCase(), architecture: p.architecture.toLowerCase(), ...(variant ? { variant } : {}) };
}

export function platformMatches(candidate: Platform, wanted: Platform): boolean {
  const c = normalise(candidate);
  const w = normalise(wanted);
  return c.os === w.os && c.architecture === w.architecture && (c.variant ?? '') === (w.variant ?? '');
}
