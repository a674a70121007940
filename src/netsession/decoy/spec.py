r"""Synthetic session descriptions: the ``--sessions FILE`` format (TOML or JSON) and ``random:N``.

A file lists sessions; each becomes a row of the server's session table, indistinguishable on the wire
from an SMB session. TOML (``[[session]]`` tables) or JSON (``{"sessions": [...]}`` or a bare list)::

    seed = 7                      # optional: the activity's pseudo-random draws
    [[session]]
    client = "10.0.4.23"          # an address (shown \\10.0.4.23) or a computer name (\\WS-FIN-07)
    user = "adm-jsmith"
    opens = 3                     # files and pipes it holds open (default 0)
    age = "3h12m"                 # connected this long when the server starts (default 0)
    speak_every = "45s"           # mean time between its requests: idle time resets that often
    jitter = 0.5                  # each gap is speak_every x (1 +/- jitter) (default 0.5)
    respawn = "10m"               # after NetrSessionDel it comes back this much later (default: never)

Other keys: ``share`` (what its tree connect is to: default ``IPC$``, or ``Users`` when it holds
opens, which are then files there, listed by NetrFileEnum like any other), ``guest`` (bool),
``transport`` (default ``\Device\NetbiosSmb``), ``client_type`` (default empty, as SMB2 clients
show), ``idle`` (idle time at start; default a random part of one gap), ``activity`` (a preset for
speak_every and jitter: ``interactive`` 60 s, ``drive`` 600 s, ``service`` 15 s, ``silent`` never).
Durations are seconds (a number) or ``"1d2h3m4s"``-style strings. Unknown keys, wrong types and
out-of-range values are refused with the file, the line and the reason (:class:`SpecError`).
"""

from __future__ import annotations

import json
import random
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from netsession.table import DEFAULT_TRANSPORT, MAX_NAME_LENGTH

__all__ = [
    "ACTIVITY_PRESETS",
    "DecoySpec",
    "SessionsFile",
    "SpecError",
    "generate",
    "load_sessions",
    "parse_duration",
    "parse_spec",
]

# activity preset -> (speak_every seconds, jitter). "silent" never speaks: idle time = age.
ACTIVITY_PRESETS: Final[dict[str, tuple[float, float]]] = {
    "interactive": (60.0, 0.8),
    "drive": (600.0, 0.5),
    "service": (15.0, 0.3),
    "silent": (0.0, 0.0),
}
DEFAULT_SPEAK_EVERY: Final = 60.0
DEFAULT_JITTER: Final = 0.5
# A DWORD of seconds is what sesi_time can carry (~136 years); nothing older makes sense.
MAX_SECONDS: Final = 0xFFFFFFFF
MAX_OPENS: Final = 0xFFFFFFFF
# Bounds on what one file may make the server hold.
MAX_SESSIONS: Final = 1_000_000
MAX_FILE_BYTES: Final = 64 << 20
_KEYS: Final = frozenset((
    "client", "user", "guest", "opens", "transport", "client_type", "age", "idle", "speak_every", "jitter",
    "respawn", "activity", "share",
))
_NUM = r"(\d+(?:\.\d+)?)"
_DURATION = re.compile(rf"(?:{_NUM}d)?(?:{_NUM}h)?(?:{_NUM}m)?(?:{_NUM}s?)?")


