"""Alert events from the audit stream: the document, the triggers, RFC 5424, and a syslog output that never
blocks (a bounded queue, drops counted) whatever its collector does."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from netsession.decoy.alerts import (
    AlertSink,
    SyslogOutput,
    alert_document,
    parse_alert_on,
    parse_syslog_target,
    rfc5424,
)
from netsession.server.audit import AuditTrail, LogonEvent, SrvsvcCallEvent


def call(
    operation: str = "NetrSessionEnum", *, admin: bool = True, decoys: int = 0, **kw: object
) -> SrvsvcCallEvent:
    fields: dict[str, object] = {
        "time": 1_800_000_000.25, "client_address": "10.0.0.5", "caller": "bob", "operation": operation,
        "opnum": 12 if operation == "NetrSessionEnum" else 13, "level": 10, "status": "NERR_Success",
        "result": "NERR_Success entries=3/3", "entries": 3, "total_entries": 3, "listener": "127.0.0.1:4445",
        "extra": {
            "caller_domain": "CORP", "workstation": "WS-7", "client_port": 50123, "caller_admin": admin,
            "decoy_rows": decoys, "personality": "windows", "client_user": "bob", "client_domain": "CORP",
        },
    }
    fields.update(kw)
    return SrvsvcCallEvent(**fields)  # type: ignore[arg-type]


def test_alert_document_has_the_callers_identity_in_ecs_names() -> None:
    doc = alert_document(call(client_name="\\\\WS01", user_name=None), frozenset({"enum"}), "FS1")
    assert doc["@timestamp"] == "2027-01-15T08:00:00.250000+00:00"
    assert doc["user"] == {"name": "bob", "domain": "CORP"}
    assert doc["source"] == {"ip": "10.0.0.5", "port": 50123, "domain": "WS-7"}
    assert doc["server"] == {"address": "127.0.0.1", "port": 4445}
    assert doc["event"]["action"] == "NetrSessionEnum" and doc["event"]["outcome"] == "success"
    ns = doc["netsession"]
    assert (ns["level"], ns["entries"], ns["qualifiers"]) == (10, 3, {"client": "\\\\WS01", "user": None})
    assert ns["ntlm"]["workstation"] == "WS-7" and ns["personality"] == "windows"
    assert doc["observer"]["name"] == "FS1"
    json.dumps(doc)


@pytest.mark.parametrize(
    ("event", "alert_on", "kind", "reason"),
    [
        (call(), frozenset({"enum"}), "alert", "enum"),
        (call(), frozenset({"non-admin", "decoy"}), "event", None),
        (call(admin=False), frozenset({"non-admin"}), "alert", "non-admin"),
        (call(decoys=2), frozenset({"decoy"}), "alert", "decoy"),
        (call("NetrSessionDel", decoys=1, level=None), frozenset({"decoy"}), "event", None),
        (call("NetrSessionDel", decoys=1, level=None), frozenset({"decoy-delete"}), "alert", "decoy-delete"),
        (call("NetrSessionDel", decoys=0, level=None), frozenset({"decoy-delete", "enum"}), "event", None),
    ],
)
def test_alert_on_chooses_what_raises_severity(
    event: SrvsvcCallEvent, alert_on: frozenset[str], kind: str, reason: str | None
) -> None:
    doc = alert_document(event, alert_on)
    assert doc["event"]["kind"] == kind and doc["event"]["reason"] == reason
    assert doc["event"]["severity"] == (73 if kind == "alert" else 21)


def test_alert_on_and_syslog_targets_are_checked() -> None:
    assert parse_alert_on("enum, decoy") == {"enum", "decoy"}
    with pytest.raises(ValueError, match="unknown alert trigger 'always'"):
        parse_alert_on("enum,always")
    assert parse_syslog_target("unix:") == ("unix", "/dev/log")
    assert parse_syslog_target("udp://127.0.0.1:514") == ("udp", ("127.0.0.1", 514))
    assert parse_syslog_target("tcp://[::1]:6514") == ("tcp", ("::1", 6514))
    for bad in ("syslog.example", "udp://host", "tcp://:514", "http://x:1"):
        with pytest.raises(ValueError):
            parse_syslog_target(bad)


def test_rfc5424_message_layout() -> None:
    doc = alert_document(call(decoys=1, caller='a"b]'), frozenset({"decoy"}))
    message = rfc5424(doc, "fs1")
    head, _, body = message.partition(b"\xef\xbb\xbf")
    text = head.decode()
    assert text.startswith("<132>1 2027-01-15T08:00:00.250000+00:00 fs1 netsession ")  # local0.warning
    assert " NetrSessionEnum [netsession@32473 kind=\"alert\" " in text
    assert 'user="a\\"b\\]"' in text and 'decoy="1"' in text and 'srcport="50123"' in text
    assert json.loads(body)["netsession"]["decoy"]["rows"] == 1
    plain = rfc5424(alert_document(call(), frozenset()), "fs1")
    assert plain.startswith(b"<134>1 ")  # local0.info


def test_alert_sink_takes_enumerations_and_deletions_only() -> None:
    sent: list[dict[str, object]] = []

    class Output:
        def send(self, doc: dict[str, object]) -> None:
            sent.append(doc)

        async def start(self) -> None: ...

        async def stop(self) -> None: ...

    trail = AuditTrail([AlertSink([Output()])])
    trail.emit(call())
    trail.emit(call("NetrSessionDel", level=None))
    trail.emit(call("NetrServerGetInfo"))
    trail.emit(LogonEvent(client_address="10.0.0.5", success=True, status="STATUS_SUCCESS"))
    assert [d["event"]["action"] for d in sent] == ["NetrSessionEnum", "NetrSessionDel"]  # type: ignore[index]


def test_syslog_output_never_blocks_and_counts_drops_without_a_collector() -> None:
    # A TCP port nobody listens on: every connect fails; the queue fills to its limit, then drops.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dropped: list[int] = []

    async def main() -> SyslogOutput:
        out = SyslogOutput(f"tcp://127.0.0.1:{port}", queue_limit=50, on_drop=lambda: dropped.append(1))
        await out.start()
        doc = alert_document(call(), frozenset())
        for _ in range(1000):
            out.send(doc)  # returns at once, whatever the collector
        await asyncio.sleep(0)
        await out.stop()
        return out

    out = asyncio.run(main())
    assert len(out.queue) == 50 and out.dropped == 950 == len(dropped) and out.sent == 0


def test_syslog_output_delivers_over_udp_and_tcp() -> None:
    async def main() -> tuple[list[bytes], list[bytes]]:
        loop = asyncio.get_running_loop()
        udp_got: list[bytes] = []

        class Udp(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                udp_got.append(data)

        udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", 0))
        udp_port = udp.get_extra_info("sockname")[1]
        tcp_got: list[bytes] = []
        done = asyncio.Event()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while len(tcp_got) < 3:
                length = int((await reader.readuntil(b" "))[:-1])
                tcp_got.append(await reader.readexactly(length))  # RFC 6587 octet counting
            done.set()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        tcp_port = server.sockets[0].getsockname()[1]
        outs = [SyslogOutput(f"udp://127.0.0.1:{udp_port}"), SyslogOutput(f"tcp://127.0.0.1:{tcp_port}")]
        for out in outs:
            await out.start()
        for i in range(3):
            for out in outs:
                out.send(alert_document(call(entries=i), frozenset()))
        await asyncio.wait_for(done.wait(), 10)
        while len(udp_got) < 3:
            await asyncio.sleep(0.01)
        for out in outs:
            await out.stop()
        udp.close()
        server.close()
        return udp_got, tcp_got

    udp_got, tcp_got = asyncio.run(main())
    for got in (udp_got, tcp_got):
        entries = [json.loads(m.partition(b"\xef\xbb\xbf")[2])["netsession"]["entries"] for m in got]
        assert entries == [0, 1, 2]
