"""Just enough of the protobuf wire format to concatenate pre-encoded fields.

xDS responses are built per stream, but their expensive part (the resources)
is identical for every stream. Encoding the few per-stream fields by hand and
splicing in the cached resource bytes means no protobuf object is built per
stream: a push to N streams costs N byte joins, not N serializations.
"""

from __future__ import annotations

_LENGTH_DELIMITED = 2


def varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("varint of a negative number")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def length_delimited(field_number: int, payload: bytes) -> bytes:
    """One length-delimited field (string, bytes or embedded message)."""
    return varint((field_number << 3) | _LENGTH_DELIMITED) + varint(len(payload)) + payload


def string_field(field_number: int, value: str) -> bytes:
    """A proto3 string field; the default (empty) value is omitted, as protobuf does."""
    if not value:
        return b""
    return length_delimited(field_number, value.encode())
