/**
 * `xen-cr completion bash|zsh`: a completion script generated from the commander program itself,
 * so every command, subcommand and option the CLI has is completed and nothing it lacks is.
 * Both scripts walk the words typed so far to find the command path (`job create`), skipping the
 * value of an option that takes one, then offer that command's subcommands, or its options plus
 * the global ones; a value that names a file or folder completes as a path.
 */
import { Argument, type Command, type Option } from 'commander'
import { contextOf } from './context.js'

interface OptionSpec {
  readonly flags: readonly string[]
  readonly description: string
  /** takes the next word as its value */
  readonly takesValue: boolean
  /** its value is a path */
  readonly path: boolean
  /** the values it accepts, when commander knows them */
  readonly choices: readonly string[]
}

interface CommandSpec {
  /** `''` for the program, `job create` for a subcommand */
  readonly path: string
  readonly subcommands: readonly {
    readonly name: string
    readonly aliases: readonly string[]
    readonly description: string
  }[]
  readonly options: readonly OptionSpec[]
  /** the values its first argument accepts, when commander knows them */
  readonly argumentChoices: readonly string[]
}

function optionSpec(option: Option): OptionSpec {
  const flags = [option.long, option.short].filter((flag): flag is string => flag !== undefined)
  return {
    flags,
    description: option.description,
    takesValue: option.required,
    path: option.required && /<(file|dir|folder|path)[^>]*>/i.test(option.flags),
    choices: option.argChoices ?? [],
  }
}

/** Every command of the program, depth first, with what completion needs of it. */
function commandSpecs(program: Command): CommandSpec[] {
  const help = program.createHelp()
  const specs: CommandSpec[] = []
  const visit = (command: Command, path: string): void => {
    const subcommands = help.visibleCommands(command)
    specs.push({
      path,
      subcommands: subcommands.map(sub => ({
        name: sub.name(),
        aliases: sub.aliases(),
        description: sub.summary() || sub.description(),
      })),
      options: help.visibleOptions(command).map(optionSpec),
      argumentChoices: command.registeredArguments[0]?.argChoices ?? [],
    })
    for (const sub of subcommands) {
      // commander's implicit `help` command has no options or subcommands of its own
      if (sub.name() !== 'help' || sub.commands.length > 0)
        visit(sub, path === '' ? sub.name() : `${path} ${sub.name()}`)
    }
  }
  visit(program, '')
  return specs
}

/** A single-quoted shell word (bash and zsh read it the same). */
function quote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`
}

/** The shell functions both scripts share: case tables over the command path. */
function tables(specs: readonly CommandSpec[], withDescriptions: boolean): string {
  const item = (name: string, description: string): string =>
    quote(withDescriptions ? `${name.replace(/:/g, '\\:')}:${description.split('\n')[0] ?? ''}` : name)
  const cases = (rows: readonly (readonly [string, string])[]): string =>
    rows.map(([pattern, body]) => `    ${pattern}) ${body} ;;`).join('\n')
  const words = cases(
    specs.flatMap(spec => {
      const items = [
        ...spec.subcommands.map(s => item(s.name, s.description)),
        ...spec.argumentChoices.map(choice => item(choice, choice)),
      ]
      return items.length === 0 ? [] : [[quote(spec.path), `printf '%s\\n' ${items.join(' ')}`] as const]
    }),
  )
  const options = cases(
    specs
      .filter(spec => spec.options.length > 0)
      .map(spec => [
        quote(spec.path),
        `printf '%s\\n' ${spec.options.flatMap(o => o.flags.map(flag => item(flag, o.description))).join(' ')}`,
      ]),
  )
  const canonical = cases(
    specs.flatMap(spec =>
      spec.subcommands.flatMap(sub =>
        [sub.name, ...sub.aliases].map(
          word => [quote(`${spec.path}|${word}`), `printf '%s' ${quote(sub.name)}`] as const,
        ),
      ),
    ),
  )
  const valueFlags = (filter: (option: OptionSpec) => boolean): string => {
    const patterns = specs.flatMap(spec =>
      spec.options.filter(filter).flatMap(o => o.flags.map(flag => quote(`${spec.path}|${flag}`))),
    )
    return patterns.length === 0 ? '' : `    ${patterns.join('|')}) return 0 ;;`
  }
  const values = cases(
    specs.flatMap(spec =>
      spec.options
        .filter(o => o.choices.length > 0)
        .flatMap(o =>
          o.flags.map(
            flag => [quote(`${spec.path}|${flag}`), `printf '%s\\n' ${o.choices.map(quote).join(' ')}`] as const,
          ),
        ),
    ),
  )
  return `# what a word that is not an option can be at a command path: a subcommand, or a choice of its argument
_xen_cr_words() {
  case "$1" in
${words}
  esac
}

# the options of a command path (the program's own are global)
_xen_cr_options() {
  case "$1" in
${options}
  esac
}

# the canonical name of subcommand (or alias) $2 of command path $1; nothing if it is none
_xen_cr_canonical() {
  case "$1|$2" in
${canonical}
  esac
}

