"""``netsession samba-bridge``'s command-line manners: a mistake is one line and exit status 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from netsession.cli import main

needs_testparm = pytest.mark.skipif(shutil.which("testparm") is None, reason="no testparm (samba)")


def _conf(tmp_path: Path, extra: str = "") -> Path:
    conf = tmp_path / "smb.conf"
    conf.write_text(
        f"[global]\n    lock directory = {tmp_path}/lock\n    ncalrpc dir = {tmp_path}/ncalrpc\n{extra}"
    )
    return conf


def test_missing_smb_conf_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["samba-bridge", "--smb-conf", str(tmp_path / "nope.conf")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]


@needs_testparm
def test_no_socket_dir_anywhere_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["samba-bridge", "--smb-conf", str(_conf(tmp_path))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "external_rpc_pipe:socket_dir" in err[-1]


@needs_testparm
def test_socket_dir_that_is_the_ncalrpc_dir_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = _conf(tmp_path, f"    external_rpc_pipe:socket_dir = {tmp_path}/ncalrpc\n")
    assert main(["samba-bridge", "--smb-conf", str(conf)]) == 2
    assert "samba-dcerpcd empties" in capsys.readouterr().err
