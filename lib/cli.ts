// The commander program: flags → options for the jobs. No job logic here.
import { Argument, Command, CommanderError, Option } from 'commander';
import { completionScript, SHELLS, type Shell } from './completion.ts';
import { ExitCode, SwarmpullError, usageError } from './errors.ts';
import { parsePlatform } from './image/platform.ts';
import type { OutputSpec } from './output/open.ts';
import { createProgress, type ProgressMode } from './progress.ts';
import { pull, resolveImage } from './pull.ts';
import { serve } from './serve.ts';
import { manifestReference, parseReference } from './reference.ts';
import { RegistryClient, type RegistryClientOptions } from './registry/client.ts';
import { BlobStore, defaultStoreRoot } from './store/store.ts';
import { RateLimit } from './rate-limit.ts';
import { parseDuration, parseRate, parseSize } from './units.ts';
import { storeLs, storePrune } from './store-commands.ts';
import { VERSION } from './version.ts';
import { parsePeers, readPeersFile } from './swarm/static-peers.ts';
import { loadSwarmKey } from './swarm/swarm-key.ts';
import { DEFAULT_PORT } from './swarm/swarm.ts';

interface RegistryFlags {
  plainHttp?: boolean;
  insecure?: boolean;
  creds?: string;
  debug?: boolean;
}

interface SwarmFlags {
  mdns: boolean;
  peers?: string;
  peersFile?: string;
  port?: string;
  swarmKey?: string;
  interface?: string;
  maxUploadRate?: string;
  maxDownloadRate?: string;
}

interface PullFlags extends RegistryFlags, SwarmFlags {
  platform?: string;
  oci?: string;
  output?: string;
  store?: string;
  json?: boolean;
  quiet?: boolean;
  registry: boolean;
  registryOnly?: boolean;
  linger: string;
}

function registryOptions(flags: RegistryFlags): Omit<RegistryClientOptions, 'registry'> {
  const opts: Omit<RegistryClientOptions, 'registry'> = { plainHttp: !!flags.plainHttp, insecure: !!flags.insecure };
  if (flags.creds !== undefined) {
    const i = flags.creds.indexOf(':');
    if (i <= 0) throw usageError('--creds takes USER:PASSWORD');
    opts.creds = { username: flags.creds.slice(0, i), password: flags.creds.slice(i + 1) };
  }
  if (flags.debug) opts.log = (msg) => process.stderr.write(`swarmpull[debug]: ${msg}\n`);
  return opts;
}

function outputSpec(flags: PullFlags): OutputSpec {
  if (flags.oci !== undefined && flags.output !== undefined) throw usageError('--oci and --output are exclusive: choose one output');
  if (flags.output === '-' && flags.json) throw usageError('--json writes to stdout, and so does --output -: choose one');
  if (flags.oci !== undefined) return { kind: 'oci', dir: flags.oci };
  if (flags.output !== undefined) return { kind: 'tar', path: flags.output };
  return { kind: 'docker' };
}

function parsePort(s: string): number {
  const port = Number(s);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw usageError(`--port ${s}: expected 0-65535`);
  return port;
}

function parseSeconds(s: string, flag: string): number {
  const n = Number(s);
  if (!Number.isFinite(n) || n < 0) throw usageError(`${flag} ${s}: expected a number of seconds >= 0`);
  return n * 1000;
}

/** One token bucket per direction for the whole process: every peer (and, downloading, the registry) shares it. */
function rateLimits(flags: SwarmFlags): { uploadLimit?: RateLimit; downloadLimit?: RateLimit } {
  return {
    ...(flags.maxUploadRate === undefined ? {} : { uploadLimit: new RateLimit(parseRate(flags.maxUploadRate, '--max-upload-rate')) }),
    ...(flags.maxDownloadRate === undefined ? {} : { downloadLimit: new RateLimit(parseRate(flags.maxDownloadRate, '--max-download-rate')) }),
  };
}

async function swarmOptions(flags: SwarmFlags, log: (msg: string) => void) {
  const port = flags.port === undefined ? undefined : parsePort(flags.port);
  const staticPeers = [
    ...(flags.peers ? parsePeers(flags.peers, DEFAULT_PORT) : []),
    ...(flags.peersFile ? await readPeersFile(flags.peersFile, DEFAULT_PORT) : []),
  ];
  const swarmKey = await loadSwarmKey(flags.swarmKey);
  return {
    ...(port === undefined ? {} : { port }),
    mdns: flags.mdns,
    staticPeers,
    ...(swarmKey ? { swarmKey } : {}),
    ...(flags.interface ? { interfaceAddress: flags.interface } : {}),
    log,
  };
}

