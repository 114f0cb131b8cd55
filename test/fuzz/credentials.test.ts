// Fuzz: docker's and podman's credential files ($DOCKER_CONFIG/config.json, REGISTRY_AUTH_FILE). Whatever they
// hold, a lookup gives credentials or none (then the pull goes anonymous): it never throws.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lookupCredentials } from '../../lib/registry/credentials.ts';
import { fc, fuzz, mutated, weirdJson } from './fuzz.ts';

let dir: string;
let emptyPath: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'swarmpull-fuzz-creds-'));
  // Helpers named by the fuzzer are looked up here and never found: nothing on this machine is run.
  emptyPath = join(dir, 'no-helpers');
  await mkdir(emptyPath);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const REGISTRIES = ['docker.io', 'registry.example.com:5000', '127.0.0.1:5000'];
const field = <T>(valid: fc.Arbitrary<T>) => fc.oneof({ arbitrary: valid, weight: 6 }, { arbitrary: weirdJson, weight: 1 });
const hostKey = fc.oneof(fc.constantFrom(...REGISTRIES, 'https://index.docker.io/v1/', 'http://registry.example.com:5000/v2/'), fc.string({ maxLength: 20 }));
const auth = fc.tuple(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 })).map(([u, p]) => Buffer.from(`${u}:${p}`).toString('base64'));
const entry = fc.record(
  { auth: field(fc.oneof(auth, fc.base64String({ maxLength: 12 }))), username: field(fc.string({ maxLength: 8 })), password: field(fc.string({ maxLength: 8 })), identitytoken: field(fc.string({ maxLength: 8 })) },
  { requiredKeys: [] },
);
const helperName = fc.oneof(fc.constantFrom('pass', 'secretservice', 'desktop', '../../bin/sh', '-x', ''), fc.string({ maxLength: 12 }));
const config = fc.record(
  {
    auths: field(fc.dictionary(hostKey, field(entry), { maxKeys: 3 })),
    credHelpers: field(fc.dictionary(hostKey, field(helperName), { maxKeys: 2 })),
    credsStore: field(helperName),
  },
  { requiredKeys: [] },
);
const text = config.map((c) => Buffer.from(JSON.stringify(c)));
const CORPUS = [Buffer.from(JSON.stringify({ auths: { 'docker.io': { auth: Buffer.from('u:p').toString('base64') } } }))];
const fileArb = fc.oneof(text, mutated(text, CORPUS, 8192), fc.constantFrom(Buffer.from(''), Buffer.from('null'), Buffer.from('[]'), Buffer.from('{"auths":'), Buffer.from([0xff, 0xfe, 0x00])));

test('fuzz: any credentials file gives credentials or none, never an exception', async (t) => {
  let found = 0;
  let n = 0;
  const r = await fuzz(
    'docker config.json',
    fc.record({ file: fileArb, registry: fc.constantFrom(...REGISTRIES), podman: fc.boolean() }),
    async ({ file, registry, podman }) => {
      const home = join(dir, `h${n++}`);
      await mkdir(home);
      const path = join(home, podman ? 'auth.json' : 'config.json');
      await writeFile(path, file);
      const env = { PATH: emptyPath, HOME: home, DOCKER_CONFIG: home, ...(podman ? { REGISTRY_AUTH_FILE: path } : {}) };
      const logs: string[] = [];
      const creds = await lookupCredentials(registry, { env, log: (m) => logs.push(m), helperTimeoutMs: 2000 });
      if (creds) {
        found++;
        assert.equal(typeof creds.username, 'string');
        assert.equal(typeof creds.password, 'string');
      }
      for (const l of logs) assert.ok(!l.includes('\n'), `log lines are one line: ${JSON.stringify(l)}`);
      await rm(home, { recursive: true, force: true });
    },
    { hangMs: 5000 },
  );
  t.diagnostic(`${r.runs} files (${found} gave credentials) in ${r.seconds.toFixed(1)} s`);
  assert.ok(found > 0);
});
