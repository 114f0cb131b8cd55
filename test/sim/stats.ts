// What a simulated pull came to: host times against the floor, registry egress against the image.
import type { SimResult } from './swarm-sim.ts';

export interface SimSummary {
  hosts: number;
  imageMiB: number;
  layers: number;
  rateMbit: number;
  floorS: number;
  p50S: number;
  p99S: number;
  maxS: number;
  minS: number;
  /** registry egress / image size (on the wire, headers counted, when the config has `framing`) */
  egressVsImage: number;
  /** time for the registry alone to send the image once, / floor */
  registryShareOfFloor: number;
  duplicateVsImage: number;
  meanPeers: number;
  /** with a CPU model: CPU-s per GiB received over all hosts, the registry's CPU-s, and how long the CPU was short */
  cpu?: { hostCpuSPerGiB: number; registryS: number; saturatedS: number };
  wallS: number;
}

export function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

export function summarise(r: SimResult): SimSummary {
  const times = r.hosts.map((h) => (h.doneAt < 0 ? Infinity : h.doneAt - h.startAt) / 1000).sort((a, b) => a - b);
  const floorS = (r.imageBytes * 8) / (r.config.rateMbit * 1e6);
  return {
    hosts: r.config.hosts,
    imageMiB: r.imageBytes / 2 ** 20,
    layers: r.config.layers.length,
    rateMbit: r.config.rateMbit,
    floorS,
    p50S: quantile(times, 0.5),
    p99S: quantile(times, 0.99),
    maxS: times.at(-1)!,
    minS: times[0]!,
    egressVsImage: (r.registryBytes * (r.config.framing ?? 1)) / r.imageBytes,
    registryShareOfFloor: (r.imageBytes * 8) / (r.config.registryMbit * 1e6) / floorS,
    duplicateVsImage: r.duplicateBytes / r.imageBytes / r.config.hosts,
    meanPeers: r.meanPeers,
    ...(r.cpu
      ? {
          cpu: {
            hostCpuSPerGiB: r.cpu.hostS.reduce((a, b) => a + b, 0) / ((r.imageBytes * r.config.hosts) / 2 ** 30),
            registryS: r.cpu.registryS,
            saturatedS: r.cpu.saturatedS,
          },
        }
      : {}),
    wallS: r.wallMs / 1000,
  };
}
