import { test } from 'node:test';
import assert from 'node:assert/strict';
import Wire from 'bittorrent-protocol';
import { missingInternals } from '../../lib/swarm/bounded-wire.ts';

test("the hardened wire finds the library's private members it overrides, and names what a different version lacks", () => {
  assert.deepEqual(missingInternals(Wire.prototype, new Wire()), []);
  // a version that renamed a method and dropped a field of the receive buffer
  class Renamed extends Wire {}
  (Renamed.prototype as unknown as Record<string, unknown>)._onMessageLength = undefined;
  const instance = new Renamed();
  delete (instance as unknown as Record<string, unknown>)._parserSize;
  assert.deepEqual(missingInternals(Renamed.prototype, instance), ['method _onMessageLength', 'field _parserSize']);
});
