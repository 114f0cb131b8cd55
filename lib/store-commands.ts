// The `store ls` and `store prune` jobs: what the store holds, and cleaning it up. Output on stdout.
import { prune, tryBlobLock, type PruneOptions, type PruneResult } from './store/gc.ts';
import { readRegistrations } from './store/in-use.ts';
import { readInventory, type Inventory } from './store/inventory.ts';

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) (v /= 1024), i++;
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

const short = (digest: string) => digest.slice('sha256:'.length, 'sha256:'.length + 12);

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]! + 2))).join('').trimEnd() + '\n').join('');
}

export interface StoreListing {
  root: string;
  /** bytes on disk: complete blobs, partial blobs (allocated), leftovers */
  size: number;
  blobs: { digest: string; size: number; kind: string; lastUsed: string; images: string[]; inUse: boolean }[];
  partials: { digest: string; size: number; diskBytes: number; pieces: { done: number; total: number } | null; lastUsed: string; downloading: boolean }[];
  images: Inventory['images'];
  leftovers: { path: string; size: number }[];
}

export async function listStore(root: string): Promise<StoreListing> {
  const inv = await readInventory(root);
  let inUse = new Set<string>();
  try {
    inUse = new Set((await readRegistrations(root)).flatMap((r) => r.digests));
  } catch (err) {
    process.stderr.write(`swarmpull: ${(err as Error).message}\n`);
  }
  const partials: StoreListing['partials'] = [];
  for (const p of inv.partials) {
    // Held download lock: a pull is fetching it now. (Taken and released at once when free.)
    const probe = await tryBlobLock(root, p.digest);
    await probe?.release();
    partials.push({ digest: p.digest, size: p.size, diskBytes: p.diskBytes, pieces: p.pieces, lastUsed: new Date(p.lastUsed).toISOString(), downloading: !probe });
  }
  return {
    root,
    size: [...inv.blobs.map((b) => b.size), ...inv.partials.map((p) => p.diskBytes), ...inv.leftovers.map((l) => l.size)].reduce((a, b) => a + b, 0),
    blobs: inv.blobs.map((b) => ({ digest: b.digest, size: b.size, kind: b.kind, lastUsed: new Date(b.lastUsed).toISOString(), images: b.images, inUse: inUse.has(b.digest) })),
    partials,
    images: inv.images,
    leftovers: inv.leftovers.map((l) => ({ path: l.path, size: l.size })),
  };
}

export function formatListing(l: StoreListing, now = Date.now()): string {
  if (l.blobs.length === 0 && l.partials.length === 0) return `no blobs in ${l.root}\n`;
  const platform = new Map(l.images.map((i) => [i.digest, i.platform ? `${short(i.digest)} (${i.platform})` : short(i.digest)]));
  let out = '';
  if (l.blobs.length > 0) {
    out += table([
      ['DIGEST', 'KIND', 'SIZE', 'LAST USED', 'IMAGES'],
      ...l.blobs.map((b) => [
        short(b.digest),
        b.kind,
        formatBytes(b.size),
        formatAge(now - Date.parse(b.lastUsed)),
        [...b.images.map((d) => platform.get(d) ?? short(d)), ...(b.inUse ? ['[in use]'] : [])].join(', ') || '-',
      ]),
    ]);
  }
  if (l.partials.length > 0) {
    if (out) out += '\n';
    out += table([
      ['PARTIAL', 'SIZE', 'PIECES', 'ON DISK', 'LAST USED', 'STATE'],
      ...l.partials.map((p) => [
        short(p.digest),
        formatBytes(p.size),
        p.pieces ? `${p.pieces.done}/${p.pieces.total} (${Math.floor((100 * p.pieces.done) / p.pieces.total)}%)` : 'unreadable',
        formatBytes(p.diskBytes),
        formatAge(now - Date.parse(p.lastUsed)),
        p.downloading ? 'downloading' : p.pieces ? 'paused' : 'stale',
      ]),
    ]);
  }
  const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
  out += `\n${count(l.blobs.length, 'blob')} (${count(l.images.length, 'image')}), ${count(l.partials.length, 'partial')}; ${formatBytes(l.size)} in ${l.root}\n`;
  return out;
}

export async function storeLs(root: string, opts: { json?: boolean }): Promise<void> {
  const listing = await listStore(root);
  process.stdout.write(opts.json ? JSON.stringify(listing) + '\n' : formatListing(listing));
}

export function formatPrune(r: PruneResult, opts: PruneOptions, now = Date.now()): string {
  let out = '';
  const verb = r.dryRun ? 'would delete' : 'deleted';
  for (const d of r.deleted) {
    const what = d.what === 'blob' ? d.kind : d.what;
    out += `${verb} ${d.digest ?? d.path} ${what} ${formatBytes(d.size)} (${d.reason}, last used ${formatAge(now - d.lastUsed)})\n`;
  }
  for (const k of r.kept) out += `kept ${k.digest} ${k.what}: ${k.reason === 'in use' ? 'in use by a running swarmpull' : 'a pull is downloading it'}\n`;
  const freed = r.sizeBefore - r.sizeAfter;
  out += `${r.dryRun ? 'would free' : 'freed'} ${formatBytes(freed)}: ${formatBytes(r.sizeBefore)} -> ${formatBytes(r.sizeAfter)} in ${r.root}\n`;
  if (r.overMaxSize) out += `still over --max-size ${formatBytes(opts.maxSize!)}: the rest is in use\n`;
  return out;
}

export async function storePrune(root: string, opts: PruneOptions & { json?: boolean }): Promise<void> {
  const result = await prune(root, opts);
  process.stdout.write(
    opts.json
      ? JSON.stringify({ ...result, deleted: result.deleted.map((d) => ({ ...d, lastUsed: new Date(d.lastUsed).toISOString() })) }) + '\n'
      : formatPrune(result, opts),
  );
}
