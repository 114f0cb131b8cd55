// Shell completion scripts generated from the commander program itself, so they never drift from its flags.
// describe() reads commands, options and arguments; one small generator per shell turns that into a script.
import { Help, type Command, type Option } from 'commander';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

/** What an option's value (or an argument) completes to: file names, directory names, or a list of words. */
export type ValueCompletion = { files: 'file' | 'dir' } | { words: string[] } | null;

export interface OptionSpec {
  /** "-o", "--output" */
  flags: string[];
  description: string;
  /** null: the option takes no value */
  value: ValueCompletion | undefined;
  /** the value's name in help, e.g. "file" */
  valueName: string;
}

export interface ArgSpec {
  name: string;
  required: boolean;
  variadic: boolean;
  words: string[];
}

export interface CommandSpec {
  /** ["swarmpull", "store", "prune"] */
  path: string[];
  description: string;
  options: OptionSpec[];
  args: ArgSpec[];
  commands: CommandSpec[];
}

/** Values suggested for options that take free text: platforms images are commonly built for. */
const SUGGESTIONS: Record<string, string[]> = {
  '--platform': ['linux/amd64', 'linux/arm64', 'linux/arm64/v8', 'linux/arm/v7', 'linux/arm/v6', 'linux/386', 'linux/ppc64le', 'linux/s390x', 'linux/riscv64'],
};

function optionSpec(o: Option): OptionSpec {
  const flags = [o.short, o.long].filter((f): f is string => !!f);
  const m = /<(.+)>|\[(.+)\]/.exec(o.flags);
  const valueName = m?.[1] ?? m?.[2] ?? '';
  const takesValue = o.required || o.optional;
  let value: ValueCompletion | undefined;
  if (!takesValue) value = undefined;
  else if (o.argChoices) value = { words: o.argChoices };
  else if (o.long && SUGGESTIONS[o.long]) value = { words: SUGGESTIONS[o.long]! };
  // The value's name in the flags says what it is: "--oci <dir>", "--peers-file <file>".
  else if (valueName === 'file' || valueName === 'dir') value = { files: valueName };
  else value = null;
  return { flags, description: o.description, value, valueName };
}

export function describe(cmd: Command, parentPath: string[] = []): CommandSpec {
  const help = new Help();
  const path = [...parentPath, cmd.name()];
  const commands = help.visibleCommands(cmd);
  const names = commands.map((c) => c.name()).filter((n) => n !== 'help');
  return {
    path,
    description: cmd.description(),
    options: help.visibleOptions(cmd).map(optionSpec),
    args: cmd.registeredArguments.map((a) => ({ name: a.name(), required: a.required, variadic: a.variadic, words: a.argChoices ?? [] })),
    commands: commands.map((c) => {
      const spec = describe(c, path);
      // commander's own `help [command]` completes the names of the other commands
      if (c.name() === 'help' && c.registeredArguments.length === 1) spec.args[0]!.words = names;
      return spec;
    }),
  };
}

function allCommands(spec: CommandSpec): CommandSpec[] {
  return [spec, ...spec.commands.flatMap(allCommands)];
}

export function completionScript(program: Command, shell: Shell): string {
  const spec = describe(program);
  return shell === 'bash' ? bashScript(spec) : shell === 'zsh' ? zshScript(spec) : fishScript(spec);
}

// ---- bash ----

