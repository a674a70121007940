"""BloodHound CE OpenGraph output: one ``HasSession`` edge from each Computer to each User logged on to it.

The file is ``{"metadata": {"source_kind": ...}, "graph": {"nodes": [], "edges": [...]}}`` (BloodHound's
"Data Payload Structure"); each edge names its ends by name (``match_by: "name"``) with a kind filter,
so BloodHound attaches it to the Computer and User nodes SharpHound or any collector already made::

    {"kind": "HasSession",
     "start": {"match_by": "name", "value": "FS1.CORP.LOCAL", "kind": "Computer"},
     "end": {"match_by": "name", "value": "ALICE@CORP.LOCAL", "kind": "User"},
     "properties": {"client_address": "10.0.0.5", "client_name": "ws5.corp.local", ...}}

Names are written the way BloodHound writes AD objects: upper case, users as ``USER@DOMAIN`` when a
domain is known (``--domain``, else the host's DNS suffix), computers by their DNS name (the host as
given when it is a name). Machine accounts and anonymous sessions make no edge (a computer account's
session is not a user's, an anonymous one has nobody to point at); they stay in the jsonl output.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any, Final, TextIO

from netsession.fleet.results import HostResult, Session

EDGE_KIND: Final = "HasSession"
SOURCE_KIND: Final = "netsession"


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def computer_name(result: HostResult) -> str:
    return result.host.upper()


def user_name(session: Session, result: HostResult, domain: str | None) -> str | None:
    user = session.user_name
    if not user or session.machine_account:
        return None
    if "\\" in user:
        dom, user = user.split("\\", 1)
        return f"{user}@{dom}".upper()
    if "@" in user:
        return user.upper()
    if domain is None and not _is_address(result.host) and "." in result.host:
        domain = result.host.split(".", 1)[1]
    return f"{user}@{domain}".upper() if domain else user.upper()


class OpenGraphOutput:
    """Collects HasSession edges (deduplicated per computer and user) and writes the file at the end."""

    def __init__(self, stream: TextIO, *, domain: str | None = None) -> None:
        self.stream = stream
        self.domain = domain
        self._edges: dict[tuple[str, str], dict[str, Any]] = {}

    def write(self, result: HostResult) -> None:
        computer = computer_name(result)
        for s in result.sessions:
            user = user_name(s, result, self.domain)
            if user is None:
                continue
            key = (computer, user)
            if key in self._edges:
                continue
            props: dict[str, Any] = {"source": SOURCE_KIND, "level": result.level}
            for k in ("client_address", "client_name", "active_time", "idle_time"):
                value = getattr(s, k)
                if value is not None:
                    props[k] = value
            self._edges[key] = {
                "kind": EDGE_KIND,
                "start": {"match_by": "name", "value": computer, "kind": "Computer"},
                "end": {"match_by": "name", "value": user, "kind": "User"},
                "properties": props,
            }

    def document(self) -> dict[str, Any]:
        return {
            "metadata": {"source_kind": SOURCE_KIND},
            "graph": {"nodes": [], "edges": list(self._edges.values())},
        }

    def close(self) -> None:
        json.dump(self.document(), self.stream, ensure_ascii=False, indent=1)
        self.stream.write("\n")
        self.stream.flush()
