"""The fleet's history database (SQLite by default, PostgreSQL on request): see :mod:`netsession.store.db`."""

from netsession.store.db import Event, Store, StoreError, open_store
from netsession.store.schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "Event", "Store", "StoreError", "open_store"]
