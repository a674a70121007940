"""The server's accounts: user names, NT hashes and group memberships, in SQLite.

No password is ever stored: :func:`nt_hash` turns one into the NT hash (MD4 of its UTF-16LE encoding,
MS-NLMP 3.3.1 NTOWFv1) and only the 16-byte hash is kept, which is all an NTLMv2 acceptor needs.

The database file is created with mode 0600 (``os.open(..., 0o600)``, never widened by a later chmod) and
an existing file that group or others may read is refused. SQLite gives its ``-wal``/``-shm`` companions
the database file's permissions. The store runs in WAL mode with one short transaction per call, so a
second process (``netsession user add ...``) can change accounts while the server runs, and the server
sees the change at the next logon::

    >>> store = AccountStore(state_dir / "accounts.sqlite3")          # doctest: +SKIP
    >>> store.add_user("alice", nt_hash("Passw0rd"), groups=(ADMINISTRATORS,))   # doctest: +SKIP
    >>> store.get("ALICE").groups                                      # doctest: +SKIP
    frozenset({'Administrators'})

User names compare case-insensitively, as Windows' do; the spelling given to :meth:`AccountStore.add_user`
is kept for display.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import struct
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType

from netsession.errors import shown
from netsession.groups import BUILTIN_GROUPS, USERS

__all__ = [
    "ACCOUNT_NAME_MAX",
    "NT_HASH_SIZE",
    "Account",
    "AccountError",
    "AccountStore",
    "DuplicateAccount",
    "InvalidAccountName",
    "UnknownAccount",
    "UnknownGroup",
    "fold_name",
    "md4",
    "nt_hash",
]

NT_HASH_SIZE = 16
# MS-SAMR 3.1.1.6 (sAMAccountName of a user object): at most 20 characters.
ACCOUNT_NAME_MAX = 20
# Characters Windows refuses in a user name (Local Users and Groups: " / \ [ ] : ; | = , + * ? < > @).
_FORBIDDEN_NAME_CHARS = frozenset('"/\\[]:;|=,+*?<>@')

# The file must not be readable or writable by group or others.
_PRIVATE_MODE = 0o600
_SCHEMA_VERSION = 1
_BUSY_TIMEOUT_MS = 5000


# --------------------------------------------------------------------------------------------- MD4
# RFC 1320. Not in hashlib on OpenSSL 3 (it lives in the legacy provider), so written here.

_MASK32 = 0xFFFFFFFF


def _rotl(x: int, s: int) -> int:
    return ((x << s) | (x >> (32 - s))) & _MASK32


# RFC 1320 3.4: the word order and shift amounts of rounds 2 and 3 (round 1 takes words 0..15 in order).
_ROUND2_ORDER = (0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)
_ROUND3_ORDER = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)
_ROUND1_SHIFTS = (3, 7, 11, 19)
_ROUND2_SHIFTS = (3, 5, 9, 13)
_ROUND3_SHIFTS = (3, 9, 11, 15)
_ROUND2_CONSTANT = 0x5A827999  # RFC 1320 3.4: square root of 2
_ROUND3_CONSTANT = 0x6ED9EBA1  # RFC 1320 3.4: square root of 3


def md4(data: bytes) -> bytes:
    """The 16-byte MD4 digest of ``data`` (RFC 1320).

    >>> md4(b"abc").hex()
    'a448017aaf21d8525fc10ae87aa6729d'
    """
    # RFC 1320 3.1-3.2: append 0x80, zeros to 56 mod 64, then the bit length as a little-endian 64-bit word.
    bit_length = (len(data) * 8) & 0xFFFFFFFFFFFFFFFF
    padded = data + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack("<Q", bit_length)
    # RFC 1320 3.3: initial buffer.
    a, b, c, d = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
    for block in range(0, len(padded), 64):
        x = struct.unpack_from("<16I", padded, block)
        aa, bb, cc, dd = a, b, c, d
        # RFC 1320 3.4 round 1: F(X,Y,Z) = XY v not(X) Z
        # Each operation is a = (a + fn(b,c,d) + X[k] + constant) <<< s, then the words rotate (a,b,c,d) ->
        # (d,a',b,c).
        for i in range(16):
            f = (b & c) | (~b & d)
            a, b, c, d = d, _rotl((a + f + x[i]) & _MASK32, _ROUND1_SHIFTS[i % 4]), b, c
        # round 2: G(X,Y,Z) = XY v XZ v YZ
        for i in range(16):
            g = ((b & c) | (b & d) | (c & d)) + _ROUND2_CONSTANT
            a, b, c, d = d, _rotl((a + g + x[_ROUND2_ORDER[i]]) & _MASK32, _ROUND2_SHIFTS[i % 4]), b, c
        # round 3: H(X,Y,Z) = X xor Y xor Z
        for i in range(16):
            h = (b ^ c ^ d) + _ROUND3_CONSTANT
            a, b, c, d = d, _rotl((a + h + x[_ROUND3_ORDER[i]]) & _MASK32, _ROUND3_SHIFTS[i % 4]), b, c
        a, b, c, d = (a + aa) & _MASK32, (b + bb) & _MASK32, (c + cc) & _MASK32, (d + dd) & _MASK32
    return struct.pack("<4I", a, b, c, d)


def nt_hash(password: str) -> bytes:
    """The NT hash of ``password``: MD4(UNICODE(Passwd)) (MS-NLMP 3.3.1 NTOWFv1).

    >>> nt_hash("").hex()
    '31d6cfe0d16ae931b73c59d7e0c089c0'
    """
    # Windows passwords are UTF-16 strings; surrogatepass keeps every Python str encodable.
    return md4(password.encode("utf-16-le", "surrogatepass"))


# ------------------------------------------------------------------------------------ names, errors


def fold_name(name: str) -> str:
    """The case-insensitive key of an account name: each character upper-cased on its own.

    Windows compares names with a one-to-one upcase table (RtlUpcaseUnicodeString), so a character whose
    full upper case is longer than one character (``"ß".upper() == "SS"``) is left as it is.
    """
    return "".join(u if len(u := ch.upper()) == 1 else ch for ch in name)


class AccountError(Exception):
    """An account operation was refused; ``name`` is the account or group it was about."""

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


class InvalidAccountName(AccountError, ValueError):
    """The name cannot be a Windows user name."""


class DuplicateAccount(AccountError):
    """An account of that name (compared case-insensitively) exists already."""


class UnknownAccount(AccountError, LookupError):
    """No account of that name."""


class UnknownGroup(AccountError, LookupError):
    """Not one of the server's groups (:data:`netsession.groups.BUILTIN_GROUPS`)."""


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise InvalidAccountName("an account name must be a non-empty string")
    if len(name) > ACCOUNT_NAME_MAX:
        raise InvalidAccountName(
            f"account name {shown(name)} is longer than {ACCOUNT_NAME_MAX} characters", name
        )
    bad = sorted({ch for ch in name if ch in _FORBIDDEN_NAME_CHARS or ord(ch) < 0x20 or ord(ch) == 0x7F})
    if bad:
        raise InvalidAccountName(
            f"account name {shown(name)} contains forbidden characters {shown(''.join(bad))}", name
        )
    if not name.strip(". "):
        raise InvalidAccountName(f"account name {shown(name)} consists only of periods and spaces", name)


