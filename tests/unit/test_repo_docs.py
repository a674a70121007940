"""What the README cites lives in the repository: no reference outside it (the project's FACTS.md is not
shipped), every relative link and docs/ or contrib/ path it names exists, and a LICENSE matches
pyproject's license."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_cites_nothing_outside_the_repository() -> None:
    assert "FACTS.md" not in README and "DESIGN.md" not in README


def test_every_file_the_readme_links_or_names_exists() -> None:
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README)
    named = re.findall(r"`((?:docs|contrib|scripts|bench)/[\w./-]+)`", README)
    missing = [p for p in {*links, *named} if not (ROOT / p).exists()]
    assert links and missing == []


def test_peers_page_is_linked_from_the_readme() -> None:
    assert "(docs/peers.md)" in README
    assert (ROOT / "docs" / "peers.md").read_text(encoding="utf-8").startswith("# How the peers behave")


def test_license_file_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
