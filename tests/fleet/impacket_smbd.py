"""impacket's SimpleSMBServer as a fleet host (a subprocess on a free loopback port): an SMB 2 server
whose srvsvc does not implement NetrSessionEnum and answers it with a fault PDU shorter than C706 allows
(28 octets; a fault PDU has 32) — the real cause of a `protocol-error` verdict."""

from __future__ import annotations

import sys

from impacket import smbserver
from impacket.ntlm import compute_lmhash, compute_nthash


def main(port: int, user: str, password: str, log: str) -> None:
    server = smbserver.SimpleSMBServer(listenAddress="127.0.0.1", listenPort=port)
    server.setSMB2Support(True)
    server.addShare("SHARE", "/nonexistent", "")
    server.addCredential(user, 1000, compute_lmhash(password), compute_nthash(password))
    server.setLogFile(log)
    server.start()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4])
