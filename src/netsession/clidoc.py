r"""Documentation built from the ``netsession`` parser itself, so it cannot drift from the command.

- :func:`synopsis` — the command synopsis (the README's block between the ``synopsis`` markers);
- :func:`man_page` — ``docs/netsession.1`` (roff);
- :func:`bash_completion` — a bash completion script (``netsession completion bash``);
- ``netsession help [TOPIC]`` — a command's help, or ``environment`` / ``exit-codes`` / ``completion``.

All of them walk whatever the parser holds, including the subcommands that :data:`netsession.cli.
EXTENSION_MODULES` add. ``scripts/gendocs.py`` rewrites the README block and the man page from the parser
(``--check`` says whether they are current; a test runs it). Shell completion is generated from the parser
too, at the moment it is asked for, rather than with argcomplete: no extra dependency, and nothing runs
Python on each Tab press.

Environment variables: :data:`ENVIRONMENT` lists the core's; an extension module may define its own
``ENVIRONMENT`` (a sequence of ``(NAME, description)`` pairs), which is shown beside them.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, NoReturn

from netsession.errors import shown
from netsession.exitcodes import EXIT_STATUSES, USAGE

ENVIRONMENT: Final = (
    ("NETSESSION_USERNAME", "user name for a server the command line names no user for; DOMAIN\\user or "
     "DOMAIN/user carry the domain"),
    ("NETSESSION_PASSWORD", "that user's password"),
    ("NETSESSION_NT_HASH", "the NT hash (32 hex digits) instead of a password"),
    ("NETSESSION_DOMAIN", "the domain, if the user name carries none"),
    ("NETSESSION_ENCRYPT", "1/yes/true/on or 0/no/false/off: require SMB 3 encryption"),
    ("NETSESSION_KERBEROS", "1/yes/true/on or 0/no/false/off: log on with Kerberos only"),
    ("NETSESSION_PORT", "TCP port when neither SERVER nor --port gives one (445)"),
    ("NETSESSION_TIMEOUT", "seconds to wait for a connection or an answer (30)"),
    ("NETSESSION_STATE_DIR", "the server's state directory (accounts, the local srvsvc socket); also where "
     "the client finds the local server's socket"),
    ("NETSESSION_DEBUG", "1: an internal error shows its Python traceback (as --debug does)"),
)

_PLAIN_GROUPS: Final = frozenset(("positional arguments", "options", "optional arguments"))
WIDTH: Final = 104


class Parser(argparse.ArgumentParser):
    """argparse's parser, with a usage error on one line instead of the usage block and the error; the
    subcommands' parsers are of this class too (argparse makes them of the root's)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, except that a text with line breaks (the root's epilog of tables) keeps its lines."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


# -- walking the parser ------------------------------------------------------------------------------


def _subparsers_action(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[Any] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """(name, parser, one-line help) of each subcommand, in the order they were added (aliases once)."""
    action = _subparsers_action(parser)
    if action is None:
        return []
    helps = {a.dest: a.help or "" for a in action._choices_actions}
    seen: set[int] = set()
    out = []
    for name, sub in action.choices.items():
        if id(sub) in seen:
            continue
        seen.add(id(sub))
        out.append((name, sub, helps.get(name, "")))
    return out


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str]]:
    """Every parser below ``parser`` (itself first) with its command path and help line."""
    yield path, parser, parser.description or ""
    for name, sub, help_line in subcommands(parser):
        for item in walk(sub, (*path, name)):
            yield (item[0], item[1], help_line) if item[1] is sub else item


def find(parser: argparse.ArgumentParser, path: Sequence[str]) -> argparse.ArgumentParser | None:
    for name in path:
        action = _subparsers_action(parser)
        if action is None or name not in action.choices:
            return None
        parser = action.choices[name]
    return parser


def _visible(action: argparse.Action) -> bool:
    return action.help is not argparse.SUPPRESS and not isinstance(
        action, (argparse._HelpAction, argparse._SubParsersAction)
    )


def _metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        return action.metavar if isinstance(action.metavar, str) else " ".join(action.metavar)
    if action.choices is not None:
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    return action.dest.upper()


