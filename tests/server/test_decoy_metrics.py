"""`serve --metrics`: the Prometheus endpoint scraped over HTTP while real clients use the server."""

from __future__ import annotations

import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from impacket.dcerpc.v5 import srvs, transport
from impacket.smbconnection import SMBConnection
from netsession_server import (
    ADMIN,
    ALICE,
    LOOPBACK,
    REAL_COMMAND,
    NetsessionServerProcess,
    free_port,
    wait_until,
)
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.interop

MAX_CONNECTIONS = 4
DECOYS = 25


class MetricsServer(NetsessionServerProcess):
    metrics_port: int = 0

    def reset(self) -> None:
        self.close_clients()
        wait_until(lambda: len(self.sessions()) == DECOYS, what="only decoys left")

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{self.metrics_port}/metrics", timeout=10) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain")
            text = r.read().decode()
        out = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsServer]:
    port = free_port()
    server = MetricsServer(tmp_path_factory.mktemp("metrics"), (
        "--metrics", f"{LOOPBACK}:{port}", "--sessions", f"random:{DECOYS}", "--sessions-seed", "1",
        "--max-connections", str(MAX_CONNECTIONS),
    ))
    server.metrics_port = port
    server.start()
    yield server
    server.stop()


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_connections_sessions_logons_bytes(metered: MetricsServer) -> None:
    metered.reset()
    listener = f"{LOOPBACK}:{metered.port}"
    before = metered.scrape()
    assert value(before, "netsession_sessions", kind="synthetic") == DECOYS
    assert value(before, "netsession_sessions", kind="real") == 0
    metered.hold_smbclient(ALICE)
    smb = SMBConnection(LOOPBACK, LOOPBACK, sess_port=metered.port, timeout=10)
    smb.login(ADMIN.name, ADMIN.password)
    try:
        rpc = transport.SMBTransport(LOOPBACK, filename=r"\srvsvc", smb_connection=smb)
        dce = rpc.get_dce_rpc()
        dce.connect()
        dce.bind(srvs.MSRPC_UUID_SRVS)
        srvs.hNetrSessionEnum(dce, srvs.NULL, srvs.NULL, 502)
        during = metered.scrape()
    finally:
        smb.close()
    calls = value(
        during, "netsession_srvsvc_calls_total",
        operation="NetrSessionEnum", level="502", result="NERR_Success", listener=listener,
    )
    assert calls == 1
    assert value(during, "netsession_sessions", kind="real") == 2
    assert value(during, "netsession_sessions", kind="synthetic") == DECOYS
    assert value(during, "netsession_connections_open", listener=listener) == 2
    opened = value(during, "netsession_connections_total", listener=listener)
    assert opened - value(before, "netsession_connections_total", listener=listener) == 2
    logons = value(during, "netsession_logons_total", result="success")
    assert logons - value(before, "netsession_logons_total", result="success") == 2
    received = value(during, "netsession_bytes_received_total", listener=listener)
    sent = value(during, "netsession_bytes_sent_total", listener=listener)
    # The level-502 answer alone carries DECOYS + 2 records: more than 100 bytes each.
    assert sent - value(before, "netsession_bytes_sent_total", listener=listener) > (DECOYS + 2) * 100
    assert received > value(before, "netsession_bytes_received_total", listener=listener)
    metered.reset()
    after = metered.scrape()
    assert value(after, "netsession_connections_open", listener=listener) == 0
    assert value(after, "netsession_sessions", kind="real") == 0


def test_metrics_count_rejected_connections_and_limits(metered: MetricsServer) -> None:
    metered.reset()
    listener = f"{LOOPBACK}:{metered.port}"
    before = metered.scrape()
    held = [socket.create_connection((LOOPBACK, metered.port), timeout=5) for _ in range(MAX_CONNECTIONS)]
    try:
        wait_until(
            lambda: value(metered.scrape(), "netsession_connections_open", listener=listener)
            == MAX_CONNECTIONS,
            what="the held connections",
        )
        extra = socket.create_connection((LOOPBACK, metered.port), timeout=5)
        assert extra.recv(1) == b""  # refused: closed at once
        extra.close()
        rejected = "netsession_connections_rejected_total"
        was = value(before, rejected, listener=listener, reason="max_connections")
        after = wait_until(
            lambda: (s := metered.scrape())
            and value(s, rejected, listener=listener, reason="max_connections") > was
            and s,
            what="the refusal counted",
        )
        assert value(after, "netsession_limits_hit_total", limit="max_connections") >= 1
    finally:
        for s in held:
            s.close()


def test_metrics_endpoint_answers_only_get_metrics(metered: MetricsServer) -> None:
    base = f"http://{LOOPBACK}:{metered.metrics_port}"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(base + "/nothing", timeout=10)
    assert info.value.code == 404
    with socket.create_connection((LOOPBACK, metered.metrics_port), timeout=5) as s:
        s.sendall(b"X" * 10_000)  # a head that never ends within the limit
        assert s.recv(100) == b""


def test_bad_metrics_address_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [*REAL_COMMAND, "serve", "--state-dir", str(tmp_path), "--listen", f"{LOOPBACK}:{free_port()}",
         "--metrics", "nowhere"], capture_output=True, text=True, timeout=30, check=False,
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("netsession: --metrics:")


def test_metrics_count_failed_logons(metered: MetricsServer) -> None:
    before = value(metered.scrape(), "netsession_logons_total", result="failure")
    smb = SMBConnection(LOOPBACK, LOOPBACK, sess_port=metered.port, timeout=30)
    with pytest.raises(Exception, match="LOGON_FAILURE"):
        smb.login(ALICE.name, "not-her-password")
    smb.close()
    after = wait_until(
        lambda: value(metered.scrape(), "netsession_logons_total", result="failure") > before and True,
        what="the failed logon counted",
    )
    assert after
