// The parts of bencode 4 that swarmpull uses; the package ships no types.
declare module 'bencode' {
  const bencode: {
    encode(value: unknown): Uint8Array;
    decode(data: Uint8Array): unknown;
  };
  export default bencode;
}
