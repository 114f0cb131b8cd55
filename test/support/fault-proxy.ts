// A reverse proxy in front of a real registry that injects faults on request: error statuses, Retry-After,
// redirects, connections cut mid-body (closed or reset), bodies that stall or trickle, altered bodies, delays,
// throttling, Range ignored. With `tls` it answers HTTPS and plain HTTP on the same port (told apart by the first
// byte), so a redirect can change the scheme and nothing else.
// Each test programs it with plan(); it records every request it saw (with the headers that arrived) and counts
// the body bytes it served, in all and per request.
import { readFileSync } from 'node:fs';
import { createServer, request as httpRequest, Agent, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';

export interface ProxyRequest {
  /** 0-based position among all requests this proxy received */
  index: number;
  method: string;
  /** path and query, e.g. /v2/app/blobs/sha256:... */
  url: string;
  /** headers as they arrived (lower-case names) */
  headers: IncomingHttpHeaders;
  /** whether it came over TLS */
  tls: boolean;
}

export interface Fault {
  /** wait this long before doing anything else */
  delayMs?: number;
  /** answer with this status instead of forwarding (body: `body`, headers: `headers`) */
  status?: number;
  /** Retry-After header for a `status` answer (seconds or an HTTP date) */
  retryAfter?: number | string;
  /** answer a redirect to this absolute URL (status `redirectStatus`, default 307) */
  redirectTo?: string;
  redirectStatus?: number;
  /** forward, and close the connection after this many body bytes (Content-Length promised, fewer bytes sent) */
  cutAfterBytes?: number;
  /** forward, and reset the connection (TCP RST) after this many body bytes */
  resetAfterBytes?: number;
  /** forward this many body bytes, then send nothing more, holding the connection open until the client leaves */
  stallAfterBytes?: number;
  /** forward `afterBytes` body bytes, then `bytes` every `everyMs` until the body ends or the client leaves */
  trickle?: { afterBytes: number; bytes: number; everyMs: number };
  /** Authorization to send upstream for this request in place of the client's */
  upstreamAuthorization?: string;
  /** forward the body at this many bytes per second (per answer) */
  rateBytesPerSec?: number;
  /** forward, buffer the body and send fn(body) instead; Content-Length follows, every other header is kept */
  mutateBody?: (body: Buffer) => Buffer;
  /** forward the answer without Content-Length (chunked), e.g. to test a client's own size cap */
  chunked?: boolean;
  /** forward without these request headers (e.g. ['range'] for a server that ignores Range) */
  dropRequestHeaders?: string[];
  /** headers to set on the answer (overriding the registry's when forwarding) */
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export type Plan = (req: ProxyRequest) => Fault | undefined | void;

export interface RecordedRequest extends ProxyRequest {
  status?: number;
  /** body bytes sent to the client for this request */
  bytes: number;
  /** when it arrived (performance.now()) */
  at: number;
}

export interface FaultProxy {
  /** address:port, usable as a registry name */
  host: string;
  port: number;
  requests: RecordedRequest[];
  /** body bytes sent to clients */
  bytesServed: number;
  /** set the fault plan (undefined: forward everything untouched) */
  plan(plan?: Plan): void;
  stop(): Promise<void>;
}

export interface FaultProxyOptions {
  /** host:port of the real registry */
  target: string;
  /** listen address, default 127.0.0.1 (use 127.0.0.2 for "another host" on loopback) */
  address?: string;
  /** Authorization to send upstream in place of whatever the client sent: makes this proxy stand in for a
   *  storage host that authenticates by URL (like a presigned S3 URL) while recording what the client sent. */
  upstreamAuthorization?: string;
  /** answer HTTPS (and plain HTTP too, on the same port) with this certificate and key (PEM files) */
  tls?: { cert: string; key: string };
}

export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  const [targetHost, targetPort] = splitHost(opts.target);
  const agent = new Agent({ keepAlive: true });
  let plan: Plan | undefined;

  const proxy: FaultProxy = {
    host: '',
    port: 0,
    requests: [],
    bytesServed: 0,
    plan(p) {
      plan = p;
    },
    stop: async () => {},
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const record: RecordedRequest = {
      index: proxy.requests.length,
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: { ...req.headers },
      tls: 'encrypted' in req.socket,
      bytes: 0,
      at: performance.now(),
    };
    proxy.requests.push(record);
    res.on('finish', () => (record.status = res.statusCode));
    const fault = plan?.(record) ?? undefined;
    void handle(req, res, fault ?? {}, record).catch(() => res.destroy());
  };
  const plain = createServer(onRequest);
  const secure = opts.tls ? createHttpsServer({ cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key) }, onRequest) : undefined;
  const sockets = new Set<Socket>();
  // One port for both: a TLS connection starts with a handshake record (0x16), a plain HTTP one with a method name.
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    if (!secure) return plain.emit('connection', socket);
    socket.once('readable', () => {
      const first = socket.read(1) as Buffer | null;
      if (first) socket.unshift(first);
      (first?.[0] === 0x16 ? secure : plain).emit('connection', socket);
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse, fault: Fault, record: RecordedRequest) {
    if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
    if (fault.redirectTo) {
      req.resume();
      res.writeHead(fault.redirectStatus ?? 307, { location: fault.redirectTo, 'content-length': '0', ...fault.headers });
      res.end();
      return;
    }
    if (fault.status) {
      req.resume();
      const body = Buffer.from(fault.body ?? '');
      const headers: Record<string, string> = { 'content-length': String(body.length), ...fault.headers };
      if (fault.retryAfter !== undefined) headers['retry-after'] = String(fault.retryAfter);
      res.writeHead(fault.status, headers);
      const sent = req.method === 'HEAD' ? 0 : body.length;
      proxy.bytesServed += sent;
      record.bytes += sent;
      res.end(req.method === 'HEAD' ? undefined : body);
      record.status = fault.status;
      return;
    }
    const headers: Record<string, string | string[] | undefined> = { ...req.headers, host: opts.target };
    if (opts.upstreamAuthorization) headers.authorization = opts.upstreamAuthorization;
    if (fault.upstreamAuthorization) headers.authorization = fault.upstreamAuthorization;
    for (const name of fault.dropRequestHeaders ?? []) delete headers[name.toLowerCase()];
    const upstream = httpRequest({ host: targetHost, port: targetPort, method: req.method, path: req.url, headers, agent });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
    const up = await new Promise<IncomingMessage>((resolve) => upstream.once('response', resolve));
    const outHeaders: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(up.headers)) if (v !== undefined) outHeaders[k] = v;
    Object.assign(outHeaders, fault.headers);
    if (fault.chunked) delete outHeaders['content-length'];

    if (fault.mutateBody) {
      const chunks: Buffer[] = [];
      for await (const c of up) chunks.push(c as Buffer);
      const body = fault.mutateBody(Buffer.concat(chunks));
      if (!fault.chunked) outHeaders['content-length'] = String(body.length);
      delete outHeaders['transfer-encoding'];
      res.writeHead(up.statusCode ?? 502, outHeaders);
      proxy.bytesServed += body.length;
      record.bytes += body.length;
      if (req.method !== 'HEAD') res.write(body);
      res.end();
      return;
    }
    res.writeHead(up.statusCode ?? 502, outHeaders);
    const throttle = { startedAt: performance.now(), sent: 0 };
    /** false once the client has gone */
    const send = async (chunk: Buffer): Promise<boolean> => {
      const slice = fault.rateBytesPerSec ? 16 * 1024 : chunk.length;
      for (let at = 0; at < chunk.length; at += slice) {
        const part = chunk.subarray(at, at + slice);
        const ok = await new Promise<boolean>((r) => res.write(part, (err) => r(!err)));
        if (!ok || res.destroyed) return false;
        proxy.bytesServed += part.length;
        record.bytes += part.length;
        if (fault.rateBytesPerSec) {
          throttle.sent += part.length;
          const due = throttle.startedAt + (throttle.sent / fault.rateBytesPerSec) * 1000;
          const wait = due - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }
      }
      return true;
    };
    if (fault.trickle) {
      const { afterBytes, bytes, everyMs } = fault.trickle;
      const chunks: Buffer[] = [];
      for await (const c of up) chunks.push(c as Buffer);
      const body = Buffer.concat(chunks);
      if (!(await send(body.subarray(0, afterBytes)))) return;
      for (let at = afterBytes; at < body.length; at += bytes) {
        await new Promise((r) => setTimeout(r, everyMs));
        if (res.destroyed || !(await send(body.subarray(at, at + bytes)))) return;
      }
      res.end();
      return;
    }
    const limit = fault.cutAfterBytes ?? fault.resetAfterBytes ?? fault.stallAfterBytes;
    let left = limit ?? Infinity;
    for await (const c of up) {
      const chunk = c as Buffer;
      if (limit !== undefined && chunk.length >= left) {
        // Send what is allowed, then fail mid-body, as a flaky network or a wedged server would.
        await send(chunk.subarray(0, left));
        up.destroy();
        if (fault.stallAfterBytes !== undefined) {
          if (!res.destroyed) await new Promise((r) => res.once('close', r));
        } else if (fault.resetAfterBytes !== undefined) {
          res.socket?.resetAndDestroy();
        } else {
          res.socket?.destroy();
        }
        return;
      }
      left -= chunk.length;
      if (!(await send(chunk))) {
        up.destroy();
        return;
      }
    }
    res.end();
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, opts.address ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  proxy.port = port;
  proxy.host = `${opts.address ?? '127.0.0.1'}:${port}`;
  proxy.stop = async () => {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const socket of sockets) socket.destroy();
    });
    plain.closeAllConnections();
    secure?.closeAllConnections();
    agent.destroy();
  };
  return proxy;
}

function splitHost(hostPort: string): [string, number] {
  const i = hostPort.lastIndexOf(':');
  return [hostPort.slice(0, i), Number(hostPort.slice(i + 1))];
}
