// The parts of bittorrent-protocol 5 (webtorrent) that the wire interop test uses; the package ships no types.
declare module 'bittorrent-protocol' {
  import { Duplex } from 'node:stream';

  interface PeerPieces {
    get(index: number): boolean;
  }

  interface Request {
    piece: number;
    offset: number;
    length: number;
  }

  export default class Wire extends Duplex {
    constructor(type?: string);
    peerId: string | null;
    peerChoking: boolean;
    amChoking: boolean;
    peerInterested: boolean;
    amInterested: boolean;
    hasFast: boolean;
    peerPieces: PeerPieces;
    requests: Request[];
    peerRequests: Request[];
    /** bytes of piece data sent (the library counts each answer it queues) */
    uploaded: number;
    extendedMapping: Record<number, string>;
    /** the peer's extended-message ids by name, from its extended handshake */
    peerExtendedMapping: Record<string, number>;
    extendedHandshake: Record<string, unknown>;
    peerExtendedHandshake: Record<string, unknown>;
    handshake(infoHash: Uint8Array | string, peerId: Uint8Array | string, extensions?: { fast?: boolean; dht?: boolean }): void;
    bitfield(bits: Uint8Array): void;
    have(index: number): void;
    haveAll(): void;
    haveNone(): void;
    choke(): void;
    unchoke(): void;
    interested(): void;
    uninterested(): void;
    request(index: number, offset: number, length: number, cb: (err: Error | null, block: Uint8Array | null) => void): void;
    piece(index: number, offset: number, block: Uint8Array): void;
    cancel(index: number, offset: number, length: number): void;
    reject(index: number, offset: number, length: number): void;
    extended(ext: string | number, obj: Uint8Array | Record<string, unknown>): void;
    setKeepAlive(enable: boolean): void;
    setTimeout(ms: number, unref?: boolean): void;
    destroy(err?: Error): this;

    on(event: 'handshake', cb: (infoHash: string, peerId: string, extensions: { fast?: boolean; extended?: boolean }) => void): this;
    on(event: 'extended', cb: (ext: string | number, payload: Record<string, unknown> | Uint8Array) => void): this;
    on(event: 'bitfield', cb: (bits: PeerPieces) => void): this;
    on(event: 'have', cb: (index: number) => void): this;
    on(event: 'have-all' | 'have-none' | 'choke' | 'unchoke' | 'interested' | 'uninterested' | 'timeout' | 'close' | 'end' | 'finish', cb: () => void): this;
    on(event: 'request', cb: (index: number, offset: number, length: number, respond: (err: Error | null, block?: Uint8Array) => void) => void): this;
    on(event: 'error', cb: (err: Error) => void): this;
    on(event: string, cb: (...args: any[]) => void): this;
  }
}
