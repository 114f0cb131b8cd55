// Shell completions: generated from the commander program, committed in completions/, and loaded here in the
// real shells (bash, zsh, fish), which are asked what they would complete.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildProgram } from '../../lib/cli.ts';
import { completionScript, SHELLS } from '../../lib/completion.ts';
import { COMPLETION_FILES } from '../../completions/generate.ts';
import { runCli } from '../support/cli.ts';

const run = promisify(execFile);
const COMPLETIONS = fileURLToPath(new URL('../../completions/', import.meta.url));
const file = (shell: keyof typeof COMPLETION_FILES) => join(COMPLETIONS, COMPLETION_FILES[shell]);

/** Run a shell; the environment is kept small so no user configuration gets in. */
async function shell(cmd: string, args: string[], cwd?: string): Promise<string> {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir(), TERM: 'xterm', LANG: 'C.UTF-8' };
  const { stdout } = await run(cmd, args, { env, timeout: 30_000, ...(cwd ? { cwd } : {}) });
  return stdout;
}

test('the committed completion files are what the program generates now (run `npm run completions`)', async () => {
  for (const sh of SHELLS) {
    const committed = await readFile(file(sh), 'utf8');
    assert.equal(committed, completionScript(buildProgram(), sh), `${COMPLETION_FILES[sh]} is stale: run npm run completions`);
    const printed = await runCli(['completion', sh]);
    assert.equal(printed.code, 0, printed.stderr);
    assert.equal(printed.stdout, committed, `swarmpull completion ${sh}`);
  }
});

test('swarmpull completion with an unknown shell is a usage error', async () => {
  for (const args of [['completion', 'tcsh'], ['completion']]) {
    const r = await runCli(args);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^swarmpull: /);
  }
});

test('every option of the program, with its short flag, is in every script', () => {
  const program = buildProgram();
  const scripts = SHELLS.map((sh) => completionScript(program, sh));
  const pull = program.commands.find((c) => c.name() === 'pull')!;
  const [bash, zsh, fish] = scripts as [string, string, string];
  for (const o of pull.options) {
    for (const s of scripts) assert.ok(s.includes(o.long!.slice(2)), `${o.long} missing`);
    if (!o.short) continue;
    assert.ok(bash.includes(` ${o.short} `), `${o.short} missing in bash`);
    assert.ok(zsh.includes(`)${o.short}`), `${o.short} missing in zsh`);
    assert.ok(fish.includes(`-s ${o.short.slice(1)} -l ${o.long!.slice(2)}`), `${o.short} missing in fish`);
  }
  for (const s of scripts) for (const word of ['store', 'prune', 'max-size', 'older-than', 'dry-run', 'completion']) assert.ok(s.includes(word), word);
});

test('the scripts parse in their shells', async () => {
  await shell('bash', ['-n', file('bash')]);
  await shell('zsh', ['-n', file('zsh')]);
  await shell('fish', ['--no-execute', file('fish')]);
});

// ---- bash: source the file, set COMP_WORDS/COMP_CWORD, call the function, print COMPREPLY ----

async function bashComplete(words: string[], cwd?: string): Promise<string[]> {
  const script = `source ${JSON.stringify(file('bash'))}
COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMP_LINE="$*"; COMP_POINT=\${#COMP_LINE}
fn=$(complete -p swarmpull | sed -E 's/.* -F ([^ ]+) .*/\\1/')
"$fn" swarmpull "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\\n' "\${COMPREPLY[@]}"`;
  return (await shell('bash', ['-c', script, 'bash', ...words], cwd)).split('\n').filter(Boolean);
}

test('bash: subcommands, options, option values, file names', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'swarmpull-compl-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'layouts'));
  await writeFile(join(dir, 'key.txt'), 'k');

  const top = await bashComplete(['swarmpull', '']);
  for (const c of ['pull', 'serve', 'resolve', 'store', 'completion']) assert.ok(top.includes(c), `${c} in ${top}`);
  const pullOpts = await bashComplete(['swarmpull', 'pull', '--']);
  for (const o of ['--platform', '--oci', '--json', '--output', '--peers-file', '--swarm-key', '--no-mdns']) assert.ok(pullOpts.includes(o), `${o} in ${pullOpts}`);
  assert.ok(!pullOpts.includes('--max-size'));
  const dash = await bashComplete(['swarmpull', 'pull', '-']);
  assert.ok(dash.includes('-o') && dash.includes('-q') && dash.every((o) => o.startsWith('-')), `${dash}`);
  assert.deepEqual(await bashComplete(['swarmpull', 'pull', '--platform', 'linux/arm']), ['linux/arm64', 'linux/arm64/v8', 'linux/arm/v7', 'linux/arm/v6']);
  // an option's value is skipped when finding the subcommand: "store" here is a directory, not the subcommand
  assert.ok((await bashComplete(['swarmpull', 'pull', '--oci', 'store', '--j'])).includes('--json'));
  assert.deepEqual(await bashComplete(['swarmpull', 'store', '']), ['ls', 'prune', 'help']);
  const prune = await bashComplete(['swarmpull', 'store', 'prune', '--']);
  for (const o of ['--max-size', '--older-than', '--dry-run', '--store', '--json']) assert.ok(prune.includes(o), `${o} in ${prune}`);
  assert.deepEqual(await bashComplete(['swarmpull', 'completion', '']), ['bash', 'zsh', 'fish']);
  assert.deepEqual(await bashComplete(['swarmpull', 'pull', '--oci', ''], dir), ['layouts']);
  assert.deepEqual((await bashComplete(['swarmpull', 'serve', '--swarm-key', ''], dir)).sort(), ['key.txt', 'layouts']);
  assert.deepEqual(await bashComplete(['swarmpull', 'pull', '--port', '']), []);
});