const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function bashScript(root: CommandSpec): string {
  const name = root.path[0]!;
  const fn = `_${name.replace(/[^a-zA-Z0-9_]/g, '_')}`;
  const cmds = allCommands(root);
  const specs = cmds.map((c) => {
    const options = c.options.flatMap((o) => o.flags);
    const valued = c.options.filter((o) => o.value !== undefined).flatMap((o) => o.flags);
    return (
      `    ${sq(c.path.join(' '))})\n` +
      `      cmds=${sq(c.commands.map((s) => s.path.at(-1)!).join(' '))}\n` +
      `      args=${sq(c.args.flatMap((a) => a.words).join(' '))}\n` +
      `      opts=${sq(options.join(' '))}\n` +
      `      valued=${sq(valued.length ? ` ${valued.join(' ')} ` : '')} ;;\n`
    );
  });
  // One case arm per way of completing a value, listing "command option" pairs.
  const arms = new Map<string, string[]>();
  for (const c of cmds) {
    for (const o of c.options) {
      if (!o.value) continue;
      const action =
        'files' in o.value
          ? `compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen ${o.value.files === 'dir' ? '-d' : '-f'} -- "$cur"))`
          : `COMPREPLY=($(compgen -W ${sq(o.value.words.join(' '))} -- "$cur"))`;
      arms.set(action, [...(arms.get(action) ?? []), ...o.flags.map((f) => sq(`${c.path.join(' ')} ${f}`))]);
    }
  }
  const valueArms = [...arms].map(([action, patterns]) => `      ${patterns.join(' | \\\n      ')})\n        ${action} ;;\n`).join('');
  return `# bash completion for ${name}, generated from its commander program (\`${name} completion bash\`): do not edit.
# Install: copy to /usr/share/bash-completion/completions/${name}, or source it from ~/.bashrc.

# ${fn}_spec COMMAND: sets cmds (subcommands), args (argument values), opts (options), valued (options taking a value).
${fn}_spec() {
  case "$1" in
${specs.join('')}  esac
}

${fn}() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} cmd=${name} cmds args opts valued i w
  ${fn}_spec "$cmd"
  # The subcommand being completed: walk the words before the cursor, skipping the values of options.
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    if [[ $valued == *" $w "* ]]; then
      ((i++))
    elif [[ $w != -* && " $cmds " == *" $w "* ]]; then
      cmd="$cmd $w"
      ${fn}_spec "$cmd"
    fi
  done
  if [[ $valued == *" $prev "* ]]; then
    COMPREPLY=()
    case "$cmd $prev" in
${valueArms}    esac
    return 0
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$cmds $args" -- "$cur"))
  fi
}

complete -F ${fn} ${name}
`;
}

// ---- zsh ----

/** A single-quoted zsh word. */
const zq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
/** Text inside an _arguments [description] or :message: */
const zesc = (s: string) => s.replace(/\\/g, '\\\\').replace(/([[\]:])/g, '\\$1');

function zshAction(v: ValueCompletion): string {
  if (!v) return ' ';
  if ('files' in v) return v.files === 'dir' ? '_files -/' : '_files';
  return `(${v.words.join(' ')})`;
}

function zshFunction(c: CommandSpec): string {
  const fn = '_' + c.path.join('_').replace(/[^a-zA-Z0-9_]/g, '_');
  const specs: string[] = [];
  for (const o of c.options) {
    const exclusive = o.flags.length > 1 ? `(${o.flags.join(' ')})` : '';
    for (const f of o.flags) {
      const suffix = o.value === undefined ? '' : f.startsWith('--') ? '=' : '+';
      const value = o.value === undefined ? '' : `:${zesc(o.valueName || 'value')}:${zshAction(o.value)}`;
      specs.push(zq(`${exclusive}${f}${suffix}[${zesc(o.description)}]${value}`));
    }
  }
  if (c.commands.length > 0) {
    specs.push(zq('1: :->command'), zq('*:: :->args'));
  } else {
    for (const a of c.args) {
      const action = zshAction(a.words.length ? { words: a.words } : null);
      specs.push(zq(`${a.variadic ? '*' : ''}${a.required || a.variadic ? ':' : '::'}${zesc(a.name)}:${action}`));
    }
  }
  let body = `  local curcontext=$curcontext state state_descr line ret=1
  typeset -A opt_args
  _arguments -C \\
    ${specs.join(' \\\n    ')} && ret=0
`;
  if (c.commands.length > 0) {
    const list = c.commands.map((s) => zq(`${s.path.at(-1)!.replace(/:/g, '\\:')}:${s.description}`));
    const dispatch = c.commands.map((s) => `        ${s.path.at(-1)}) _${s.path.join('_').replace(/[^a-zA-Z0-9_]/g, '_')} && ret=0 ;;\n`).join('');
    body += `  case $state in
    command)
      local -a commands=(
        ${list.join('\n        ')}
      )
      _describe -t commands ${zq(c.path.join(' ') + ' command')} commands && ret=0 ;;
    args)
      curcontext=\${curcontext%:*:*}:${c.path.join('-')}-$words[1]:
      case $words[1] in
${dispatch}      esac ;;
  esac
`;
  }
  return `${fn}() {\n${body}  return ret\n}\n`;
}