def _is_valid_name(name: str) -> bool:
    try:
        _check_name(name)
    except InvalidAccountName:
        return False
    return True


def _check_hash(value: bytes) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != NT_HASH_SIZE:
        raise AccountError(f"an NT hash is {NT_HASH_SIZE} bytes")
    return bytes(value)


_GROUPS_BY_KEY = {fold_name(g): g for g in BUILTIN_GROUPS}


def _canonical_groups(groups: Iterable[str]) -> frozenset[str]:
    if isinstance(groups, str):  # a lone "Users" would otherwise iterate as letters
        groups = (groups,)
    out = set()
    for group in groups:
        canonical = _GROUPS_BY_KEY.get(fold_name(group)) if isinstance(group, str) else None
        if canonical is None:
            known = ", ".join(BUILTIN_GROUPS)
            raise UnknownGroup(f"unknown group {shown(group)}; the groups are {known}", str(group))
        out.add(canonical)
    return frozenset(out)


# ------------------------------------------------------------------------------------------- store


@dataclass(frozen=True)
class Account:
    """One account: its name as first spelt, its NT hash, and its groups."""

    name: str
    nt_hash: bytes
    groups: frozenset[str]

    def __repr__(self) -> str:  # keep the hash out of logs and tracebacks
        return f"Account(name={self.name!r}, groups={sorted(self.groups)!r})"


_SCHEMA = """
CREATE TABLE users (
    name_key TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    nt_hash  BLOB NOT NULL CHECK (length(nt_hash) = 16)
) WITHOUT ROWID;
CREATE TABLE memberships (
    name_key   TEXT NOT NULL REFERENCES users (name_key) ON DELETE CASCADE,
    group_name TEXT NOT NULL,
    PRIMARY KEY (name_key, group_name)
) WITHOUT ROWID;
"""


