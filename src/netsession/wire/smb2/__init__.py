"""SMB2/3 wire codecs and cryptography, sans-I/O (MS-SMB2).

``header`` (SMB2 header, TRANSFORM_HEADER), ``negotiate`` (NEGOTIATE and its contexts, the SMB1
multi-protocol negotiate), ``messages`` (the other bodies, request/response dispatch), ``compound``
(chains), ``transport`` (Direct TCP framing), ``crypto`` (KDF, preauth hash, signing, encryption),
``constants`` and ``codec`` (:class:`Smb2DecodeError`). The connection state machine lives elsewhere.
"""

from .codec import Smb2DecodeError
from .compound import build_compound, split_compound
from .header import SIGNATURE_OFFSET, SIGNATURE_SIZE, Smb2Header, TransformHeader
from .messages import decode_request, decode_response, encode_message

__all__ = [
    "SIGNATURE_OFFSET",
    "SIGNATURE_SIZE",
    "Smb2DecodeError",
    "Smb2Header",
    "TransformHeader",
    "build_compound",
    "decode_request",
    "decode_response",
    "encode_message",
    "split_compound",
]