// ---- zsh: a zsh in a pseudo-terminal (zpty) completes the line with TAB; a compadd wrapper prints every match ----

const ZSH_CAPTURE = `# zsh -f capture.zsh fpath|source PATH 'command line': print the completions zsh offers at the end of the line.
# A zsh in a pseudo-terminal (zpty) runs compinit (the completions file first on $fpath, or sourced after it);
# compadd is wrapped to print every match it adds after a marker, a post-completion hook prints an end marker,
# and the line is sent with a TAB. (Markers are spelt in two pieces, so the terminal's echo never contains them.)
zmodload zsh/zpty || exit 3
zpty z zsh -f -i
if [[ $1 == fpath ]]; then
  zpty -w z "fpath=(\${(q)2} \\$fpath); autoload -Uz compinit; compinit -u -D"
else
  zpty -w z "autoload -Uz compinit; compinit -u -D; source \${(q)2}"
fi
zpty -w z 'compadd() { local -a __m; builtin compadd -O __m "$@"; (( $#__m )) && print -rl -- \${(@)__m/#/"<<""M>>"} >/dev/tty; builtin compadd "$@" }'
zpty -w z 'comppostfuncs=(__done); __done() { print -r "<<""END>>" >/dev/tty }'
zpty -w -n z "$3"$'\\t'
local line
local -a out
while zpty -r z line; do
  [[ $line == *'<<END>>'* ]] && break
  [[ $line == *'<<M>>'* ]] && out+=(\${\${line##*<<M>>}%%$'\\r'*})
done
zpty -d z
print -rl -- \${(u)out}
`;

test('zsh: subcommands, options, option values, file names (autoloaded from $fpath, and sourced)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'swarmpull-compl-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const capture = join(dir, 'capture.zsh');
  await writeFile(capture, ZSH_CAPTURE);
  await mkdir(join(dir, 'work', 'layouts'), { recursive: true });
  const zshComplete = async (line: string, mode: 'fpath' | 'source' = 'fpath') =>
    (await shell('zsh', ['-f', capture, mode, mode === 'fpath' ? COMPLETIONS : file('zsh'), line], join(dir, 'work'))).split('\n').filter(Boolean);

  for (const mode of ['fpath', 'source'] as const) {
    const top = await zshComplete('swarmpull ', mode);
    for (const c of ['pull', 'serve', 'resolve', 'store', 'completion']) assert.ok(top.includes(c), `${mode}: ${c} in ${top}`);
  }
  const pullOpts = await zshComplete('swarmpull pull --');
  for (const o of ['--platform', '--oci', '--json', '--output', '--peers-file', '--swarm-key']) assert.ok(pullOpts.includes(o), `${o} in ${pullOpts}`);
  assert.ok((await zshComplete('swarmpull pull -')).includes('-o'));
  const platforms = await zshComplete('swarmpull pull --platform ');
  for (const p of ['linux/amd64', 'linux/arm64', 'linux/arm/v7']) assert.ok(platforms.includes(p), `${p} in ${platforms}`);
  assert.deepEqual((await zshComplete('swarmpull store ')).sort(), ['help', 'ls', 'prune']);
  const prune = await zshComplete('swarmpull store prune --');
  for (const o of ['--max-size', '--older-than', '--dry-run']) assert.ok(prune.includes(o), `${o} in ${prune}`);
  assert.deepEqual(await zshComplete('swarmpull completion '), ['bash', 'zsh', 'fish']);
  assert.ok((await zshComplete('swarmpull pull --oci ')).includes('layouts'));
});

// ---- fish: complete -C asks fish what it would offer ----

async function fishComplete(line: string, cwd?: string): Promise<string[]> {
  const out = await shell('fish', ['--no-config', '-c', `source ${file('fish')}; complete -C ${JSON.stringify(line)}`], cwd);
  return out.split('\n').filter(Boolean).map((l) => l.split('\t')[0]!);
}

test('fish: subcommands, options, option values, file names', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'swarmpull-compl-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'layouts'));
  await writeFile(join(dir, 'key.txt'), 'k');

  const top = await fishComplete('swarmpull ');
  for (const c of ['pull', 'serve', 'resolve', 'store', 'completion']) assert.ok(top.includes(c), `${c} in ${top}`);
  const pullOpts = await fishComplete('swarmpull pull --');
  for (const o of ['--platform', '--oci', '--json', '--output', '--peers-file']) assert.ok(pullOpts.includes(o), `${o} in ${pullOpts}`);
  assert.ok((await fishComplete('swarmpull pull -')).includes('-o'));
  const platforms = await fishComplete('swarmpull pull --platform ');
  assert.ok(platforms.includes('linux/arm64') && platforms.includes('linux/amd64'), `${platforms}`);
  assert.ok(!platforms.includes('layouts/'));
  assert.deepEqual((await fishComplete('swarmpull store ')).sort(), ['help', 'ls', 'prune']);
  const prune = await fishComplete('swarmpull store prune --');
  for (const o of ['--max-size', '--older-than', '--dry-run']) assert.ok(prune.includes(o), `${o} in ${prune}`);
  assert.deepEqual((await fishComplete('swarmpull completion ')).sort(), ['bash', 'fish', 'zsh']);
  assert.deepEqual(await fishComplete('swarmpull pull --oci ', dir), ['layouts/']);
  assert.deepEqual((await fishComplete('swarmpull serve --swarm-key ', dir)).sort(), ['key.txt', 'layouts/']);
  assert.deepEqual(await fishComplete('swarmpull pull --port ', dir), []);
  // an option's value is skipped when finding the subcommand
  assert.ok((await fishComplete('swarmpull pull --oci store --j', dir)).includes('--json'));
});