class SpecError(ValueError):
    """A sessions description that cannot be used: ``where`` is ``file:line`` (or the option)."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DecoySpec:
    """One synthetic session, as described (times in seconds)."""

    client: str
    user: str
    guest: bool = False
    opens: int = 0
    transport: str = DEFAULT_TRANSPORT
    client_type: str = ""
    age: float = 0.0
    idle: float | None = None
    speak_every: float = DEFAULT_SPEAK_EVERY  # 0: never speaks
    jitter: float = DEFAULT_JITTER
    respawn: float | None = None
    share: str | None = None  # the share its tree connect is to (default: IPC$, or Users if it has opens)

    def to_json(self) -> dict[str, Any]:
        """The description as a JSON object (what the control channel and ``decoy list`` carry)."""
        out: dict[str, Any] = {
            "client": self.client, "user": self.user, "guest": self.guest, "opens": self.opens,
            "transport": self.transport, "client_type": self.client_type, "age": self.age,
            "speak_every": self.speak_every, "jitter": self.jitter,
        }
        if self.idle is not None:
            out["idle"] = self.idle
        if self.respawn is not None:
            out["respawn"] = self.respawn
        if self.share is not None:
            out["share"] = self.share
        return out


@dataclass(frozen=True, slots=True)
class SessionsFile:
    """What a sessions source describes: the rows, and the seed of their activity (None: random)."""

    sessions: tuple[DecoySpec, ...]
    seed: int | None = None
    source: str = ""
    lines: tuple[int, ...] = field(default=(), compare=False)


def parse_duration(value: object, what: str = "duration") -> float:
    """Seconds from a number or a ``"1d2h3m4.5s"`` string (a bare number string is seconds).

    >>> parse_duration(90), parse_duration("1h30m"), parse_duration("2d"), parse_duration("45s")
    (90.0, 5400.0, 172800.0, 45.0)
    """
    if isinstance(value, bool):
        raise ValueError(f"{what} must be seconds or a string like '1h30m', not a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        m = _DURATION.fullmatch(text)
        if not text or m is None or not any(m.groups()):
            raise ValueError(f"{what} {value!r} is not a duration (seconds, or like '1d2h3m4s')")
        d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        seconds = ((d * 24 + h) * 60 + mi) * 60 + s
    else:
        raise ValueError(f"{what} must be seconds or a string like '1h30m'")
    if not 0 <= seconds <= MAX_SECONDS or seconds != seconds:
        raise ValueError(f"{what} {value!r} is out of range (0 to {MAX_SECONDS} seconds)")
    return seconds


def _text(obj: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = obj.get(key, default)
    if value is None:
        raise ValueError(f"{key!r} is required")
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string")
    if "\x00" in value:
        raise ValueError(f"{key!r} contains a NUL character")
    if len(value) >= MAX_NAME_LENGTH:
        raise ValueError(f"{key!r} is longer than {MAX_NAME_LENGTH - 1} characters")
    return value


def parse_spec(obj: object) -> DecoySpec:
    """One session's description (a mapping) -> DecoySpec; ValueError with the reason otherwise."""
    if not isinstance(obj, Mapping):
        raise ValueError("a session must be a table/object of keys")
    unknown = sorted(set(obj) - _KEYS)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
    client = _text(obj, "client").strip()
    user = _text(obj, "user").strip()
    if not client.removeprefix("\\\\"):
        raise ValueError("'client' is empty")
    if not user:
        raise ValueError("'user' is empty")
    guest = obj.get("guest", False)
    if not isinstance(guest, bool):
        raise ValueError("'guest' must be true or false")
    opens = obj.get("opens", 0)
    if isinstance(opens, bool) or not isinstance(opens, int) or not 0 <= opens <= MAX_OPENS:
        raise ValueError(f"'opens' must be a whole number from 0 to {MAX_OPENS}")
    speak_every, jitter = DEFAULT_SPEAK_EVERY, DEFAULT_JITTER
    if "activity" in obj:
        preset = obj["activity"]
        if not isinstance(preset, str) or preset not in ACTIVITY_PRESETS:
            raise ValueError(f"'activity' must be one of {', '.join(ACTIVITY_PRESETS)}")
        speak_every, jitter = ACTIVITY_PRESETS[preset]
    if "speak_every" in obj:
        speak_every = parse_duration(obj["speak_every"], "'speak_every'")
    if "jitter" in obj:
        j = obj["jitter"]
        if isinstance(j, bool) or not isinstance(j, int | float) or not 0 <= j <= 1:
            raise ValueError("'jitter' must be a number from 0 to 1")
        jitter = float(j)
    age = parse_duration(obj.get("age", 0), "'age'")
    idle = parse_duration(obj["idle"], "'idle'") if "idle" in obj else None
    if idle is not None and idle > age:
        raise ValueError(f"'idle' ({idle:g} s) is longer than 'age' ({age:g} s)")
    respawn = parse_duration(obj["respawn"], "'respawn'") if "respawn" in obj else None
    return DecoySpec(
        client=client, user=user, guest=guest, opens=opens,
        transport=_text(obj, "transport", DEFAULT_TRANSPORT), client_type=_text(obj, "client_type", ""),
        age=age, idle=idle, speak_every=speak_every, jitter=jitter, respawn=respawn,
        share=_text(obj, "share") if "share" in obj else None,
    )


