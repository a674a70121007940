"""One server per state directory (issue 9): the lock, its one-line refusal, and never removing a socket
another server made."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from netsession.server.statelock import StateDirLocked, StateLock, remove_own_socket, socket_identity


def test_a_second_lock_on_the_same_directory_is_refused_naming_the_holder(tmp_path: Path) -> None:
    with StateLock(tmp_path, "listening on 127.0.0.1:4445"):
        with pytest.raises(StateDirLocked) as refused:
            StateLock(tmp_path, "listening on 127.0.0.1:4446").acquire()
    message = str(refused.value)
    assert f"pid {os.getpid()}, listening on 127.0.0.1:4445" in message and "\n" not in message
    with StateLock(tmp_path, "again"):  # released: free again
        pass


def test_a_socket_replaced_by_another_server_is_not_removed(tmp_path: Path) -> None:
    path = tmp_path / "srvsvc.sock"
    ours = socket.socket(socket.AF_UNIX)
    ours.bind(str(path))
    identity = socket_identity(path)
    path.unlink()
    theirs = socket.socket(socket.AF_UNIX)
    theirs.bind(str(path))  # another server's, at the same path
    try:
        assert not remove_own_socket(path, identity)
        assert path.exists()
        assert remove_own_socket(path, socket_identity(path))
        assert not path.exists()
    finally:
        ours.close()
        theirs.close()
