# bash completion for swarmpull, generated from its commander program (`swarmpull completion bash`): do not edit.
# Install: copy to /usr/share/bash-completion/completions/swarmpull, or source it from ~/.bashrc.

# _swarmpull_spec COMMAND: sets cmds (subcommands), args (argument values), opts (options), valued (options taking a value).
_swarmpull_spec() {
  case "$1" in
    'swarmpull')
      cmds='pull resolve serve store completion help'
      args=''
      opts='-V --version -h --help'
      valued='' ;;
    'swarmpull pull')
      cmds=''
      args=''
      opts='--platform --oci -o --output --store --json -q --quiet --registry-only --no-registry --linger --port --no-mdns --peers --peers-file --swarm-key --interface --max-upload-rate --max-download-rate --plain-http --insecure --creds --debug -h --help'
      valued=' --platform --oci -o --output --store --linger --port --peers --peers-file --swarm-key --interface --max-upload-rate --max-download-rate --creds ' ;;
    'swarmpull resolve')
      cmds=''
      args=''
      opts='--platform --plain-http --insecure --creds --debug -h --help'
      valued=' --platform --creds ' ;;
    'swarmpull serve')
      cmds=''
      args=''
      opts='--store --debug -q --quiet --port --no-mdns --peers --peers-file --swarm-key --interface --max-upload-rate --max-download-rate -h --help'
      valued=' --store --port --peers --peers-file --swarm-key --interface --max-upload-rate --max-download-rate ' ;;
    'swarmpull store')
      cmds='ls prune help'
      args=''
      opts='-h --help'
      valued='' ;;
    'swarmpull store ls')
      cmds=''
      args=''
      opts='--store --json -h --help'
      valued=' --store ' ;;
    'swarmpull store prune')
      cmds=''
      args=''
      opts='--store --max-size --older-than --dry-run --json -h --help'
      valued=' --store --max-size --older-than ' ;;
    'swarmpull store help')
      cmds=''
      args='ls prune'
      opts=''
      valued='' ;;
    'swarmpull completion')
      cmds=''
      args='bash zsh fish'
      opts='-h --help'
      valued='' ;;
    'swarmpull help')
      cmds=''
      args='pull resolve serve store completion'
      opts=''
      valued='' ;;
  esac
}

_swarmpull() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd=swarmpull cmds args opts valued i w
  _swarmpull_spec "$cmd"
  # The subcommand being completed: walk the words before the cursor, skipping the values of options.
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    if [[ $valued == *" $w "* ]]; then
      ((i++))
    elif [[ $w != -* && " $cmds " == *" $w "* ]]; then
      cmd="$cmd $w"
      _swarmpull_spec "$cmd"
    fi
  done
  if [[ $valued == *" $prev "* ]]; then
    COMPREPLY=()
    case "$cmd $prev" in
      'swarmpull pull --platform' | \
      'swarmpull resolve --platform')
        COMPREPLY=($(compgen -W 'linux/amd64 linux/arm64 linux/arm64/v8 linux/arm/v7 linux/arm/v6 linux/386 linux/ppc64le linux/s390x linux/riscv64' -- "$cur")) ;;
      'swarmpull pull --oci' | \
      'swarmpull pull --store' | \
      'swarmpull serve --store' | \
      'swarmpull store ls --store' | \
      'swarmpull store prune --store')
        compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur")) ;;
      'swarmpull pull -o' | \
      'swarmpull pull --output' | \
      'swarmpull pull --peers-file' | \
      'swarmpull pull --swarm-key' | \
      'swarmpull serve --peers-file' | \
      'swarmpull serve --swarm-key')
        compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
    return 0
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$cmds $args" -- "$cur"))
  fi
}

complete -F _swarmpull swarmpull