def _create_private_file(path: str) -> None:
    """Create ``path`` with mode 0600, or check that the existing file is private."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, _PRIVATE_MODE)
    except FileExistsError:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise AccountError(f"{path} is not a regular file") from None
        if st.st_mode & 0o077:
            raise AccountError(
                f"{path} has mode {stat.S_IMODE(st.st_mode):04o}; an account store must not be "
                "accessible by group or others (0600)"
            ) from None
    else:
        os.close(fd)


def _insert_memberships(db: sqlite3.Connection, key: str, members: frozenset[str]) -> None:
    rows = [(key, group) for group in sorted(members)]
    db.executemany("INSERT INTO memberships (name_key, group_name) VALUES (?, ?)", rows)


class AccountStore:
    """The accounts of one server, in the SQLite file ``path`` (created 0600 if missing).

    Every method is one short transaction; the object may be shared between threads. Close it with
    :meth:`close` or use it as a context manager.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        _create_private_file(self.path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA journal_mode = WAL")
            with self._write() as db:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version == 0:
                    # One statement at a time: executescript() would commit the transaction half-way.
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
                elif version != _SCHEMA_VERSION:
                    raise AccountError(f"{self.path}: schema version {version}, expected {_SCHEMA_VERSION}")
        except BaseException:
            self._db.close()
            raise

    # -- plumbing

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE) so readers never see half of it."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> AccountStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- changes

    def add_user(self, name: str, nt_hash: bytes, groups: Iterable[str] = (USERS,)) -> Account:
        """Add an account.

        Raises :class:`DuplicateAccount`, :class:`InvalidAccountName` or :class:`UnknownGroup`.
        """
        _check_name(name)
        value = _check_hash(nt_hash)
        members = _canonical_groups(groups)
        key = fold_name(name)
        with self._write() as db:
            if db.execute("SELECT 1 FROM users WHERE name_key = ?", (key,)).fetchone():
                raise DuplicateAccount(f"account {shown(name)} exists already", name)
            db.execute("INSERT INTO users (name_key, name, nt_hash) VALUES (?, ?, ?)", (key, name, value))
            _insert_memberships(db, key, members)
        return Account(name, value, members)

    def set_nt_hash(self, name: str, nt_hash: bytes) -> None:
        """Replace an account's NT hash. Raises :class:`UnknownAccount`."""
        value = _check_hash(nt_hash)
        with self._write() as db:
            updated = db.execute("UPDATE users SET nt_hash = ? WHERE name_key = ?", (value, fold_name(name)))
            if updated.rowcount == 0:
                raise UnknownAccount(f"no account {shown(name)}", name)

    def set_password(self, name: str, password: str) -> None:
        """Replace an account's NT hash with that of ``password`` (which is not kept)."""
        self.set_nt_hash(name, nt_hash(password))

    def set_groups(self, name: str, groups: Iterable[str]) -> None:
        """Make ``groups`` the only groups of ``name``; raises UnknownAccount or UnknownGroup."""
        members = _canonical_groups(groups)
        key = fold_name(name)
        with self._write() as db:
            if not db.execute("SELECT 1 FROM users WHERE name_key = ?", (key,)).fetchone():
                raise UnknownAccount(f"no account {shown(name)}", name)
            db.execute("DELETE FROM memberships WHERE name_key = ?", (key,))
            _insert_memberships(db, key, members)

    def delete_user(self, name: str) -> None:
        """Remove an account and its memberships. Raises :class:`UnknownAccount`."""
        with self._write() as db:
            if db.execute("DELETE FROM users WHERE name_key = ?", (fold_name(name),)).rowcount == 0:
                raise UnknownAccount(f"no account {shown(name)}", name)

    # -- queries (each one statement, so one consistent snapshot)

    def get(self, name: str) -> Account | None:
        """The account called ``name`` (any case), or None. A name no account could have gives None."""
        if not isinstance(name, str) or not _is_valid_name(name):
            return None
        with self._lock:
            rows = self._db.execute(
                "SELECT u.name, u.nt_hash, m.group_name FROM users AS u "
                "LEFT JOIN memberships AS m USING (name_key) WHERE u.name_key = ?",
                (fold_name(name),),
            ).fetchall()
        if not rows:
            return None
        return Account(rows[0][0], bytes(rows[0][1]), frozenset(r[2] for r in rows if r[2] is not None))

    def list_users(self) -> list[Account]:
        """Every account, ordered by name (case-insensitively)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT u.name_key, u.name, u.nt_hash, m.group_name FROM users AS u "
                "LEFT JOIN memberships AS m USING (name_key) ORDER BY u.name_key"
            ).fetchall()
        accounts: dict[str, tuple[str, bytes, set[str]]] = {}
        for key, name, value, group in rows:
            entry = accounts.setdefault(key, (name, bytes(value), set()))
            if group is not None:
                entry[2].add(group)
        return [Account(name, value, frozenset(groups)) for name, value, groups in accounts.values()]

    def groups_of(self, name: str) -> frozenset[str]:
        """The groups of account ``name``. Raises :class:`UnknownAccount`."""
        account = self.get(name)
        if account is None:
            raise UnknownAccount(f"no account {shown(name)}", name)
        return account.groups
