"""Direct TCP transport framing (MS-SMB2 2.1): a zero byte, a 3-byte big-endian length, the message."""

from __future__ import annotations

from .codec import Smb2DecodeError

DIRECT_TCP_HEADER_SIZE = 4
MAX_STREAM_PROTOCOL_LENGTH = 0xFFFFFF  # what 3 bytes can say


def frame(message: bytes) -> bytes:
    """``message`` with its Direct TCP transport header."""
    if len(message) > MAX_STREAM_PROTOCOL_LENGTH:
        raise ValueError(f"an SMB2 message over Direct TCP is at most {MAX_STREAM_PROTOCOL_LENGTH} bytes")
    return len(message).to_bytes(DIRECT_TCP_HEADER_SIZE, "big") + message


class DirectTcpDeframer:
    """Sans-I/O reassembly: feed bytes as they arrive, get whole messages back.

    ``max_message_size`` bounds what a peer can make us buffer (MS-SMB2 3.3.5.2: a request longer than
    MaxTransactSize + 256, or 68 KiB without multi-credit, ends the connection); a longer length, or a
    first byte other than zero, raises Smb2DecodeError and the connection should be dropped.
    """

    def __init__(self, max_message_size: int = MAX_STREAM_PROTOCOL_LENGTH) -> None:
        self.max_message_size = max_message_size
        self._buffer = bytearray()

    def receive_data(self, data: bytes) -> list[bytes]:
        """Feed ``data``; every whole message now buffered, all checked against the current limit."""
        self.feed(data)
        messages: list[bytes] = []
        while (message := self.next_message()) is not None:
            messages.append(message)
        return messages

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_message(self) -> bytes | None:
        """The next whole message, or None until more bytes arrive. Each is checked against the limit as
        it is then, so a caller that raises the limit after a NEGOTIATE applies the new one to the very
        next message of the same read."""
        if len(self._buffer) < DIRECT_TCP_HEADER_SIZE:
            return None
        if self._buffer[0] != 0:
            raise Smb2DecodeError(f"Direct TCP header: first byte 0x{self._buffer[0]:02X}, must be zero", 0)
        length = int.from_bytes(self._buffer[1:DIRECT_TCP_HEADER_SIZE], "big")
        if length > self.max_message_size:
            raise Smb2DecodeError(f"Direct TCP message of {length} bytes exceeds {self.max_message_size}", 1)
        end = DIRECT_TCP_HEADER_SIZE + length
        if len(self._buffer) < end:
            return None
        message = bytes(self._buffer[DIRECT_TCP_HEADER_SIZE:end])
        del self._buffer[:end]
        return message

    def release(self) -> None:
        """Give back the buffer's memory when it is empty (a bytearray keeps its largest size)."""
        if not self._buffer:
            self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a whole message."""
        return len(self._buffer)
