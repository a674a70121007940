#!/usr/bin/env python3
"""Regenerate what is built from the `netsession` parser: the README's command synopsis (between the
`<!-- synopsis:begin -->` / `<!-- synopsis:end -->` markers) and the man page docs/netsession.1.

    .venv/bin/python scripts/gendocs.py           # rewrite them
    .venv/bin/python scripts/gendocs.py --check   # exit 1 (and name them) if they are not current

Run it after adding or changing a subcommand or an option; tests/unit/test_cli_docs.py runs --check.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from netsession import cli, clidoc

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAN = ROOT / "docs" / "netsession.1"
BEGIN, END = "<!-- synopsis:begin (scripts/gendocs.py writes this block) -->", "<!-- synopsis:end -->"


def readme_text(current: str, synopsis: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(current):
        raise SystemExit(f"gendocs: {README.name} has no {BEGIN} ... {END} block")
    block = f"{BEGIN}\n```\n{synopsis}```\n{END}"
    return pattern.sub(lambda _: block, current, count=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is stale")
    args = ap.parse_args()
    parser = cli.build_parser()
    wanted = {
        README: readme_text(README.read_text(encoding="utf-8"), clidoc.synopsis(parser)),
        MAN: clidoc.man_page(parser),
    }
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"gendocs: {path.relative_to(ROOT)} is out of date with the parser; run "
                  "`.venv/bin/python scripts/gendocs.py`", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted[path], encoding="utf-8")
        print(f"gendocs: wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