function zshScript(root: CommandSpec): string {
  const name = root.path[0]!;
  const fn = `_${name.replace(/[^a-zA-Z0-9_]/g, '_')}`;
  return `#compdef ${name}
# zsh completion for ${name}, generated from its commander program (\`${name} completion zsh\`): do not edit.
# Install: save as ${fn} in a directory of $fpath (before compinit runs), or \`source <(${name} completion zsh)\`
# after compinit.

${allCommands(root).map(zshFunction).join('\n')}
# Autoloaded from $fpath, this file is the body of ${fn}: complete now. Sourced, only register the function.
if [[ $funcstack[1] == ${fn} ]]; then
  ${fn} "$@"
else
  compdef ${fn} ${name}
fi
`;
}

// ---- fish ----

/** A single-quoted fish word. */
const fq = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

function fishScript(root: CommandSpec): string {
  const name = root.path[0]!;
  const fn = `__${name.replace(/[^a-zA-Z0-9_]/g, '_')}_command`;
  const cmds = allCommands(root);
  const subcommands = cmds.flatMap((c) => c.commands.map((s) => fq(s.path.join(' '))));
  const valued = cmds.flatMap((c) => c.options.filter((o) => o.value !== undefined).flatMap((o) => o.flags.map((f) => fq(`${c.path.join(' ')} ${f}`))));
  const lines: string[] = [];
  for (const c of cmds) {
    const cond = `-n ${fq(`test (${fn}) = ${fq(c.path.join(' '))}`)}`;
    lines.push(`# ${c.path.join(' ')}`);
    for (const s of c.commands) lines.push(`complete -c ${name} ${cond} -a ${fq(s.path.at(-1)!)} -d ${fq(s.description)}`);
    for (const a of c.args) if (a.words.length) lines.push(`complete -c ${name} ${cond} -a ${fq(a.words.join(' '))}`);
    for (const o of c.options) {
      const flags = o.flags.map((f) => (f.startsWith('--') ? `-l ${f.slice(2)}` : `-s ${f.slice(1)}`)).join(' ');
      let value = '';
      // -x: takes a value, and not a file name; -r -F: a file name
      if (o.value === null) value = ' -x';
      else if (o.value && 'files' in o.value) value = o.value.files === 'dir' ? ` -x -a '(__fish_complete_directories (commandline -ct))'` : ' -r -F';
      else if (o.value) value = ` -x -a ${fq(o.value.words.join(' '))}`;
      lines.push(`complete -c ${name} ${cond} ${flags}${value} -d ${fq(o.description)}`);
    }
  }
  return `# fish completion for ${name}, generated from its commander program (\`${name} completion fish\`): do not edit.
# Install: copy to ~/.config/fish/completions/${name}.fish.

# The subcommand being completed ("${name} store prune"): walk the words before the cursor, skipping the values of options.
function ${fn}
    set -l words (commandline -opc)
    set -e words[1]
    set -l cmd ${name}
    set -l skip 0
    for w in $words
        if test $skip = 1
            set skip 0
            continue
        end
        switch "$cmd $w"
            case ${subcommands.join(' ')}
                set cmd "$cmd $w"
            case ${valued.join(' ')}
                set skip 1
        end
    end
    echo $cmd
end

# No file names unless an option asks for them.
complete -c ${name} -f
${lines.join('\n')}
`;
}
