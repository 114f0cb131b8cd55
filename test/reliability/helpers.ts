// Shared by the reliability suites (not a test file itself): store consistency, registry byte counts,
// OCI layout checks, small tmpfs mounts, a seeded random source.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pieceLayout, pieceRange } from '../../lib/store/pieces.ts';
import { Bitfield } from '../../lib/store/bitfield.ts';
import type { FaultProxy, RecordedRequest } from '../support/fault-proxy.ts';

const run = promisify(execFile);


export async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(c as Buffer);
  return 'sha256:' + hash.digest('hex');
}

const BITFIELD_HEADER = 16; // lib/store/partial.ts: magic(4) size(8) pieceLength(4)

/** The pieces a partial blob's bitfield file marks complete ([] when there is none or it is unreadable). */
export async function persistedPieces(storeRoot: string, digest: string, size: number): Promise<number[]> {
  const layout = pieceLayout(size);
  const bits = new Bitfield(layout.count);
  let raw: Buffer;
  try {
    raw = await readFile(join(storeRoot, 'partial/sha256', digest.slice(7) + '.pieces'));
  } catch {
    return [];
  }
  if (raw.length < BITFIELD_HEADER + bits.buffer.length || raw.toString('latin1', 0, 4) !== 'SPB1') return [];
  if (Number(raw.readBigUInt64BE(4)) !== size || raw.readUInt32BE(12) !== layout.pieceLength) return [];
  bits.buffer.set(raw.subarray(BITFIELD_HEADER, BITFIELD_HEADER + bits.buffer.length));
  const out: number[] = [];
  for (let i = 0; i < layout.count; i++) if (bits.get(i)) out.push(i);
  return out;
}

export interface StoreReport {
  /** digests of the complete blobs */
  blobs: string[];
  /** digest → pieces marked complete in its partial */
  partials: Map<string, number[]>;
}

/**
 * The store is consistent: every file in blobs/ hashes to its name, and every piece a partial marks complete holds
 * the source's bytes (`sources`: digest → the blob file of the fixture layout). Throws on the first violation.
 */
export async function checkStore(storeRoot: string, sources: Map<string, string>): Promise<StoreReport> {
  const report: StoreReport = { blobs: [], partials: new Map() };
  const blobDir = join(storeRoot, 'blobs/sha256');
  for (const hex of await readdir(blobDir).catch(() => [] as string[])) {
    const digest = `sha256:${hex}`;
    assert.equal(await fileSha256(join(blobDir, hex)), digest, `store blob ${hex} does not hash to its name`);
    report.blobs.push(digest);
  }
  const partialDir = join(storeRoot, 'partial/sha256');
  for (const name of await readdir(partialDir).catch(() => [] as string[])) {
    if (name.endsWith('.pieces')) continue;
    const digest = `sha256:${name}`;
    const source = sources.get(digest);
    if (!source) continue;
    const size = (await stat(source)).size;
    const pieces = await persistedPieces(storeRoot, digest, size);
    report.partials.set(digest, pieces);
    const layout = pieceLayout(size);
    const [data, want] = await Promise.all([open(join(partialDir, name), 'r'), open(source, 'r')]);
    try {
      for (const i of pieces) {
        const { start, end } = pieceRange(layout, i);
        const a = Buffer.alloc(end - start);
        const b = Buffer.alloc(end - start);
        await data.read(a, 0, a.length, start);
        await want.read(b, 0, b.length, start);
        assert.ok(a.equals(b), `partial ${name.slice(0, 12)}: piece ${i} is marked complete but its bytes are wrong`);
      }
    } finally {
      await data.close();
      await want.close();
    }
  }
  return report;
}

/** Blob body requests (GET /v2/.../blobs/...) a proxy saw from index `from` on. */
export function blobRequests(proxy: FaultProxy, from = 0): RecordedRequest[] {
  return proxy.requests.slice(from).filter((r) => r.method === 'GET' && r.url.includes('/blobs/sha256:'));
}

/** Body bytes of blob requests a proxy served from index `from` on. */
export function blobBytes(proxy: FaultProxy, from = 0): number {
  return blobRequests(proxy, from).reduce((a, r) => a + r.bytes, 0);
}

/** The digest a blob request asked for, and the first byte of its range. */
export function blobRequestInfo(r: RecordedRequest): { digest: string; start: number } {
  const digest = /\/blobs\/(sha256:[a-f0-9]{64})/.exec(r.url)![1]!;
  const m = /^bytes=(\d+)-/.exec(String(r.headers.range ?? ''));
  return { digest, start: m ? Number(m[1]) : 0 };
}

export async function umociUnpack(layout: string, tag: string, bundle: string): Promise<void> {
  await run('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle]);
  await rm(bundle, { recursive: true, force: true });
}

/** Tags (ref.name annotations) in an OCI layout's index.json; throws if the index is not valid JSON. */
export async function layoutTags(layout: string): Promise<string[]> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { annotations?: Record<string, string> }[] };
  return index.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name'] ?? '');
}

/** Every file under `dir`, relative paths, sorted (for "nothing else was written" checks). */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, prefix: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) await walk(join(d, e.name), `${prefix}${e.name}/`);
      else out.push(prefix + e.name);
    }
  };
  await walk(dir, '');
  return out.sort();
}

export interface Tmpfs {
  dir: string;
  resize(size: string): Promise<void>;
  unmount(): Promise<void>;
}

/** Why a tmpfs cannot be mounted here (not root, or mount refused), or undefined when it can. */
export async function tmpfsUnavailable(probeDir: string): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root to mount a small tmpfs';
  try {
    const fs = await mountTmpfs(probeDir, '64k');
    await fs.unmount();
    return undefined;
  } catch (err) {
    return `cannot mount a tmpfs here: ${(err as Error).message.split('\n')[0]}`;
  }
}

/** mount -t tmpfs -o size=SIZE on `dir` (created). */
export async function mountTmpfs(dir: string, size: string): Promise<Tmpfs> {
  await mkdir(dir, { recursive: true });
  await run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  let mounted = true;
  return {
    dir,
    resize: async (s) => {
      await run('mount', ['-o', `remount,size=${s}`, dir]);
    },
    unmount: async () => {
      if (!mounted) return;
      mounted = false;
      await run('umount', ['-l', dir]);
    },
  };
}
