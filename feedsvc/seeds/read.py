"""A seed file's bytes, read beneath the seeds directory against concurrent writes, and
their text (UTF-8, UTF-16 with a BOM, or GB18030 when certain)."""

from __future__ import annotations

import codecs
import errno
import hashlib
import os
import re
import stat

from feedsvc.seeds.discover import SeedFile, display_path, inside
from feedsvc.seeds.errors import FileChanging, SeedError

# Opening beneath the seeds directory: no name on the way may be a symlink (any more).
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# The Han ideographs of the Basic Multilingual Plane (CJK Extension A and Unified Ideographs:
# every code point assigned, letters all) and CJK and full-width punctuation.
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]")
_CJK_PUNCTUATION = re.compile("[\u3000-\u303f\uff00-\uffef]")


def _open_beneath(seed: SeedFile) -> int:
    """A descriptor on the seed file that cannot be outside the seeds directory, whatever
    its path became since the walk (a symlink swapped in for the file or a directory on the
    way). The path is resolved (symlinks inside the seeds directory are followed, as by the
    walk), then the resolved path is opened one name at a time from the seeds directory,
    with O_NOFOLLOW: a name that has become a symlink meanwhile fails the open (ELOOP or
    ENOTDIR). Raises FileChanging when the path leads outside now."""
    real_root = os.path.realpath(seed.root)
    real = os.path.realpath(seed.abspath)
    if real == real_root or not inside(real_root, real):
        raise FileChanging(seed.rel)
    *dirs, name = os.path.relpath(real, real_root).split(os.sep)
    fd = os.open(real_root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in dirs:
            parent, fd = fd, os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(parent)
        return os.open(name, _FILE_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)


def read_seed(seed: SeedFile, max_bytes: int) -> bytes:
    """The file's bytes, refusing huge files unread and noticing writes in progress. It is
    opened beneath the seeds directory at every read, not only checked at the walk: a file
    swapped for a symlink out of it since is never opened (``_open_beneath``). A name that
    is not UTF-8 is refused unread: no entry can come of it, and any event for such a name,
    an open included, makes watchfiles fail (feedsvc.events)."""
    if seed.key != seed.rel:
        raise SeedError(seed.key, "file name is not valid UTF-8")
    if seed.size > max_bytes:
        raise SeedError(
            display_path(seed.rel), f"file is {seed.size} bytes, over max_file_bytes ({max_bytes})"
        )
    try:
        fd = _open_beneath(seed)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # a symlink swapped in meanwhile
            raise FileChanging(seed.rel) from None
        raise SeedError(display_path(seed.rel), f"cannot open: {exc.strerror}") from None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise SeedError(display_path(seed.rel), "not a regular file")
        with os.fdopen(os.dup(fd), "rb") as handle:
            # one byte past what the file holds, or may hold: a read of n bytes sets aside n
            data = handle.read(min(max_bytes, before.st_size) + 1)
        after = os.fstat(fd)
    except OSError as exc:
        raise SeedError(display_path(seed.rel), f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise SeedError(display_path(seed.rel), f"file is over max_file_bytes ({max_bytes})")
    unchanged = (before.st_mtime_ns, before.st_size) == (after.st_mtime_ns, after.st_size)
    if not unchanged or (after.st_mtime_ns, after.st_size) != (seed.mtime_ns, seed.size):
        raise FileChanging(seed.rel)
    if len(data) != after.st_size:
        raise FileChanging(seed.rel)
    return data


def _looks_like_gb18030(text: str) -> bool:
    """True when GB18030-decoded text is almost surely Chinese, not bytes that happened to
    decode. The characters are counted by single-class regexes, in C: a file is megabytes."""
    wide = _NON_ASCII.subn("", text)[1]
    if not wide:
        return False
    han = _HAN.subn("", text)[1]
    punct = _CJK_PUNCTUATION.subn("", text)[1]
    return (han + punct) / wide >= 0.9 and han >= 2


def decode(data: bytes, rel: str) -> str:
    """Text of a seed file: UTF-8 (BOM optional), UTF-16 with a BOM, or GB18030 when certain."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise SeedError(rel, "invalid UTF-16 text") from None
    if b"\x00" in data:
        raise SeedError(rel, "binary file (contains NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        utf8_error = exc
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        text = ""
    if text and _looks_like_gb18030(text):
        return text
    raise SeedError(
        rel, f"not UTF-8 text (invalid byte at offset {utf8_error.start}) and not certainly GB18030"
    )


def content_hash(data: bytes) -> str:
    """What identifies a file's bytes: a re-read file with the same hash changed nothing."""
    return hashlib.sha256(data).hexdigest()
