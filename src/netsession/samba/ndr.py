"""Samba's NDR flavour (pidl, NDR32 little-endian) for the structures the bridge reads.

Samba's internal IDL (``librpc/idl/auth.idl``, ``security.idl``, ``source3/librpc/idl/smbXsrv.idl``) is
NDR as pidl writes it, with its own habits, each checked against ``ndrdump`` on records a real smbd 4.17
wrote (tests/unit/test_samba_ndr.py):

* ``[charset(UTF8|DOS), string] uint8 *`` is a conformant-varying byte array: max_count, offset (0),
  actual_count, then ``actual_count`` bytes that end with a NUL;
* ``NTTIME`` is 8 bytes aligned to 4 (``udlong``); ``hyper``, ``uid_t`` and ``gid_t`` are aligned to 8;
* ``DATA_BLOB`` is a u32 length and the bytes, with no padding;
* an ``[ignore]`` pointer is still marshalled, as NULL (4 bytes);
* a struct whose *last* member is a conformant array carries the array's size first, before the struct's
  own alignment; a conformant array elsewhere has its size just before it;
* a struct is aligned to its largest member's alignment (8 with a hyper); there is no trailing padding.

Every read is bounded by :class:`netsession.wire.ndr.NdrReader`: a count is checked against the bytes
left before anything is allocated for it, and a decode error is an :class:`~netsession.wire.ndr.NdrError`
with its offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from struct import Struct
from typing import Final

from netsession.wire.ndr import NdrError, NdrReader

_U64: Final = Struct("<Q")
# security.idl: dom_sid has [range(0,15)] num_auths.
MAX_SUB_AUTHORITIES: Final = 15
# The Unix epoch in NTTIME (100 ns ticks since 1601-01-01).
NTTIME_UNIX_EPOCH: Final = 116444736000000000
NTTIME_TICKS: Final = 10_000_000


def nttime_to_unix(value: int) -> float:
    """Seconds since the Unix epoch of an NTTIME (0 stays 0.0)."""
    if value == 0:
        return 0.0
    return (value - NTTIME_UNIX_EPOCH) / NTTIME_TICKS


class SambaNdrReader(NdrReader):
    """:class:`NdrReader` with the primitives Samba's IDL uses."""

    __slots__ = ()

    def u8(self) -> int:
        pos = self.pos
        if pos >= len(self.data):
            raise NdrError("byte truncated", pos)
        self.pos = pos + 1
        return self.data[pos]

    def hyper(self) -> int:
        """A ``hyper`` (also ``uid_t``, ``gid_t``, a 64-bit bitmap): 8 bytes aligned to 8."""
        self.align(8)
        return self._u64()

    def nttime(self) -> int:
        """An ``NTTIME``: 8 bytes aligned to 4 (pidl's ``udlong``)."""
        self.align(4)
        return self._u64()

    def _u64(self) -> int:
        pos = self.pos
        if pos + 8 > len(self.data):
            raise NdrError("64-bit value truncated", pos)
        self.pos = pos + 8
        value: int = _U64.unpack_from(self.data, pos)[0]
        return value

    def null_pointer(self, what: str) -> None:
        """An ``[ignore]`` pointer: marshalled, and always NULL."""
        at = self.pos
        if self.pointer() != 0:
            raise NdrError(f"{what} is an [ignore] pointer and must be NULL", at)

    def cstring(self, what: str = "string") -> str:
        """A ``[charset(UTF8|DOS), string]`` byte array (the referent, or an inline ``char x[]``)."""
        self.align(4)
        at = self.pos
        max_count = self.u32()
        offset = self.u32()
        actual = self.u32()
        if offset != 0 or actual > max_count or actual == 0:
            raise NdrError(f"{what}: bad counts max={max_count} offset={offset} actual={actual}", at)
        raw = self.take(actual)
        if raw[-1] != 0:
            raise NdrError(f"{what} is not NUL-terminated", self.pos - 1)
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NdrError(f"{what} is not UTF-8: {exc.reason}", at) from None

    def data_blob(self) -> bytes:
        """A ``DATA_BLOB``: u32 length, then the bytes (no padding)."""
        return self.take(self.u32())

    def guid(self) -> bytes:
        """A ``GUID`` (16 bytes, aligned to 4), kept as its wire bytes."""
        self.align(4)
        return self.take(16)

    def dom_sid(self) -> str:
        """A ``dom_sid`` (security.idl) as its S-1-... string."""
        self.align(4)
        at = self.pos
        revision = self.u8()
        count = self.u8()
        if count > MAX_SUB_AUTHORITIES:
            raise NdrError(f"SID with {count} sub-authorities (at most {MAX_SUB_AUTHORITIES})", at)
        authority = int.from_bytes(self.take(6), "big")
        subs = [self.u32() for _ in range(count)]
        return "-".join(["S", str(revision), str(authority), *map(str, subs)])


