"""The errors reading a seed file ends in: the file cannot be published (``SeedError``),
or it is being written and is read again at the next scan (``FileChanging``)."""

from __future__ import annotations


class SeedError(Exception):
    """A seed file that cannot be published, with the reason in words a writer can act on."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class FileChanging(Exception):
    """The file changed while it was read: try again at the next scan, publish nothing now."""
