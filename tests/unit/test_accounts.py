"""The account store (SQLite, NT hashes only, 0600) and our MD4 (RFC 1320)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from Cryptodome.Hash import MD4 as CryptodomeMD4  # impacket's dependency: an independent MD4 oracle
from hypothesis import given, settings
from hypothesis import strategies as st

from netsession.groups import ADMINISTRATORS, BUILTIN_GROUPS, GUESTS, SERVER_OPERATORS, USERS
from netsession.server.accounts import (
    ACCOUNT_NAME_MAX,
    Account,
    AccountError,
    AccountStore,
    DuplicateAccount,
    InvalidAccountName,
    UnknownAccount,
    UnknownGroup,
    fold_name,
    md4,
    nt_hash,
)

# RFC 1320 appendix A.5, the test suite.
RFC1320_VECTORS = [
    (b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
    (b"a", "bde52cb31de33e46245e05fbdbd6fb24"),
    (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
    (b"message digest", "d9130a8164549fe818874806e1c7014b"),
    (b"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
    (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "043f8582f241db351ce627e153e7f0e4"),
    (b"1234567890" * 8, "e33b4ddc9c38f2199c3e7b164fcc0536"),
]


@pytest.mark.parametrize(("message", "digest"), RFC1320_VECTORS)
def test_md4_rfc1320_test_suite(message: bytes, digest: str) -> None:
    assert md4(message).hex() == digest


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_md4_agrees_with_pycryptodome(data: bytes) -> None:
    assert md4(data) == CryptodomeMD4.new(data).digest()


def test_md4_padding_boundaries() -> None:
    # 55/56/63/64 bytes straddle the one-block/two-block padding boundary (RFC 1320 3.1).
    for n in (55, 56, 57, 63, 64, 65, 119, 120):
        assert md4(b"x" * n) == CryptodomeMD4.new(b"x" * n).digest()


def test_nt_hash_is_md4_of_utf16le() -> None:
    # MS-NLMP 4.2.2.1.2: NTOWFv1("Password").
    assert nt_hash("Password").hex() == "a4f49c406510bdcab6824ee7c30fd852"
    assert nt_hash("").hex() == "31d6cfe0d16ae931b73c59d7e0c089c0"


def test_nt_hash_accepts_non_bmp_and_lone_surrogates() -> None:
    assert nt_hash("p\U0001f600") == md4("p\U0001f600".encode("utf-16-le"))
    assert len(nt_hash("\ud800")) == 16


# ------------------------------------------------------------------------------------------- store


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "accounts.sqlite3"


@pytest.fixture
def store(store_path: Path) -> AccountStore:
    with AccountStore(store_path) as s:
        yield s


def test_store_file_is_created_0600_even_with_permissive_umask(store_path: Path) -> None:
    old = os.umask(0)
    try:
        AccountStore(store_path).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(store_path.stat().st_mode) == 0o600


def test_store_wal_and_shm_files_are_private(store: AccountStore, store_path: Path) -> None:
    store.add_user("alice", nt_hash("x"))
    companions = [p for p in store_path.parent.iterdir() if p.name != store_path.name]
    assert {p.name for p in companions} >= {store_path.name + "-wal", store_path.name + "-shm"}
    for p in companions:
        assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0, p


def test_store_refuses_an_existing_file_readable_by_others(store_path: Path) -> None:
    store_path.touch(mode=0o644)
    store_path.chmod(0o644)
    with pytest.raises(AccountError, match="0600"):
        AccountStore(store_path)


def test_store_reopens_existing_private_file(store_path: Path) -> None:
    with AccountStore(store_path) as s:
        s.add_user("alice", nt_hash("pw"), groups=(ADMINISTRATORS,))
    with AccountStore(store_path) as s:
        account = s.get("alice")
    assert account == Account("alice", nt_hash("pw"), frozenset({ADMINISTRATORS}))


def test_store_never_holds_the_password(store: AccountStore, store_path: Path) -> None:
    secret = "Sup3rSecretPassw0rd"
    store.add_user("alice", nt_hash("first"))
    store.set_password("alice", secret)
    assert store.get("alice").nt_hash == nt_hash(secret)  # type: ignore[union-attr]
    for p in store_path.parent.iterdir():
        blob = p.read_bytes()
        assert secret.encode() not in blob and secret.encode("utf-16-le") not in blob, p


def test_add_user_default_group_is_users(store: AccountStore) -> None:
    account = store.add_user("alice", nt_hash("pw"))
    assert account.groups == frozenset({USERS})
    assert store.get("alice") == account


def test_get_unknown_user_is_none(store: AccountStore) -> None:
    assert store.get("nobody") is None


def test_user_names_are_case_insensitive(store: AccountStore) -> None:
    store.add_user("Alice", nt_hash("pw"))
    for spelling in ("alice", "ALICE", "aLiCe"):
        account = store.get(spelling)
        assert account is not None and account.name == "Alice"
    with pytest.raises(DuplicateAccount):
        store.add_user("ALICE", nt_hash("other"))
    store.delete_user("aLICE")
    assert store.get("Alice") is None


def test_case_folding_is_one_to_one_like_windows() -> None:
    assert fold_name("straße") == "STRAßE"  # no ß -> SS
    assert fold_name("élodie") == "ÉLODIE"


def test_duplicate_user_is_refused(store: AccountStore) -> None:
    store.add_user("alice", nt_hash("pw"))
    with pytest.raises(DuplicateAccount) as info:
        store.add_user("alice", nt_hash("pw2"))
    assert info.value.name == "alice"
    assert store.get("alice").nt_hash == nt_hash("pw")  # type: ignore[union-attr]


def test_unknown_user_operations_raise_unknown_account(store: AccountStore) -> None:
    for call in (
        lambda: store.delete_user("ghost"),
        lambda: store.set_password("ghost", "pw"),
        lambda: store.set_nt_hash("ghost", nt_hash("pw")),
        lambda: store.set_groups("ghost", [USERS]),
        lambda: store.groups_of("ghost"),
    ):
        with pytest.raises(UnknownAccount):
            call()


def test_unknown_group_is_refused_and_nothing_is_written(store: AccountStore) -> None:
    with pytest.raises(UnknownGroup) as info:
        store.add_user("alice", nt_hash("pw"), groups=(USERS, "Domain Admins"))
    assert info.value.name == "Domain Admins"
    assert store.get("alice") is None
    store.add_user("alice", nt_hash("pw"))
    with pytest.raises(UnknownGroup):
        store.set_groups("alice", ["Wheel"])
    assert store.groups_of("alice") == frozenset({USERS})


def test_group_names_match_case_insensitively_and_are_canonical(store: AccountStore) -> None:
    store.add_user("bob", nt_hash("pw"), groups=("administrators", "SERVER OPERATORS"))
    assert store.groups_of("bob") == frozenset({ADMINISTRATORS, SERVER_OPERATORS})


def test_a_single_group_string_is_one_group(store: AccountStore) -> None:
    store.add_user("bob", nt_hash("pw"), groups=GUESTS)
    assert store.groups_of("bob") == frozenset({GUESTS})


def test_set_groups_replaces_memberships(store: AccountStore) -> None:
    store.add_user("bob", nt_hash("pw"), groups=BUILTIN_GROUPS)
    store.set_groups("BOB", [GUESTS])
    assert store.groups_of("bob") == frozenset({GUESTS})
    store.set_groups("bob", [])
    assert store.groups_of("bob") == frozenset()


def test_set_nt_hash_and_set_password(store: AccountStore) -> None:
    store.add_user("bob", nt_hash("old"))
    store.set_nt_hash("bob", nt_hash("mid"))
    assert store.get("bob").nt_hash == nt_hash("mid")  # type: ignore[union-attr]
    store.set_password("BOB", "new")
    assert store.get("bob").nt_hash == nt_hash("new")  # type: ignore[union-attr]


def test_delete_user_removes_memberships(store: AccountStore) -> None:
    store.add_user("bob", nt_hash("pw"), groups=(ADMINISTRATORS,))
    store.delete_user("bob")
    store.add_user("bob", nt_hash("pw"))
    assert store.groups_of("bob") == frozenset({USERS})


def test_list_users_sorted_case_insensitively(store: AccountStore) -> None:
    for name in ("carol", "Alice", "bob"):
        store.add_user(name, nt_hash(name))
    store.set_groups("bob", [])
    assert [a.name for a in store.list_users()] == ["Alice", "bob", "carol"]
    assert store.list_users()[1].groups == frozenset()


@pytest.mark.parametrize(
    "name",
    ["", "a" * (ACCOUNT_NAME_MAX + 1), "a:b", "dom\\user", "a/b", "x@y", "a*", "tab\there", "...", " . "],
)
def test_invalid_account_names_are_refused(store: AccountStore, name: str) -> None:
    with pytest.raises(InvalidAccountName):
        store.add_user(name, nt_hash("pw"))
    assert store.get(name) is None


def test_nt_hash_must_be_16_bytes(store: AccountStore) -> None:
    with pytest.raises(AccountError):
        store.add_user("alice", b"\x00" * 15)
    with pytest.raises(AccountError):
        store.add_user("alice", "31d6cfe0d16ae931b73c59d7e0c089c0")  # type: ignore[arg-type]


def test_account_repr_hides_the_hash() -> None:
    account = Account("alice", bytes(range(16)), frozenset({USERS}))
    assert bytes(range(16)).hex() not in repr(account) and "nt_hash" not in repr(account)


def test_second_connection_sees_changes_at_once(store_path: Path) -> None:
    # The server holds one store open; an administrator's CLI opens another and changes accounts.
    with AccountStore(store_path) as server, AccountStore(store_path) as admin:
        assert server.get("alice") is None
        admin.add_user("alice", nt_hash("pw"))
        assert server.get("alice") == admin.get("alice")
        admin.set_password("alice", "changed")
        assert server.get("ALICE").nt_hash == nt_hash("changed")  # type: ignore[union-attr]
        admin.delete_user("alice")
        assert server.get("alice") is None


def test_concurrent_writers_from_two_connections(store_path: Path) -> None:
    AccountStore(store_path).close()
    errors: list[BaseException] = []

    def writer(prefix: str) -> None:
        try:
            with AccountStore(store_path) as s:
                for i in range(40):
                    s.add_user(f"{prefix}{i}", nt_hash(str(i)))
                    assert s.get(f"{prefix}{i}") is not None
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(p,)) for p in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with AccountStore(store_path) as s:
        assert len(s.list_users()) == 80


def test_one_store_shared_between_threads(store: AccountStore) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(25):
                store.add_user(f"t{n}_{i}", nt_hash("x"))
                store.get(f"T{n}_{i}")
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(store.list_users()) == 100