# -- auth.idl / security.idl ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SecurityToken:
    """security.idl ``security_token``: the SIDs of the logon (user first, then its groups)."""

    sids: tuple[str, ...]
    privilege_mask: int
    rights_mask: int


@dataclass(frozen=True, slots=True)
class UnixToken:
    """security.idl ``security_unix_token``."""

    uid: int
    gid: int
    groups: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class UserInfo:
    """auth.idl ``auth_user_info`` (the fields the bridge uses)."""

    account_name: str | None
    domain_name: str | None
    full_name: str | None
    authenticated: bool


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """auth.idl ``auth_session_info``: who a session (or pipe caller) is."""

    token: SecurityToken | None
    unix_token: UnixToken | None
    info: UserInfo | None
    unix_name: str | None
    unique_session_token: bytes


# A dom_sid is at least 8 bytes on the wire; a gid_t 8.
_MIN_SID_BYTES: Final = 8


def read_security_token(r: SambaNdrReader) -> SecurityToken:
    # The array is not the struct's last member, so its size is not hoisted: align to 8 (the hyper),
    # num_sids, then the array's own size, then the SIDs.
    r.align(8)
    num_sids = r.u32()
    at = r.pos
    size = r.conformance(_MIN_SID_BYTES)
    if num_sids != size:
        raise NdrError(f"security_token: num_sids {num_sids} != array size {size}", at)
    sids = tuple(r.dom_sid() for _ in range(num_sids))
    privilege_mask = r.hyper()
    rights_mask = r.u32()
    return SecurityToken(sids, privilege_mask, rights_mask)


def read_unix_token(r: SambaNdrReader) -> UnixToken:
    at = r.pos
    size = r.conformance(8)
    uid = r.hyper()
    gid = r.hyper()
    ngroups = r.u32()
    if ngroups != size:
        raise NdrError(f"security_unix_token: ngroups {ngroups} != array size {size}", at)
    groups = tuple(r.hyper() for _ in range(ngroups))
    return UnixToken(uid, gid, groups)


_USER_INFO_STRINGS: Final = (
    "account_name", "user_principal_name", "domain_name", "dns_domain_name", "full_name", "logon_script",
    "profile_path", "home_directory", "home_drive", "logon_server",
)


def read_user_info(r: SambaNdrReader) -> UserInfo:
    r.align(4)
    refs = [r.pointer(), r.pointer()]
    r.u8()  # user_principal_constructed
    refs += [r.pointer() for _ in range(8)]
    for _ in range(6):  # last_logon .. force_password_change
        r.nttime()
    r.u16()  # logon_count
    r.u16()  # bad_password_count
    r.u32()  # acct_flags
    authenticated = r.u8()
    values: dict[str, str | None] = {}
    for name, ref in zip(_USER_INFO_STRINGS, refs, strict=True):
        values[name] = r.cstring(name) if ref else None
    return UserInfo(values["account_name"], values["domain_name"], values["full_name"], authenticated != 0)


def read_session_info(r: SambaNdrReader) -> SessionInfo:
    """``auth_session_info``: its scalars, then its referents in order."""
    r.align(4)
    token_ref = r.pointer()
    unix_token_ref = r.pointer()
    info_ref = r.pointer()
    unix_info_ref = r.pointer()
    r.null_pointer("torture")
    r.data_blob()  # session_key (not kept)
    r.null_pointer("credentials")
    unique = r.guid()
    r.u16()  # ticket_type (an enum: uint1632)
    token = read_security_token(r) if token_ref else None
    unix_token = read_unix_token(r) if unix_token_ref else None
    info = read_user_info(r) if info_ref else None
    unix_name = None
    if unix_info_ref:
        r.align(4)
        name_ref, sanitized_ref = r.pointer(), r.pointer()
        if name_ref:
            unix_name = r.cstring("unix_name")
        if sanitized_ref:
            r.cstring("sanitized_username")
    return SessionInfo(token, unix_token, info, unix_name, unique)
