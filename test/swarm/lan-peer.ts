// Drives test/swarm/fixtures/mdns-peer.ts in a namespace of a test LAN and collects what it reports.
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import type { Lan, LanHost } from '../support/netns.ts';

export const PEER_SCRIPT = fileURLToPath(new URL('./fixtures/mdns-peer.ts', import.meta.url));
export const HOSTILE_SCRIPT = fileURLToPath(new URL('./fixtures/hostile.ts', import.meta.url));

export interface PeerEvent {
  ev: 'ready' | 'peer' | 'log' | 'ack';
  /** ms since the fixture called start() */
  t: number;
  id?: string;
  host?: string;
  port?: number;
  msg?: string;
  instance?: string;
  address?: string;
  cmd?: string;
}

export class LanPeer {
  readonly host: LanHost;
  readonly port: number;
  readonly events: PeerEvent[] = [];
  readonly spawnedAt = performance.now();
  private readonly child: ChildProcess;
  private stderr = '';
  private readonly listeners = new Set<() => void>();

  constructor(lan: Lan, host: LanHost, port: number, args: string[]) {
    this.host = host;
    this.port = port;
    this.child = lan.spawn(host, process.execPath, [PEER_SCRIPT, '--port', String(port), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.events.push(JSON.parse(line) as PeerEvent);
      for (const l of this.listeners) l();
    });
    this.child.on('exit', () => {
      for (const l of this.listeners) l();
    });
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** `host:port` of the peers reported for an id, counting events from index `from` on. */
  peers(id: string, from = 0): Set<string> {
    return new Set(this.events.slice(from).filter((e) => e.ev === 'peer' && e.id === id).map((e) => `${e.host}:${e.port}`));
  }

  logs(): string[] {
    return this.events.filter((e) => e.ev === 'log').map((e) => e.msg!);
  }

  /** Resolves with the first event (from index `from`) that matches, or rejects after timeoutMs. */
  waitFor(what: string, pred: (e: PeerEvent, all: PeerEvent[]) => boolean, timeoutMs: number, from = 0): Promise<PeerEvent> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.events.slice(from).find((e) => pred(e, this.events));
        if (hit) return done(() => resolve(hit));
        if (!this.alive) done(() => reject(new Error(`${this.host.name}: exited while waiting for ${what}; stderr: ${this.stderr}`)));
      };
      const timer = setTimeout(
        () => done(() => reject(new Error(`${this.host.name}: no ${what} within ${timeoutMs} ms; events: ${JSON.stringify(this.events)}; stderr: ${this.stderr}`))),
        timeoutMs,
      );
      const done = (f: () => void) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        f();
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Wait until every one of `expected` (host:port) was reported for the id. */
  waitForPeers(id: string, expected: string[], timeoutMs: number, from = 0): Promise<PeerEvent> {
    return this.waitFor(`peers ${expected.join(',')}`, () => expected.every((p) => this.peers(id, from).has(p)), timeoutMs, from);
  }

  /** Send a command and wait for its ack; returns the index of the ack in events. */
  async command(cmd: string, id?: string, more: Record<string, unknown> = {}): Promise<number> {
    const before = this.events.length;
    this.child.stdin!.write(JSON.stringify({ cmd, id, ...more }) + '\n');
    await this.waitFor(`ack of ${cmd}`, (e) => e.ev === 'ack' && e.cmd === cmd, 5000, before);
    return this.events.length;
  }

  async stop(): Promise<void> {
    if (!this.alive) return;
    const exited = new Promise<void>((res) => this.child.once('exit', () => res()));
    this.child.stdin!.write(JSON.stringify({ cmd: 'stop' }) + '\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
}