def takes_value(action: argparse.Action) -> bool:
    return action.option_strings != [] and action.nargs != 0


def _token(action: argparse.Action) -> str:
    if not action.option_strings:
        text = _metavar(action)
        if action.nargs in ("?", "*"):
            return f"[{text}]" + ("..." if action.nargs == "*" else "")
        if action.nargs == "+":
            return f"{text}..."
        return text
    # The long form, except a short option with a value (-U, Samba's convention).
    longs = [o for o in action.option_strings if o.startswith("--")]
    name = longs[0] if longs and not (takes_value(action) and action.option_strings[0] not in longs) \
        else action.option_strings[0]
    text = f"{name} {_metavar(action)}" if takes_value(action) else name
    repeat = "..." if isinstance(action, (argparse._AppendAction, argparse._CountAction)) else ""
    return f"[{text}]{repeat}" if not action.required else text + repeat


def _groups(parser: argparse.ArgumentParser) -> list[tuple[str, list[argparse.Action]]]:
    return [(g.title or "", [a for a in g._group_actions if _visible(a)]) for g in parser._action_groups]


def usage_tokens(parser: argparse.ArgumentParser) -> tuple[list[str], list[str]]:
    """The parser's own tokens (positionals last), and the titles of its named option groups."""
    options: list[str] = []
    positionals: list[str] = []
    named: list[str] = []
    for title, actions in _groups(parser):
        if title not in _PLAIN_GROUPS:
            if actions:
                named.append(title)
            continue
        for action in actions:
            (options if action.option_strings else positionals).append(_token(action))
    return [*positionals, *options], named


def _wrap(head: str, tokens: Sequence[str], width: int = WIDTH) -> list[str]:
    """``head`` and the tokens, wrapped at ``width`` under the first token."""
    lines, line, fresh = [], head, True
    indent = " " * (len(head) + 1)
    for token in tokens:
        if not fresh and len(line) + 1 + len(token) > width:
            lines.append(line)
            line = indent + token
        else:
            line = f"{line} {token}"
        fresh = False
    lines.append(line)
    return lines


def synopsis(parser: argparse.ArgumentParser) -> str:
    """One entry per leaf command, then each named option group (e.g. connection options) once."""
    prog = parser.prog
    lines: list[str] = []
    groups: dict[str, list[str]] = {}
    for path, sub, _ in walk(parser):
        if not path or subcommands(sub):
            continue
        tokens, named = usage_tokens(sub)
        for title in named:
            tokens.append(f"[{title}]")
            if title not in groups:
                groups[title] = [_token(a) for t, acts in _groups(sub) if t == title for a in acts]
        lines += _wrap(" ".join((prog, *path)), tokens)
    for title, tokens in groups.items():
        lines += _wrap(f"{title}:", tokens)
    return "\n".join(lines) + "\n"


# -- texts -------------------------------------------------------------------------------------------


def extension_environment() -> list[tuple[str, str]]:
    from netsession.cli import EXTENSION_MODULES

    out: list[tuple[str, str]] = []
    for name in EXTENSION_MODULES:
        module = sys.modules.get(name)
        if module is None:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
        out += list(getattr(module, "ENVIRONMENT", ()))
    return out


def environment() -> list[tuple[str, str]]:
    """Every documented environment variable: the core's, then the extension modules'."""
    seen: dict[str, str] = {}
    for name, text in [*ENVIRONMENT, *extension_environment()]:
        seen.setdefault(name, text)
    return list(seen.items())


def _table(rows: Sequence[tuple[object, str]], indent: str = "  ") -> str:
    width = max(len(str(k)) for k, _ in rows)
    hang = " " * (len(indent) + width + 2)
    return "".join(
        textwrap.fill(f"{indent}{str(k).ljust(width)}  {v}", WIDTH, subsequent_indent=hang) + "\n"
        for k, v in rows
    )


def exit_codes_text() -> str:
    return "exit status:\n" + _table(EXIT_STATUSES)


def environment_text() -> str:
    return "environment:\n" + _table(environment())