function swarmFlags(cmd: Command): Command {
  return cmd
    .option('--port <n>', `TCP port for peers (default ${DEFAULT_PORT}, or any free port if taken; 0: any)`)
    .option('--no-mdns', 'do not discover peers with multicast DNS (use --peers)')
    .option('--peers <host:port,...>', 'peers to contact, for networks without multicast')
    .option('--peers-file <file>', 'peers one per line, or an Ansible INI inventory')
    .option('--swarm-key <file>', 'private swarm: only peers holding this key exchange pieces (or SWARMPULL_SWARM_KEY)')
    .option('--interface <ipv4>', 'address of the network interface for mDNS (default: the first non-loopback one)')
    .option('--max-upload-rate <size>', 'send at most SIZE bytes a second to peers, all together (e.g. 50M, 800K)')
    .option('--max-download-rate <size>', 'receive at most SIZE bytes a second from peers and the registry together (e.g. 50M)');
}

/** An AbortSignal that fires on SIGINT/SIGTERM, so a job stops cleanly and exits 130/143. */
function interruptSignal(): AbortSignal {
  const controller = new AbortController();
  const stopOn = (sig: 'SIGINT' | 'SIGTERM', code: ExitCode) =>
    process.once(sig, () => {
      controller.abort(new SwarmpullError(code, `interrupted by ${sig}`));
      // A second signal means "now".
      process.once(sig, () => process.exit(code));
    });
  stopOn('SIGINT', ExitCode.sigint);
  stopOn('SIGTERM', ExitCode.sigterm);
  return controller.signal;
}

function registryFlags(cmd: Command): Command {
  return cmd
    .option('--plain-http', 'talk HTTP, not HTTPS, to the registry (localhost/127.*: HTTPS is tried first, then HTTP)')
    .option('--insecure', 'do not verify the registry TLS certificate')
    .option('--creds <user:password>', 'registry credentials (default: docker login config, REGISTRY_AUTH_FILE)')
    .option('--debug', 'log registry and peer decisions, and stack traces, to stderr');
}

/** The end of `swarmpull pull --help`: what each example is for, then the command (test/cli/pull.test.ts parses each). */
export const PULL_EXAMPLES: readonly { what: string; argv: readonly string[] }[] = [
  { what: 'into docker load (the default), progress on stderr', argv: ['pull', 'registry.example.com/team/app:1.4'] },
  {
    what: 'into an OCI image layout, one JSON result on stdout for Ansible',
    argv: ['pull', 'registry.example.com/team/app:1.4', '--oci', '/srv/images', '--json'],
  },
  {
    what: 'a fleet in a cloud without multicast: peers from the inventory, a private swarm',
    argv: ['pull', 'registry.example.com/team/app:1.4', '--peers-file', '/etc/ansible/hosts', '--swarm-key', '/etc/swarmpull/swarm.key'],
  },
];

function examplesHelp(examples: typeof PULL_EXAMPLES): string {
  return '\nExamples:\n' + examples.map((e) => `  # ${e.what}\n  swarmpull ${e.argv.join(' ')}\n`).join('');
}