# -- files ---------------------------------------------------------------------------------------------

_TOML_SESSION_HEADER = re.compile(r"^[ \t]*\[\[\s*(?:\"?)(sessions?)(?:\"?)\s*\]\]", re.MULTILINE)


def _toml_lines(text: str, count: int) -> list[int]:
    """The line of each ``[[session]]`` header, in order (the line a session's errors point at)."""
    lines = [text.count("\n", 0, m.start()) + 1 for m in _TOML_SESSION_HEADER.finditer(text)]
    return lines + [1] * (count - len(lines))


def _json_lines(text: str, doc: object, count: int) -> list[int]:
    """The line where each element of the sessions array starts."""
    if isinstance(doc, list):
        start = text.index("[")
    else:
        m = re.search(r'"sessions?"\s*:\s*\[', text)
        if m is None:
            return [1] * count
        start = m.end() - 1
    decoder = json.JSONDecoder()
    lines: list[int] = []
    i = start + 1
    n = len(text)
    while len(lines) < count and i < n:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n or text[i] == "]":
            break
        lines.append(text.count("\n", 0, i) + 1)
        try:
            _, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            break
    return lines + [1] * (count - len(lines))


def _json_error_line(exc: json.JSONDecodeError) -> int:
    return exc.lineno


def _toml_error(exc: tomllib.TOMLDecodeError) -> tuple[int, str]:
    m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
    reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc)) or "invalid TOML"
    return (int(m.group(1)) if m else 1), f"invalid TOML: {reason}"


