"""Shared pieces of the hostile suite: a NetsessionServer with real accounts in a temporary store, and
in-memory clients on its connections (our own codecs and pyspnego's NTLM, no sockets)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostile_helpers import CountingStore
from smb2_harness import PASSWORDS

from netsession.groups import ADMINISTRATORS, USERS
from netsession.server.accounts import AccountStore, nt_hash


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[CountingStore]:
    store = AccountStore(tmp_path / "accounts.db")
    store.add_user("alice", nt_hash(PASSWORDS["alice"]), (USERS,))
    store.add_user("bob", nt_hash(PASSWORDS["bob"]), (USERS,))
    store.add_user("admin", nt_hash(PASSWORDS["admin"]), (ADMINISTRATORS,))
    yield CountingStore(store)
    store.close()
