// Progress on stderr: bars on a TTY, a line every few seconds otherwise, nothing with -q.
import cliProgress from 'cli-progress';
import type { Descriptor } from './image/types.ts';
import type { ResolvedImage } from './output/sink.ts';
import type { PullProgress } from './pull.ts';
import { formatReference } from './reference.ts';

export type ProgressMode = 'tty' | 'lines' | 'quiet';

const LINE_EVERY_MS = 5000;

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

const short = (digest: string) => digest.slice(7, 19);

export function createProgress(mode: ProgressMode, stream: NodeJS.WriteStream = process.stderr): PullProgress & { stop(): void } {
  const totals = { size: 0, registry: 0, peers: 0, cached: 0 };
  const started = Date.now();
  const write = (line: string) => stream.write(line + '\n');
  const summary = () => {
    const done = totals.registry + totals.peers + totals.cached;
    const pct = totals.size ? Math.min(100, Math.floor((done / totals.size) * 100)) : 100;
    const secs = (Date.now() - started) / 1000;
    const rate = secs > 0 ? (totals.registry + totals.peers) / secs : 0;
    return `${pct}% ${formatBytes(done)}/${formatBytes(totals.size)}, ${formatBytes(rate)}/s (registry ${formatBytes(totals.registry)}, peers ${formatBytes(totals.peers)}, cached ${formatBytes(totals.cached)})`;
  };

  if (mode === 'quiet') {
    const noop = () => {};
    return { planned: noop, bytes: noop, cached: noop, blobDone: noop, log: noop, stop: noop };
  }

  if (mode === 'lines') {
    let timer: NodeJS.Timeout | null = null;
    // Per blob, for its line when it is done: where its bytes came from.
    const blobs = new Map<string, { registry: number; peers: number; cached: number }>();
    const of = (d: Descriptor) => {
      let b = blobs.get(d.digest);
      if (!b) blobs.set(d.digest, (b = { registry: 0, peers: 0, cached: 0 }));
      return b;
    };
    return {
      planned(image: ResolvedImage, blobs: Descriptor[]) {
        totals.size = blobs.reduce((a, b) => a + b.size, 0);
        write(`swarmpull: pulling ${formatReference(image.reference)} (${blobs.length} blobs, ${formatBytes(totals.size)})`);
        timer = setInterval(() => write(`swarmpull: ${summary()}`), LINE_EVERY_MS);
        timer.unref();
      },
      bytes(d, n, source) {
        totals[source === 'peer' ? 'peers' : 'registry'] += n;
        of(d)[source === 'peer' ? 'peers' : 'registry'] += n;
      },
      cached(d, n) {
        totals.cached += n;
        of(d).cached += n;
      },
      blobDone(d) {
        const b = of(d);
        const parts = (['registry', 'peers', 'cached'] as const).filter((k) => b[k] > 0).map((k) => `${k} ${formatBytes(b[k])}`);
        write(`swarmpull: blob ${short(d.digest)} done, ${formatBytes(d.size)} (${parts.join(', ') || 'empty'})`);
      },
      log: (msg) => write(`swarmpull: ${msg}`),
      stop() {
        if (timer) clearInterval(timer);
        timer = null;
      },
    };
  }

  const multibar = new cliProgress.MultiBar(
    {
      stream,
      format: ' {name} |{bar}| {percentage}% {done}/{size} {rate} {source}',
      barsize: 30,
      hideCursor: true,
      clearOnComplete: false,
      autopadding: true,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, { bar: cliProgress.SingleBar; done: number; registry: number; peers: number; cached: number; since: number }>();
  const update = (desc: Descriptor) => {
    const b = bars.get(desc.digest);
    if (!b) return;
    const source = b.cached === desc.size ? 'cached' : `registry ${formatBytes(b.registry)} peers ${formatBytes(b.peers)}`;
    const secs = (Date.now() - b.since) / 1000;
    const rate = secs > 0.2 ? `${formatBytes((b.registry + b.peers) / secs)}/s` : '';
    b.bar.update(b.done, { done: formatBytes(b.done), size: formatBytes(desc.size), rate, source });
  };
  return {
    planned(image, blobs) {
      totals.size = blobs.reduce((a, b) => a + b.size, 0);
      multibar.log(`pulling ${formatReference(image.reference)} (${blobs.length} blobs, ${formatBytes(totals.size)})\n`);
      for (const d of blobs) {
        const bar = multibar.create(Math.max(1, d.size), 0, { name: short(d.digest), done: '0 B', size: formatBytes(d.size), rate: '', source: '' });
        bars.set(d.digest, { bar, done: 0, registry: 0, peers: 0, cached: 0, since: Date.now() });
      }
    },
    bytes(desc, n, source) {
      const b = bars.get(desc.digest);
      if (b) {
        b.done += n;
        b[source === 'peer' ? 'peers' : 'registry'] += n;
      }
      update(desc);
    },
    cached(desc, n) {
      const b = bars.get(desc.digest);
      if (b) {
        b.done += n;
        b.cached += n;
      }
      update(desc);
    },
    blobDone(desc) {
      const b = bars.get(desc.digest);
      if (b) b.done = desc.size;
      update(desc);
    },
    log: (msg) => multibar.log(msg + '\n'),
    stop: () => multibar.stop(),
  };
}
