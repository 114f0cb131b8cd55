// What the completion generators read from the commander program.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildProgram } from '../../lib/cli.ts';
import { describe, type CommandSpec } from '../../lib/completion.ts';

const find = (spec: CommandSpec, ...path: string[]): CommandSpec => {
  let c = spec;
  for (const name of path) c = c.commands.find((s) => s.path.at(-1) === name)!;
  assert.ok(c, path.join(' '));
  return c;
};
const option = (c: CommandSpec, flag: string) => c.options.find((o) => o.flags.includes(flag))!;

test('describe: commands, nested commands, arguments', () => {
  const spec = describe(buildProgram());
  assert.deepEqual(spec.path, ['swarmpull']);
  assert.deepEqual(spec.commands.map((c) => c.path.at(-1)), ['pull', 'resolve', 'serve', 'store', 'completion', 'help']);
  assert.deepEqual(find(spec, 'store').commands.map((c) => c.path.join(' ')), ['swarmpull store ls', 'swarmpull store prune', 'swarmpull store help']);
  assert.deepEqual(find(spec, 'pull').args, [{ name: 'image', required: true, variadic: false, words: [] }]);
  assert.deepEqual(find(spec, 'completion').args[0]!.words, ['bash', 'zsh', 'fish']);
  // commander's help command completes the other commands' names
  assert.deepEqual(find(spec, 'help').args[0]!.words, ['pull', 'resolve', 'serve', 'store', 'completion']);
  assert.deepEqual(find(spec, 'store', 'help').args[0]!.words, ['ls', 'prune']);
});

test('describe: short flags, which options take a value, and what the value completes to', () => {
  const pull = find(describe(buildProgram()), 'pull');
  assert.deepEqual(option(pull, '--output').flags, ['-o', '--output']);
  assert.deepEqual(option(pull, '--output').value, { files: 'file' });
  assert.deepEqual(option(pull, '--oci').value, { files: 'dir' });
  assert.deepEqual(option(pull, '--store').value, { files: 'dir' });
  assert.deepEqual(option(pull, '--peers-file').value, { files: 'file' });
  assert.deepEqual(option(pull, '--swarm-key').value, { files: 'file' });
  const platform = option(pull, '--platform').value;
  assert.ok(platform && 'words' in platform && platform.words.includes('linux/arm/v7'));
  assert.equal(option(pull, '--platform').valueName, 'os/arch[/variant]');
  assert.equal(option(pull, '--port').value, null, 'takes a value, completes nothing');
  assert.equal(option(pull, '--json').value, undefined, 'takes no value');
  assert.equal(option(pull, '--no-mdns').value, undefined);
  assert.deepEqual(option(pull, '--help').flags, ['-h', '--help']);
});