def epilog() -> str:
    """The root ``--help``'s closing part: exit statuses, environment, where to read more."""
    return f"{exit_codes_text()}\n{environment_text()}\n" + textwrap.fill(
        "'netsession help COMMAND' shows a command's options, 'man netsession' (docs/netsession.1) all of "
        "them, 'netsession completion bash' a bash completion script.", WIDTH
    )


COMPLETION_HELP: Final = """\
bash completion, generated from the command's own parser (every subcommand and option it has):

  eval "$(netsession completion bash)"                                   # this shell
  netsession completion bash > /etc/bash_completion.d/netsession         # every shell (root)
  netsession completion bash > ~/.local/share/bash-completion/completions/netsession

zsh: 'autoload -U bashcompinit && bashcompinit' first, then the eval line above.
"""


# -- man page ----------------------------------------------------------------------------------------


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _roff(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"(?m)^([.'])", r"\\&\1", text)


def _expand_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help:
        return ""
    formatter = parser._get_formatter()
    return str(formatter._expand_help(action))


def _man_item(action: argparse.Action) -> str:
    """``\\fB-U\\fR, \\fB--authentication-user\\fR \\fI[DOMAIN/]USER[%PASSWORD]\\fR``."""
    if not action.option_strings:
        return f"\\fI{_roff(_metavar(action))}\\fR"
    names = ", ".join(f"\\fB{_roff(o)}\\fR" for o in action.option_strings)
    return f"{names} \\fI{_roff(_metavar(action))}\\fR" if takes_value(action) else names


def man_page(parser: argparse.ArgumentParser) -> str:
    """The roff man page, section 1."""
    out = [
        '.TH NETSESSION 1 "" "netsession" "User Commands"',
        ".SH NAME",
        f"{parser.prog} \\- {_roff(_lower_first(parser.description or ''))}",
        ".SH SYNOPSIS",
        ".nf",
        _roff(synopsis(parser)).rstrip("\n"),
        ".fi",
        ".SH COMMANDS",
    ]
    for path, sub, help_line in walk(parser):
        if not path:
            continue
        out.append(f'.SS "{_roff(" ".join((parser.prog, *path)))}"')
        out.append(_roff(sub.description or help_line or ""))
        named_seen: set[str] = set()
        for title, actions in _groups(sub):
            if not actions:
                continue
            if title not in _PLAIN_GROUPS:
                if title in named_seen:
                    continue
                named_seen.add(title)
                out.append(f".PP\n{_roff(title.capitalize())}:")
            for action in actions:
                out.append(".TP")
                out.append(_man_item(action))
                out.append(_roff(_expand_help(sub, action) or "(undocumented)"))
        if subcommands(sub):
            out.append(".PP\nSubcommands: " + _roff(", ".join(n for n, _, _ in subcommands(sub))) + ".")
    out.append(".SH ENVIRONMENT")
    for name, text in environment():
        out += [".TP", f"\\fB{_roff(name)}\\fR", _roff(text)]
    out.append(".SH EXIT STATUS")
    for code, text in EXIT_STATUSES:
        out += [".TP", f"\\fB{code}\\fR", _roff(text)]
    out += [
        ".SH FILES",
        ".TP",
        "\\fI$NETSESSION_STATE_DIR\\fR, \\fI$XDG_STATE_HOME/netsession\\fR or "
        "\\fI~/.local/state/netsession\\fR",
        "the server's state directory: \\fIaccounts.db\\fR (the accounts, NT hashes only, mode 0600) and "
        "\\fIsrvsvc.sock\\fR (the local srvsvc socket).",
        ".SH SEE ALSO",
        "\\fBnet\\fR(8), \\fBrpcclient\\fR(1), \\fBsmbclient\\fR(1); MS\\-SRVS (NetrSessionEnum, "
        "NetrSessionGetInfo, NetrSessionDel).",
    ]
    return "\n".join(out) + "\n"


# -- bash completion ---------------------------------------------------------------------------------


def _bash_words(words: Sequence[str]) -> str:
    return shlex.quote(" ".join(words))


