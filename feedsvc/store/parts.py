"""Several byte strings kept as one compressed value, any one of them read back alone.

An entry's parts in every feed format share most of their bytes (the same content, escaped
alike), so one zlib stream of them all is a third of their sizes compressed apart; and a
part is read back by inflating only as far as its end (the parts most read come first)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

_LENGTH = struct.Struct("<I")


def pack(parts: Sequence[bytes]) -> bytes:
    """The parts' lengths, then one zlib stream of the parts in order."""
    lengths = b"".join(_LENGTH.pack(len(part)) for part in parts)
    return _LENGTH.pack(len(parts)) + lengths + zlib.compress(b"".join(parts), 6)


def unpack(packed: bytes, index: int) -> bytes:
    """Part ``index`` of what ``pack`` packed."""
    (count,) = _LENGTH.unpack_from(packed)
    lengths = [_LENGTH.unpack_from(packed, _LENGTH.size * (1 + i))[0] for i in range(count)]
    start = sum(lengths[:index])
    end = start + lengths[index]
    inflated = zlib.decompressobj().decompress(packed[_LENGTH.size * (1 + count) :], end)
    return inflated[start:end]
