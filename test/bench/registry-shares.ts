// How evenly one shaped registry link is shared by many TCP downloads at once, as in a fan-out's first seconds
// (N hosts x 4 registry requests): the simulator's --registry-hog and --registry-share-spread. N hosts in network
// namespaces, tbf both ways on every link (test/support/netns.ts), a static HTTP server in the registry's namespace;
// each host runs K downloads at once; the bytes each connection had acknowledged (ss -ti at the server) over S seconds,
// once all are past their start, give its share against a fair one. Root.
//   node test/bench/registry-shares.ts [--hosts 8] [--per-host 4] [--rate-mbit 20] [--seconds 15] [--runs 3]
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { canUseNetns, createLan } from '../support/netns.ts';

/** seconds for every download to be connected and past its first burst before the window opens */
const SETTLE_S = 4;
const usage = (msg: string): never => {
  process.stderr.write(`registry-shares: ${msg}\nusage: node test/bench/registry-shares.ts [--hosts N] [--per-host K] [--rate-mbit R] [--seconds S] [--runs R]\n`);
  process.exit(2);
};
let values: Record<string, string | undefined> = {};
try {
  values = parseArgs({
    options: {
      hosts: { type: 'string', default: '8' },
      'per-host': { type: 'string', default: '4' },
      'rate-mbit': { type: 'string', default: '20' },
      seconds: { type: 'string', default: '15' },
      runs: { type: 'string', default: '3' },
    },
  }).values as Record<string, string | undefined>;
} catch (err) {
  usage((err as Error).message);
}
const int = (flag: string): number => {
  const n = Number(values[flag]);
  if (!(Number.isInteger(n) && n > 0)) usage(`--${flag} ${values[flag]}: expected a positive integer`);
  return n;
};
const hosts = int('hosts');
const perHost = int('per-host');
const rateMbit = int('rate-mbit');
const seconds = int('seconds');
const runs = int('runs');
if (process.getuid?.() !== 0) usage('needs root (network namespaces, tc)');
if (!canUseNetns()) usage('cannot create network namespaces here');

const dir = await mkdtemp(join(tmpdir(), 'swarmpull-shares-'));
// sparse: more than any download can take in the time at the link's rate
await writeFile(join(dir, 'blob'), '');
await truncate(join(dir, 'blob'), Math.ceil(((rateMbit * 1e6) / 8) * seconds * 4));
const lan = await createLan({ hosts, rateMbit, withRegistryHost: true });
const reg = lan.registryHost!;
const server = lan.spawn(reg, 'python3', ['-m', 'http.server', '8080', '--bind', reg.address, '--directory', dir], { stdio: 'ignore' });
try {
  await new Promise((r) => setTimeout(r, 1500));
  const fair = (rateMbit * 1e6) / 8 / (hosts * perHost);
  const spreads: number[] = [];
  /** bytes each connection of the server has had acknowledged, by the client's address:port (ss -ti, in its namespace) */
  const acked = async (): Promise<Map<string, number>> => {
    const out = (await lan.exec(reg, 'ss', ['-tinH', 'state', 'established', '( sport = :8080 )'])).stdout;
    const map = new Map<string, number>();
    // each connection: a line with the addresses, then a line of TCP info with bytes_acked
    const lines = out.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const peer = /\s(\S+:\d+)\s*$/.exec(lines[i]!.trim().replace(/\s+/g, ' ').split(' ').slice(0, 5).join(' '));
      const info = /bytes_acked:(\d+)/.exec(lines[i + 1] ?? '');
      if (peer && info) map.set(peer[1]!, Number(info[1]));
    }
    return map;
  };
  for (let run = 0; run < runs; run++) {
    // the downloads run past the window on both sides: their start (one process each, on a busy machine) and end
    const downloads = lan.hosts.flatMap((h) =>
      Array.from({ length: perHost }, () =>
        lan.exec(h, 'curl', ['-s', '-o', '/dev/null', '--max-time', String(seconds + 2 * SETTLE_S), `http://${reg.address}:8080/blob`], { timeoutMs: (seconds + 60) * 1000 }),
      ),
    );
    await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
    const before = await acked();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const after = await acked();
    await Promise.all(downloads);
    const bytes = [...after].filter(([k]) => before.has(k)).map(([k, v]) => v - before.get(k)!);
    if (bytes.length < hosts * perHost) process.stderr.write(`registry-shares: ${bytes.length} of ${hosts * perHost} connections seen in both snapshots\n`);
    const shares = bytes.map((b) => b / seconds / fair).sort((a, b) => a - b);
    process.stdout.write(`shares: ${shares.map((x) => x.toFixed(2)).join(' ')}\n`);
    const mean = shares.reduce((a, b) => a + b, 0) / shares.length;
    const sd = Math.sqrt(shares.reduce((a, b) => a + (b - mean) ** 2, 0) / shares.length);
    // a uniform spread over [1 - s, 1 + s] has a standard deviation of s / sqrt(3)
    const spread = (sd / mean) * Math.sqrt(3);
    spreads.push(spread);
    process.stdout.write(
      `run ${run + 1}: ${shares.length} downloads, share of a fair one min ${shares[0]!.toFixed(2)} p25 ${shares[Math.floor(shares.length / 4)]!.toFixed(2)} median ${shares[shares.length >> 1]!.toFixed(2)} p75 ${shares[Math.floor((3 * shares.length) / 4)]!.toFixed(2)} max ${shares.at(-1)!.toFixed(2)}; link used ${(mean * 100).toFixed(0)}%; sd/mean ${(sd / mean).toFixed(2)} = uniform spread ${spread.toFixed(2)}\n`,
    );
  }
  spreads.sort((a, b) => a - b);
  process.stdout.write(`median spread: ${spreads[spreads.length >> 1]!.toFixed(2)} (--registry-share-spread)\n`);
} finally {
  server.kill();
  await lan.destroy();
  await rm(dir, { recursive: true, force: true });
}
