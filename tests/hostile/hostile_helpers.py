"""Helpers of the hostile suite (a module of its own: ``conftest`` is a name every test directory has)."""

from __future__ import annotations

from netsession.server.accounts import AccountStore


class CountingStore:
    """An AccountStore that counts lookups: one per password checked (the NTLM AUTHENTICATE leg)."""

    def __init__(self, store: AccountStore) -> None:
        self.store = store
        self.lookups = 0

    def get(self, name: str):  # type: ignore[no-untyped-def]
        self.lookups += 1
        return self.store.get(name)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.store, name)
