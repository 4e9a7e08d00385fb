"""Byte strings kept as one compressed value: an entry's parts, and an entry with its text.

An entry's parts in every feed format share most of their bytes (the same content, escaped
alike), so one zlib stream of them all is a third of their sizes compressed apart; and a
part is read back by inflating only as far as its end (the parts most read come first)."""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Sequence

import zstandard

from feedsvc.model import Entry

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


# What entries.data holds: the entry's searchable text (feedsvc.store.search), then its
# canonical JSON (Entry.to_json), in one zstd frame after the text's length. The text is
# mostly the body's words again, so the pair compresses to a third of its size (each alone:
# three fifths), where the two kept apart uncompressed were more than the seeds. zstd, not
# zlib: a search inflates every candidate it verifies, and zstd inflates these three times
# as fast for the same size.
_LEVEL = 6
_CODECS = threading.local()  # (a zstd context is not to be shared between threads)


def _codecs() -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
    if not hasattr(_CODECS, "pair"):
        _CODECS.pair = (zstandard.ZstdCompressor(level=_LEVEL), zstandard.ZstdDecompressor())
    pair: tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor] = _CODECS.pair
    return pair


def pack_entry(data: str, text: str) -> bytes:
    folded = text.encode()
    return _LENGTH.pack(len(folded)) + _codecs()[0].compress(folded + data.encode())


def _unpack_entry(packed: bytes) -> tuple[bytes, bytes]:
    (length,) = _LENGTH.unpack_from(packed)
    inflated = _codecs()[1].decompress(packed[_LENGTH.size :])
    return inflated[:length], inflated[length:]


def json_of(packed: bytes) -> str:
    return _unpack_entry(packed)[1].decode()


def entry_of(packed: bytes) -> Entry:
    return Entry.from_json(json_of(packed))


def text_bytes(packed: bytes) -> bytes:
    return _unpack_entry(packed)[0]


def text_of(packed: bytes) -> str:
    return text_bytes(packed).decode()
