// Progress on stderr: bars on a TTY, a line every few seconds otherwise, nothing with -q.
import cliProgress from 'cli-progress';
import type { Descriptor } from './image/types.ts';
import type { ResolvedImage } from './output/sink.ts';
import type { PullProgress } from './pull.ts';
import { formatReference } from './reference.ts';

export type ProgressMode = 'tty' | 'lines' | 'quiet';

const LINE_EVERY_MS = 5000;

/** 1536 → "1.5 KiB"; whole bytes below a KiB (a rate of 846.37 B/s shows as "846 B"). */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  n = Math.round(n);
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

export const formatRate = (bytesPerSecond: number) => `${formatBytes(bytesPerSecond)}/s`;

/** "45s", "3m05s", "1h02m"; "--" while there is no rate to go by. */
export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.ceil(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
}

export interface Totals {
  size: number;
  registry: number;
  peers: number;
  cached: number;
}

// A rate (and so an ETA) from less than this much downloading is noise: the first piece's burst.
const MIN_RATE_WINDOW_S = 0.5;

/** The one overall line: bytes done of all, download rate, share from peers, ETA. */
export function overallLine(t: Totals, downloadingSeconds: number): string {
  const fetched = t.registry + t.peers;
  const done = Math.min(t.size, fetched + t.cached);
  const pct = t.size ? Math.floor((done / t.size) * 100) : 100;
  const rate = downloadingSeconds >= MIN_RATE_WINDOW_S ? fetched / downloadingSeconds : NaN;
  const peerShare = fetched ? Math.round((t.peers / fetched) * 100) : 0;
  const eta = done >= t.size ? 0 : (t.size - done) / rate;
  return `${pct}% ${formatBytes(done)}/${formatBytes(t.size)}, ${Number.isNaN(rate) ? '-- B/s' : formatRate(rate)}, ${peerShare}% from peers, ETA ${formatEta(eta)}`;
}

const short = (digest: string) => digest.slice(7, 19);

export function createProgress(mode: ProgressMode, stream: NodeJS.WriteStream = process.stderr): PullProgress & { stop(): void } {
  const totals: Totals = { size: 0, registry: 0, peers: 0, cached: 0 };
  // The rate counts from the first downloaded byte (not from the start: resolving and discovery come first).
  // Once everything is there the clock stops, so lingering to seed does not dilute the rate shown.
  let firstByteAt = 0;
  let lastByteAt = 0;
  const fetched = (source: 'peer' | 'registry', n: number) => {
    lastByteAt = Date.now();
    if (!firstByteAt) firstByteAt = lastByteAt;
    totals[source === 'peer' ? 'peers' : 'registry'] += n;
  };
  const complete = () => totals.registry + totals.peers + totals.cached >= totals.size;
  const downloadingSeconds = () => (firstByteAt ? ((complete() ? lastByteAt : Date.now()) - firstByteAt) / 1000 : 0);
  const write = (line: string) => stream.write(line + '\n');

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
    const summary = () =>
      `${overallLine(totals, downloadingSeconds())} (registry ${formatBytes(totals.registry)}, peers ${formatBytes(totals.peers)}, cached ${formatBytes(totals.cached)})`;
    return {
      planned(image: ResolvedImage, blobs: Descriptor[]) {
        totals.size = blobs.reduce((a, b) => a + b.size, 0);
        write(`swarmpull: pulling ${formatReference(image.reference)} (${blobs.length} blobs, ${formatBytes(totals.size)})`);
        timer = setInterval(() => write(`swarmpull: ${summary()}`), LINE_EVERY_MS);
        timer.unref();
      },
      bytes(d, n, source) {
        fetched(source, n);
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

  // A terminal, as docker users expect: one bar per layer (the config is a few hundred bytes: it counts in the
  // total, it gets no bar), then one overall line.
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
  interface LayerBar {
    bar: cliProgress.SingleBar;
    done: number;
    registry: number;
    peers: number;
    cached: number;
    firstByteAt: number;
    lastByteAt: number;
  }
  const bars = new Map<string, LayerBar>();
  let overall: cliProgress.SingleBar | null = null;
  const updateOverall = () => {
    const done = Math.min(totals.size, totals.registry + totals.peers + totals.cached);
    overall?.update(done, { line: overallLine(totals, downloadingSeconds()) });
  };
  const update = (desc: Descriptor) => {
    updateOverall();
    const b = bars.get(desc.digest);
    if (!b) return;
    const fetchedHere = b.registry + b.peers;
    const done = Math.min(desc.size, b.done);
    const secs = (b.lastByteAt - b.firstByteAt) / 1000;
    const rate = fetchedHere && secs >= MIN_RATE_WINDOW_S ? formatRate(fetchedHere / secs) : '';
    const source =
      done === desc.size && !fetchedHere ? 'cached' : fetchedHere ? `${Math.round((b.peers / fetchedHere) * 100)}% from peers` : '';
    b.bar.update(done, { done: formatBytes(done), size: formatBytes(desc.size), rate, source });
  };
  return {
    planned(image, blobs) {
      totals.size = blobs.reduce((a, b) => a + b.size, 0);
      const layers = new Set(image.layers.map((l) => l.digest));
      const shown = blobs.filter((d) => layers.has(d.digest));
      multibar.log(`pulling ${formatReference(image.reference)} (${shown.length} layers, ${formatBytes(totals.size)})\n`);
      for (const d of shown) {
        const bar = multibar.create(Math.max(1, d.size), 0, { name: short(d.digest), done: '0 B', size: formatBytes(d.size), rate: '', source: '' });
        bars.set(d.digest, { bar, done: 0, registry: 0, peers: 0, cached: 0, firstByteAt: 0, lastByteAt: 0 });
      }
      overall = multibar.create(Math.max(1, totals.size), 0, { line: '' }, { format: ' total        |{bar}| {line}' });
      updateOverall();
    },
    bytes(desc, n, source) {
      fetched(source, n);
      const b = bars.get(desc.digest);
      if (b) {
        const now = Date.now();
        if (!b.firstByteAt) b.firstByteAt = now;
        b.lastByteAt = now;
        b.done += n;
        b[source === 'peer' ? 'peers' : 'registry'] += n;
      }
      update(desc);
    },
    cached(desc, n) {
      totals.cached += n;
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
    stop: () => {
      updateOverall();
      multibar.stop();
    },
  };
}