def load_sessions(path: str | Path) -> SessionsFile:
    """Read and check a sessions file (``.json`` is JSON, ``.toml`` TOML, anything else JSON if it starts
    as a JSON object or array does). :class:`SpecError` with ``file:line`` and the reason if anything is
    wrong."""
    path = Path(path)
    name = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SpecError(name, f"cannot read it: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(name, f"larger than {MAX_FILE_BYTES >> 20} MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SpecError(f"{name}:{line}", "not UTF-8 text") from None
    suffix = path.suffix.lower()
    head = text.lstrip()
    is_json = suffix == ".json" or (
        suffix != ".toml" and (head[:1] == "{" or re.match(r"\[\s*[{\]]", head) is not None)
    )
    doc: object
    if is_json:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{name}:{_json_error_line(exc)}", f"invalid JSON: {exc.msg}") from None
    else:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            line, reason = _toml_error(exc)
            raise SpecError(f"{name}:{line}", reason) from None
    if isinstance(doc, list):
        items: object = doc
        seed: object = None
    elif isinstance(doc, dict):
        unknown = sorted(set(doc) - {"seed", "session", "sessions"})
        if unknown:
            raise SpecError(f"{name}:1", f"unknown top-level key {unknown[0]!r} (expected session, seed)")
        items = doc.get("session", doc.get("sessions", []))
        seed = doc.get("seed")
    else:
        raise SpecError(f"{name}:1", "expected a list of sessions or a table with 'session'")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise SpecError(f"{name}:1", "'seed' must be a whole number")
    if not isinstance(items, list):
        raise SpecError(f"{name}:1", "'session' must be an array of tables ([[session]])")
    if len(items) > MAX_SESSIONS:
        raise SpecError(f"{name}:1", f"more than {MAX_SESSIONS} sessions")
    lines = _json_lines(text, doc, len(items)) if is_json else _toml_lines(text, len(items))
    specs = []
    for i, item in enumerate(items):
        try:
            specs.append(parse_spec(item))
        except ValueError as exc:
            raise SpecError(f"{name}:{lines[i]}", f"session {i + 1}: {exc}") from None
    return SessionsFile(tuple(specs), seed, name, tuple(lines))


# -- random:N ------------------------------------------------------------------------------------------

_FIRST = ("a", "b", "c", "d", "e", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "w")
_SURNAMES = (
    "smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "martin", "lee",
    "walker", "hall", "allen", "young", "king", "wright", "scott", "green", "baker", "adams", "nelson",
    "hill", "ramirez", "campbell", "mitchell", "roberts", "carter", "phillips", "evans", "turner", "torres",
    "parker", "collins", "edwards", "stewart", "morris", "murphy", "cook", "rogers", "morgan", "peterson",
    "cooper", "reed", "bailey", "bell", "gomez", "kelly", "howard", "ward", "cox", "diaz", "richardson",
)
_DEPARTMENTS = ("FIN", "HR", "ENG", "OPS", "SALES", "IT", "LEGAL", "MKT")
_SERVICES = ("svc_backup", "svc_sql", "svc_sccm", "svc_veeam", "svc_print", "svc_scan")


def generate(count: int, seed: int) -> SessionsFile:
    """``count`` plausible sessions: workstations by address or name, people (a few admins), service
    accounts that speak often, machine accounts, a rare guest; ages from minutes to days; mostly idle
    mapped-drive sessions. The same ``seed`` gives the same rows."""
    if not 0 <= count <= MAX_SESSIONS:
        raise SpecError("random", f"the count must be 0 to {MAX_SESSIONS}")
    rng = random.Random(seed)
    specs: list[DecoySpec] = []
    for _ in range(count):
        kind = rng.random()
        dept = rng.choice(_DEPARTMENTS)
        if rng.random() < 0.6:
            client = f"10.{rng.randint(0, 31)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}"
        else:
            client = f"{rng.choice(('WS', 'LT', 'PC'))}-{dept}-{rng.randint(1, 9999):04d}"
        age = min(10 ** rng.uniform(1.8, 5.8), 8 * 86400.0)  # ~1 minute to 8 days, log-uniform
        if kind < 0.08:
            user, speak, jitter, opens = rng.choice(_SERVICES), rng.uniform(5, 30), 0.3, rng.randint(1, 12)
        elif kind < 0.14:
            host = client if not client[0].isdigit() else f"SRV-{dept}-{rng.randint(1, 99):02d}"
            user = f"{host[:15]}$"  # a computer account (NetBIOS names are 15 characters at most)
            speak, jitter, opens = rng.uniform(120, 900), 0.5, rng.randint(0, 2)
        elif kind < 0.15:
            user, speak, jitter, opens = "guest", rng.uniform(300, 1800), 0.5, 0
        else:
            name = rng.choice(_FIRST) + rng.choice(_SURNAMES)
            user = ("adm-" + name) if rng.random() < 0.07 else name
            if rng.random() < 0.3:
                speak, jitter, opens = rng.uniform(20, 120), 0.8, rng.randint(1, 8)  # working on files
            else:
                speak, jitter, opens = rng.uniform(300, 3600), 0.5, rng.randint(0, 2)  # a mapped drive
        specs.append(DecoySpec(
            client=client, user=user, guest=user == "guest", opens=opens, age=round(age),
            speak_every=round(speak, 1), jitter=jitter,
            respawn=round(rng.uniform(60, 1800)) if rng.random() < 0.5 else None,
        ))
    return SessionsFile(tuple(specs), seed, f"random:{count}")


def parse_source(value: str, seed: int | None) -> SessionsFile:
    """``--sessions`` value: ``random:N`` (with ``seed``, or a random one) or a file path."""
    if value.startswith("random:"):
        n = value.removeprefix("random:")
        if not n.isdigit():
            raise SpecError("--sessions", f"expected random:N with N a number, got {value!r}")
        return generate(int(n), seed if seed is not None else random.SystemRandom().randrange(1 << 31))
    loaded = load_sessions(value)
    if seed is not None:
        return SessionsFile(loaded.sessions, seed, loaded.source, loaded.lines)
    return loaded


def specs_json(specs: Sequence[DecoySpec]) -> list[dict[str, Any]]:
    return [s.to_json() for s in specs]
