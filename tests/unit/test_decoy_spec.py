"""The sessions file (TOML, JSON) and random:N: what is accepted, and refusals with file, line, reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from netsession.decoy.spec import (
    ACTIVITY_PRESETS,
    DecoySpec,
    SpecError,
    generate,
    load_sessions,
    parse_duration,
    parse_source,
    parse_spec,
)
from netsession.table import DEFAULT_TRANSPORT

TOML = """\
seed = 7
# two sessions

[[session]]
client = "10.0.4.23"
user = "adm-jsmith"
opens = 3
age = "3h12m"
speak_every = "45s"
jitter = 0.2
respawn = "10m"

[[session]]
client = "WS-FIN-07"
user = "mkelly"
guest = true
age = 7200
activity = "drive"
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_toml_sessions_file_gives_every_field(tmp_path: Path) -> None:
    loaded = load_sessions(write(tmp_path, "s.toml", TOML))
    assert loaded.seed == 7
    first, second = loaded.sessions
    assert first == DecoySpec(
        client="10.0.4.23", user="adm-jsmith", opens=3, age=11520.0, speak_every=45.0, jitter=0.2,
        respawn=600.0,
    )
    assert second.guest and second.age == 7200.0
    assert (second.speak_every, second.jitter) == ACTIVITY_PRESETS["drive"]
    assert second.transport == DEFAULT_TRANSPORT and second.client_type == ""
    assert loaded.lines == (4, 13)


def test_json_sessions_file_is_the_same_format(tmp_path: Path) -> None:
    text = (
        '{"seed": 3, "sessions": [\n  {"client": "10.1.1.1", "user": "a"},\n'
        '  {"client": "PC2", "user": "b"}\n]}'
    )
    loaded = load_sessions(write(tmp_path, "s.json", text))
    assert [s.client for s in loaded.sessions] == ["10.1.1.1", "PC2"]
    assert loaded.lines == (2, 3) and loaded.seed == 3
    bare = load_sessions(write(tmp_path, "bare.json", '[{"client": "x", "user": "y"}]'))
    assert bare.sessions[0].user == "y"


@pytest.mark.parametrize(
    ("name", "text", "line", "reason"),
    [
        ("bad.toml", '[[session]]\nclient = "a"\nuser = \n', 3, "invalid TOML"),
        ("bad.json", '{"sessions": [\n {"client": "a",\n "user": }\n]}', 3, "invalid JSON"),
        ("k.toml", '[[session]]\nclient="a"\nuser="b"\n\n[[session]]\nclient="c"\nusr="d"\n', 5,
         "session 2: unknown key 'usr'"),
        ("o.toml", '[[session]]\nclient="a"\nuser="b"\nopens=-1\n', 1, "'opens' must be a whole number"),
        ("a.json", '[\n{"client": "a", "user": "b"},\n{"client": "a", "user": "b", "age": "soon"}\n]', 3,
         "'age' 'soon' is not a duration"),
        ("i.toml", '[[session]]\nclient="a"\nuser="b"\nage=10\nidle=20\n', 1, "'idle' (20 s) is longer"),
        ("u.toml", '[[session]]\nclient="a"\n', 1, "'user' is required"),
        ("t.toml", 'sesion = []\n', 1, "unknown top-level key 'sesion'"),
        ("j.toml", '[[session]]\nclient="a"\nuser="b"\njitter=2\n', 1, "'jitter' must be a number"),
    ],
)
def test_malformed_sessions_file_is_refused_with_file_line_and_reason(
    tmp_path: Path, name: str, text: str, line: int, reason: str
) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(SpecError) as info:
        load_sessions(path)
    assert info.value.where == f"{path}:{line}"
    assert reason in info.value.reason
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_unreadable_and_non_utf8_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read it"):
        load_sessions(tmp_path / "missing.toml")
    path = tmp_path / "latin.toml"
    path.write_bytes(b'[[session]]\nclient = "\xe9"\n')
    with pytest.raises(SpecError, match=r"latin.toml:2: not UTF-8"):
        load_sessions(path)


def test_durations_accept_seconds_and_unit_strings() -> None:
    assert parse_duration("1d2h3m4s") == 93784.0
    assert parse_duration("90") == 90.0 and parse_duration(1.5) == 1.5
    for bad in ("", "1x", "h", True, -1, None):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_spec_refuses_names_windows_would_refuse() -> None:
    with pytest.raises(ValueError, match="longer than"):
        parse_spec({"client": "a" * 1024, "user": "b"})
    with pytest.raises(ValueError, match="NUL"):
        parse_spec({"client": "a\x00b", "user": "b"})
    with pytest.raises(ValueError, match="empty"):
        parse_spec({"client": "\\\\", "user": "b"})


def test_random_sessions_are_plausible_and_repeatable() -> None:
    a = generate(2000, seed=42)
    assert a == generate(2000, seed=42)
    assert a != generate(2000, seed=43)
    specs = a.sessions
    assert len(specs) == 2000
    users = {s.user for s in specs}
    assert any(u.startswith("adm-") for u in users) and any(u.endswith("$") for u in users)
    assert any(u.startswith("svc_") for u in users)
    assert sum(s.guest for s in specs) < 100
    assert all(0 < s.age <= 8 * 86400 for s in specs)
    assert any(s.client[0].isdigit() for s in specs)
    assert any(s.client[:3] in ("WS-", "LT-", "PC-") for s in specs)
    assert len({s.client for s in specs}) > 1500
    assert any(s.respawn for s in specs) and any(s.respawn is None for s in specs)


def test_sessions_source_random_needs_a_number() -> None:
    assert len(parse_source("random:5", 1).sessions) == 5
    with pytest.raises(SpecError, match="random:N"):
        parse_source("random:lots", None)