def bash_completion(parser: argparse.ArgumentParser) -> str:
    """A bash completion script for every subcommand, option and choice the parser holds."""
    subs, opts, values = [], [], []
    for path, sub, _ in walk(parser):
        key = shlex.quote(" ".join((parser.prog, *path)))  # bash refuses an empty key
        names = [n for n, _, _ in subcommands(sub)]
        if names:
            subs.append(f"[{key}]={_bash_words(names)}")
        options = [o for a in sub._actions if a.help is not argparse.SUPPRESS for o in a.option_strings]
        opts.append(f"[{key}]={_bash_words(options)}")
        for action in sub._actions:
            if not takes_value(action):
                continue
            if action.choices is not None:
                kind = " ".join(str(c) for c in action.choices)
            elif _metavar(action) in ("FILE", "PATH"):
                kind = "@file"
            elif _metavar(action) == "DIR":
                kind = "@dir"
            else:
                kind = "@any"
            for option in action.option_strings:
                values.append(f"[{shlex.quote(' '.join((parser.prog, *path, option)))}]={shlex.quote(kind)}")
    prog = parser.prog
    fn = "_" + re.sub(r"\W", "_", prog)
    return f"""\
# bash completion for {prog}, generated from its parser: {prog} completion bash
declare -gA {fn}_subs=({" ".join(subs)})
declare -gA {fn}_opts=({" ".join(opts)})
declare -gA {fn}_values=({" ".join(values)})
{fn}() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" path={shlex.quote(prog)} i w
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        if [[ -n "${{{fn}_values["$path $w"]+x}}" ]]; then
            ((i++))
        elif [[ " ${{{fn}_subs["$path"]}} " == *" $w "* ]]; then
            path="$path $w"
        fi
    done
    if ((COMP_CWORD > 1)); then
        local kind="${{{fn}_values["$path ${{COMP_WORDS[COMP_CWORD-1]}}"]-}}"
        case "$kind" in
            "") ;;
            @file) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
            @dir) COMPREPLY=($(compgen -d -- "$cur")); return 0 ;;
            @any) return 0 ;;
            *) COMPREPLY=($(compgen -W "$kind" -- "$cur")); return 0 ;;
        esac
    fi
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "${{{fn}_opts["$path"]}}" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "${{{fn}_subs["$path"]-}}" -- "$cur"))
    fi
    return 0
}}
complete -o default -F {fn} {prog}
"""


# -- `netsession help` and `netsession completion` ---------------------------------------------------

def completion_text() -> str:
    return COMPLETION_HELP


TOPICS: Final[dict[str, Callable[[], str]]] = {
    "environment": environment_text,
    "exit-codes": exit_codes_text,
    "completion": completion_text,
}


def _root() -> argparse.ArgumentParser:
    from netsession.cli import build_parser

    return build_parser()


def _help(args: argparse.Namespace) -> int:
    root = _root()
    topic = list(args.topic)
    if len(topic) == 1 and topic[0] in TOPICS:
        sys.stdout.write(TOPICS[topic[0]]())
        return 0
    if topic == ["man"]:
        sys.stdout.write(man_page(root))
        return 0
    parser = find(root, topic)
    if parser is None:
        names = [n for n, _, _ in subcommands(root)]
        sys.stderr.write(
            f"{root.prog} help: no topic {shown(' '.join(topic))} (commands: {', '.join(names)}; topics: "
            f"{', '.join([*TOPICS, 'man'])})\n"
        )
        return USAGE
    sys.stdout.write(parser.format_help())
    return 0


def _completion(args: argparse.Namespace) -> int:
    sys.stdout.write(bash_completion(_root()))
    return 0


def register(subparsers: Any) -> None:
    """Add ``help`` and ``completion`` to the ``netsession`` command."""
    p = subparsers.add_parser(
        "help", help="a command's help, or a topic (environment, exit-codes, completion, man)",
        description="Show the help of COMMAND (e.g. 'help user add'), or a topic: environment, exit-codes, "
        "completion, man (the man page's roff source).",
    )
    p.add_argument("topic", nargs="*", metavar="TOPIC", help="a command (and subcommand) or a topic")
    p.set_defaults(handler=_help)
    p = subparsers.add_parser(
        "completion", help="print a bash completion script",
        description=COMPLETION_HELP.split("\n", 1)[0],
    )
    p.add_argument("shell", choices=["bash"], help="the shell (zsh: through bashcompinit)")
    p.set_defaults(handler=_completion)
