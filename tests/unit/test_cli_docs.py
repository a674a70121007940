"""What is built from the `netsession` parser — the README's synopsis, the man page, `--help`'s epilog,
`netsession help`, bash completion — matches the parser, whatever subcommands it holds."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from netsession import cli, clidoc
from netsession.exitcodes import EXIT_STATUSES

ROOT = Path(__file__).resolve().parents[2]
NETSESSION = [sys.executable, "-m", "netsession.cli"]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NETSESSION, *args], capture_output=True, text=True, timeout=60, input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL)


def test_readme_synopsis_and_man_page_are_generated_from_the_current_parser() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gendocs.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_synopsis_covers_a_subcommand_an_extension_module_adds(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("netsession_test_ext")

    def register(subparsers: object) -> None:
        p = subparsers.add_parser("frob", help="frobnicate")  # type: ignore[attr-defined]
        p.add_argument("thing", metavar="THING", help="what")
        p.add_argument("--hard", action="store_true", help="harder")

    module.register = register  # type: ignore[attr-defined]
    module.ENVIRONMENT = (("NETSESSION_FROB", "how hard"),)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "netsession_test_ext", module)
    monkeypatch.setattr(cli, "EXTENSION_MODULES", (*cli.EXTENSION_MODULES, "netsession_test_ext"))
    parser = cli.build_parser()
    assert "netsession frob THING [--hard]\n" in clidoc.synopsis(parser)
    man = clidoc.man_page(parser)
    assert '.SS "netsession frob"' in man and "NETSESSION_FROB" in man
    assert "NETSESSION_FROB" in parser.format_help()
    assert "['netsession frob']=" in clidoc.bash_completion(parser)


def test_every_option_and_argument_has_help_text() -> None:
    missing = [
        " ".join((*path, *(action.option_strings or [action.dest])))
        for path, sub, _ in clidoc.walk(cli.build_parser())
        for action in sub._actions
        if clidoc._visible(action) and not action.help
    ]
    assert missing == []


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    read = set()
    for path in (ROOT / "src" / "netsession").rglob("*.py"):
        read |= set(re.findall(r"\bNETSESSION_[A-Z][A-Z_]*[A-Z]\b", path.read_text(encoding="utf-8")))
    documented = {name for name, _ in clidoc.environment()}
    assert read - documented == set()


def test_help_epilog_documents_exit_statuses_and_environment() -> None:
    done = run("--help")
    assert done.returncode == 0
    assert "exit status:" in done.stdout and "environment:" in done.stdout
    for code, _ in EXIT_STATUSES:
        assert re.search(rf"^  {code}\s+\S", done.stdout, re.M), code
    for name, _ in clidoc.environment():
        assert name in done.stdout


def test_readme_documents_every_exit_status() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for code, _ in EXIT_STATUSES:
        assert f"| {code} |" in readme


@pytest.mark.parametrize("topic", [["list"], ["user", "add"], ["serve"]])
def test_help_topic_is_the_commands_own_help(topic: list[str]) -> None:
    assert run("help", *topic).stdout == run(*topic, "--help").stdout


def test_help_topics_and_an_unknown_one() -> None:
    assert "130" in run("help", "exit-codes").stdout
    assert "NETSESSION_TIMEOUT" in run("help", "environment").stdout
    assert run("help", "man").stdout == (ROOT / "docs" / "netsession.1").read_text(encoding="utf-8")
    done = run("help", "frobnicate")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.count("\n") == 1 and "frobnicate" in done.stderr


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff (groff-base) not installed")
def test_man_page_renders_without_warnings() -> None:
    done = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(ROOT / "docs" / "netsession.1")],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")


# -- completion --------------------------------------------------------------------------------------


def complete(words: list[str]) -> list[str]:
    """What bash offers after sourcing `netsession completion bash`, for the line ``words`` (the last
    one being completed)."""
    script = run("completion", "bash").stdout
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    program = f'{script}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _netsession\n' \
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return sorted(line for line in done.stdout.splitlines() if line)


def test_completion_offers_the_subcommands() -> None:
    names = [name for name, _, _ in clidoc.subcommands(cli.build_parser())]
    assert complete(["netsession", ""]) == sorted(names)
    assert complete(["netsession", "li"]) == ["list"]
    assert complete(["netsession", "user", ""]) == ["add", "del", "list", "passwd"]


def test_completion_offers_a_commands_options_and_choices() -> None:
    assert complete(["netsession", "list", "--fo"]) == ["--format"]
    assert complete(["netsession", "list", "--format", ""]) == ["csv", "json", "table"]
    assert complete(["netsession", "list", "--level", "5"]) == ["502"]
    assert "--password-stdin" in complete(["netsession", "user", "add", "bob", "--"])
    # an option's value is not taken for a subcommand: `--user list` is the user named list
    assert complete(["netsession", "list", "--user", "list", "--le"]) == ["--level"]


def test_completion_offers_files_for_a_file_option() -> None:
    assert "README.md" in complete(["netsession", "serve", "--audit-log", "READ"])


@pytest.mark.parametrize("command", ["list", "info"])
def test_the_shown_time_rule_is_documented(command: str) -> None:
    assert "0xFFFFFFFF" in run(command, "--help").stdout
