"""How many bytes of a DCE/RPC answer are still due at least, from the fragments seen so far.

A long answer comes as many fragments (C706 §12.6.3.7, at most max_recv_frag octets each), and over a
named pipe each fragment is a message that one READ returns. Reading them one round trip at a time is
what makes a 10,000-session answer in 4,280-octet fragments slow; asking for several at once is safe only
for bytes certainly coming, since a READ on an empty pipe waits (or fails). This tracker gives that
lower bound: the rest of the fragment in progress, and — while the last fragment has not begun — what
the first response fragment's ``alloc_hint`` (the whole stub's length, MS-RPCE §2.2.2.6) says is left,
with a 24-octet header for each fragment it needs at least. ``alloc_hint`` is only used to *ask*; the
octets that arrive are what counts, and a wrong hint costs at most a READ that waits until the
deadline (the pipe is then dropped).
"""

from __future__ import annotations

import struct
from typing import Final

COMMON_HEADER: Final = 16  # C706 §12.6.3.1: through call_id
RESPONSE_HEADER: Final = 24  # + alloc_hint, p_cont_id, cancel_count, reserved
PTYPE_RESPONSE: Final = 2
PFC_FIRST_FRAG: Final = 0x01
PFC_LAST_FRAG: Final = 0x02
_AUTH_VERIFIER_HEADER: Final = 8  # C706 §13.2.6.1 sec_trailer


class FragmentTracker:
    """Feed the answer's bytes as they arrive; :meth:`due` is a lower bound on the bytes still to come."""

    def __init__(self, max_frag: int) -> None:
        self.max_frag = max(max_frag, RESPONSE_HEADER + 1)
        self._head = bytearray()  # the current fragment's header, until RESPONSE_HEADER octets are in
        self._left = 0  # octets of the current fragment still to come (once its header is known)
        self._last = False  # the current fragment is the last one
        self._done = False
        self._stub_total: int | None = None
        self._stub_seen = 0

    def feed(self, data: bytes) -> None:
        at = 0
        while at < len(data) and not self._done:
            if self._left:
                n = min(self._left, len(data) - at)
                self._left -= n
                at += n
                if not self._left and self._last:
                    self._done = True
                continue
            need = RESPONSE_HEADER - len(self._head)
            self._head += data[at : at + need]
            at += min(need, len(data) - at)
            if len(self._head) < RESPONSE_HEADER:
                return
            self._start_fragment(bytes(self._head))
            self._head.clear()

    def _start_fragment(self, head: bytes) -> None:
        ptype, flags = head[2], head[3]
        frag_length, auth_length = struct.unpack_from("<HH", head, 8)
        self._last = bool(flags & PFC_LAST_FRAG) or ptype != PTYPE_RESPONSE
        self._left = max(frag_length - RESPONSE_HEADER, 0)
        if ptype == PTYPE_RESPONSE:
            if flags & PFC_FIRST_FRAG:
                (self._stub_total,) = struct.unpack_from("<I", head, 16)
            trailer = auth_length + _AUTH_VERIFIER_HEADER if auth_length else 0
            self._stub_seen += max(frag_length - RESPONSE_HEADER - trailer, 0)
        if not self._left and self._last:
            self._done = True

    def due(self) -> int:
        """Octets certainly still to come for this answer (0 once the last fragment is complete)."""
        if self._done:
            return 0
        stub_left = 0 if self._stub_total is None else max(self._stub_total - self._stub_seen, 0)
        if self._left == 0:
            # Between fragments or inside a header: the rest of that header, and the stub not yet framed.
            return RESPONSE_HEADER - len(self._head) + stub_left
        if self._last:
            return self._left
        # More fragments follow this one: each carries at most max_frag - 24 octets of stub.
        per = self.max_frag - RESPONSE_HEADER
        return self._left + stub_left + max(1, -(-stub_left // per)) * RESPONSE_HEADER


__all__ = ["FragmentTracker"]