# whether option $2 of command path $1 takes the next word as its value
_xen_cr_takes_value() {
  case "$1|$2" in
${valueFlags(o => o.takesValue)}
  esac
  return 1
}

# the values option $2 of command path $1 accepts, when they are known
_xen_cr_values() {
  case "$1|$2" in
${values}
  esac
}

# whether the value of option $2 of command path $1 is a file or folder
_xen_cr_takes_path() {
  case "$1|$2" in
${valueFlags(o => o.path)}
  esac
  return 1
}

# the command path of words $2.. (the words before the cursor, program name excluded)
_xen_cr_command_path() {
  local cmdpath="" skip=0 word name
  shift
  for word in "$@"; do
    if [ "$skip" = 1 ]; then
      skip=0
      continue
    fi
    case "$word" in
      --*=*) ;;
      -*)
        if _xen_cr_takes_value "$cmdpath" "$word" || _xen_cr_takes_value "" "$word"; then skip=1; fi
        ;;
      *)
        name=$(_xen_cr_canonical "$cmdpath" "$word")
        if [ -n "$name" ]; then cmdpath="\${cmdpath:+$cmdpath }$name"; fi
        ;;
    esac
  done
  printf '%s' "$cmdpath"
}
`
}

/** The bash completion script: `source <(xen-cr completion bash)`. */
export function bashCompletion(program: Command): string {
  const name = program.name()
  return `# bash completion for ${name}, generated by \`${name} completion bash\` from its own commands and options.
# Load it with:  source <(${name} completion bash)
# or install it: ${name} completion bash > /etc/bash_completion.d/${name}

${tables(commandSpecs(program), false)}
_xen_cr() {
  local cur prev cmdpath
  COMPREPLY=()
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  cmdpath=$(_xen_cr_command_path "\${COMP_WORDS[@]:0:COMP_CWORD}")
  if [ "$COMP_CWORD" -gt 1 ] && { _xen_cr_takes_value "$cmdpath" "$prev" || _xen_cr_takes_value "" "$prev"; }; then
    if _xen_cr_takes_path "$cmdpath" "$prev" || _xen_cr_takes_path "" "$prev"; then
      compopt -o filenames 2>/dev/null
      COMPREPLY=($(compgen -f -- "$cur"))
    else
      COMPREPLY=($(compgen -W "$(_xen_cr_values "$cmdpath" "$prev")" -- "$cur"))
    fi
    return 0
  fi
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(_xen_cr_options "$cmdpath"; [ -n "$cmdpath" ] && _xen_cr_options "")" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(_xen_cr_words "$cmdpath")" -- "$cur"))
  fi
  return 0
}
complete -F _xen_cr ${name}
`
}

/** The zsh completion script: `source <(xen-cr completion zsh)`, or saved as `_xen-cr` in `$fpath`. */
export function zshCompletion(program: Command): string {
  const name = program.name()
  return `#compdef ${name}
# zsh completion for ${name}, generated by \`${name} completion zsh\` from its own commands and options.
# Load it with:  source <(${name} completion zsh)
# or install it: ${name} completion zsh > "\${fpath[1]}/_${name}"

${tables(commandSpecs(program), true)}
_xen_cr() {
  local cmdpath prev
  # \${(f)"..."} splits lines and drops empty ones, so no blank candidate is offered
  local -a items
  cmdpath=$(_xen_cr_command_path "\${(@)words[1,CURRENT-1]}")
  prev="\${words[CURRENT-1]}"
  if (( CURRENT > 2 )) && { _xen_cr_takes_value "$cmdpath" "$prev" || _xen_cr_takes_value "" "$prev"; }; then
    if _xen_cr_takes_path "$cmdpath" "$prev" || _xen_cr_takes_path "" "$prev"; then
      _files
    else
      items=(\${(f)"$(_xen_cr_values "$cmdpath" "$prev")"})
      compadd -a items
    fi
    return 0
  fi
  if [[ "\${words[CURRENT]}" == -* ]]; then
    items=(\${(f)"$(_xen_cr_options "$cmdpath"; [ -n "$cmdpath" ] && _xen_cr_options "")"})
    _describe -t options option items
  else
    items=(\${(f)"$(_xen_cr_words "$cmdpath")"})
    _describe -t commands command items
  fi
}

if [ "\${funcstack[1]}" = "_xen_cr" ]; then
  _xen_cr "$@"
else
  compdef _xen_cr ${name}
fi
`
}

/** `xen-cr completion bash|zsh`. */
export function registerCompletionCommand(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script: source <(xen-cr completion bash)')
    .addArgument(new Argument('<shell>', 'bash or zsh').choices(['bash', 'zsh']))
    .action((shell: 'bash' | 'zsh', _options: unknown, command: Command) => {
      let root = command
      while (root.parent !== null) root = root.parent
      const script = shell === 'bash' ? bashCompletion(root) : zshCompletion(root)
      contextOf(command).output.emit({ kind: 'completion-script', shell, script })
    })
}