export function buildProgram(): Command {
  const program = new Command('swarmpull')
    .description('Pull a container image onto many hosts at once, swapping pieces with LAN peers.')
    .version(VERSION, '-V, --version')
    .exitOverride((err: CommanderError) => {
      // Help and --version exit 0; every usage mistake exits 2 (commander would use 1).
      const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.version';
      throw new SwarmpullError(ok ? ExitCode.ok : ExitCode.usage, err.message);
    })
    // bin/swarmpull.ts prints the one error line; commander should not print it too.
    .configureOutput({ outputError: () => {} });

  registryFlags(swarmFlags(
    program
      .command('pull')
      .description('pull IMAGE into docker load (default), an OCI layout (--oci) or a tar (-o)')
      .argument('<image>', 'image reference, e.g. registry.example.com/team/app:1.2 or …@sha256:…')
      .option('--platform <os/arch[/variant]>', 'platform to pull from a multi-arch image (default: this host)')
      .option('--oci <dir>', 'write an OCI image layout to DIR (merged into an existing one)')
      .option('-o, --output <file>', 'write a docker-load tar to FILE, or to stdout with -')
      .addOption(new Option('--store <dir>', 'blob store directory').env('SWARMPULL_STORE').default(undefined, '$XDG_CACHE_HOME/swarmpull'))
      .option('--json', 'print one JSON result object on stdout at the end')
      .option('-q, --quiet', 'no progress output')
      .option('--registry-only', 'fetch every byte from the registry, no peers')
      .option('--no-registry', 'fetch blobs from peers only (the manifest still comes from the registry)')
      .option('--linger <seconds>', 'after the image is ready, keep seeding while peers still ask, at most this long', '30')
      .addHelpText('after', examplesHelp(PULL_EXAMPLES)),
  )).action(async (image: string, flags: PullFlags) => {
    const reference = parseReference(image);
    const output = outputSpec(flags);
    const platform = flags.platform ? parsePlatform(flags.platform) : undefined;
    const store = await new BlobStore(flags.store ?? defaultStoreRoot()).init();
    const mode: ProgressMode = flags.quiet ? 'quiet' : process.stderr.isTTY ? 'tty' : 'lines';
    const progress = createProgress(mode);
    if (flags.registryOnly && !flags.registry) throw usageError('--registry-only and --no-registry leave no source of bytes');
    const log = flags.debug ? (msg: string) => process.stderr.write(`swarmpull[debug]: ${msg}\n`) : () => {};
    const swarm = flags.registryOnly ? undefined : { ...(await swarmOptions(flags, log)), lingerMs: parseSeconds(flags.linger, '--linger') };
    const limits = rateLimits(flags);
    try {
      const result = await pull({
        ...(swarm ? { swarm } : {}),
        ...limits,
        useRegistryForBlobs: flags.registry,
        reference,
        store,
        output,
        ...(platform ? { platform } : {}),
        registry: registryOptions(flags),
        signal: interruptSignal(),
        progress,
      });
      progress.stop();
      if (flags.json) process.stdout.write(JSON.stringify(result) + '\n');
      else if (!flags.quiet) process.stderr.write(`swarmpull: ${result.result || 'done'} (${result.digest}, ${(result.durationMs / 1000).toFixed(1)} s)\n`);
    } finally {
      progress.stop();
    }
  });

  registryFlags(
    program
      .command('resolve')
      .description('print the digest IMAGE points to at its registry (the index digest for a multi-arch image)')
      .argument('<image>', 'image reference')
      .option('--platform <os/arch[/variant]>', 'print the digest of this platform\'s manifest instead of the index'),
  ).action(async (image: string, flags: RegistryFlags & { platform?: string }) => {
    const reference = parseReference(image);
    const client = new RegistryClient({ ...registryOptions(flags), registry: reference.registry });
    const signal = interruptSignal();
    try {
      if (flags.platform) {
        const resolved = await resolveImage(client, reference, parsePlatform(flags.platform), signal);
        process.stdout.write(`${resolved.manifest.digest}\n`);
      } else {
        const { digest } = await client.resolveManifest(reference.repository, manifestReference(reference), signal);
        process.stdout.write(`${digest}\n`);
      }
    } finally {
      await client.close();
    }
  });

  swarmFlags(
    program
      .command('serve')
      .description('seed every complete blob in the store to LAN peers until stopped (SIGINT/SIGTERM: exit 0)')
      .addOption(new Option('--store <dir>', 'blob store directory').env('SWARMPULL_STORE').default(undefined, '$XDG_CACHE_HOME/swarmpull'))
      .option('--debug', 'log peer decisions to stderr')
      .option('-q, --quiet', 'no log lines'),
  ).action(async (flags: SwarmFlags & { store?: string; debug?: boolean; quiet?: boolean }) => {
    const store = await new BlobStore(flags.store ?? defaultStoreRoot()).init();
    const debug = flags.debug ? (msg: string) => process.stderr.write(`swarmpull[debug]: ${msg}\n`) : () => {};
    const log = flags.quiet ? () => {} : (msg: string) => process.stderr.write(`swarmpull: ${msg}\n`);
    const signal = interruptSignal();
    await serve({ store, swarm: { ...(await swarmOptions(flags, debug)), ...rateLimits(flags) }, signal, log });
    log('stopped');
  });

  const storeCommand = program.command('store').description('list or prune the blob store');
  storeCommand
    .command('ls')
    .description('list the blobs in the store with the images they belong to, and partial downloads with their progress')
    .addOption(new Option('--store <dir>', 'blob store directory').env('SWARMPULL_STORE').default(undefined, '$XDG_CACHE_HOME/swarmpull'))
    .option('--json', 'print one JSON document on stdout')
    .action(async (flags: { store?: string; json?: boolean }) => {
      await storeLs(flags.store ?? defaultStoreRoot(), { json: !!flags.json });
    });
  storeCommand
    .command('prune')
    .description('delete least-recently-used or old blobs, and leftovers of interrupted pulls; never a blob a running pull or serve uses')
    .addOption(new Option('--store <dir>', 'blob store directory').env('SWARMPULL_STORE').default(undefined, '$XDG_CACHE_HOME/swarmpull'))
    .option('--max-size <size>', 'delete least-recently-used blobs until the store takes at most SIZE (e.g. 10G, 500M; powers of 1024)')
    .option('--older-than <duration>', 'delete blobs not used for DURATION (e.g. 7d, 12h, 30m)')
    .option('--dry-run', 'print what would be deleted, delete nothing')
    .option('--json', 'print one JSON document on stdout')
    .action(async (flags: { store?: string; maxSize?: string; olderThan?: string; dryRun?: boolean; json?: boolean }) => {
      await storePrune(flags.store ?? defaultStoreRoot(), {
        ...(flags.maxSize === undefined ? {} : { maxSize: parseSize(flags.maxSize, '--max-size') }),
        ...(flags.olderThan === undefined ? {} : { olderThanMs: parseDuration(flags.olderThan, '--older-than') }),
        dryRun: !!flags.dryRun,
        json: !!flags.json,
      });
    });

  program
    .command('completion')
    .description('print the completion script for a shell (bash, zsh or fish)')
    .addArgument(new Argument('<shell>', 'the shell').choices(SHELLS))
    .action((shell: Shell) => {
      process.stdout.write(completionScript(program, shell));
    });

  return program;
}
