"""The store's own errors: the only ones it lets out (the driver's error is the cause)."""

from __future__ import annotations

from sqlalchemy.engine import ExceptionContext

# SQLite messages that mean the file itself is damaged or unwritable, not that one statement
# failed: SQLite says what is wrong only in its messages.
_READ_ONLY_MARKERS = ("readonly", "read-only", "unable to open database file")
_CORRUPT_MARKERS = ("malformed", "not a database", "file is encrypted", "database disk image")


class StorageError(Exception):
    """A database operation failed. The only error the store lets out: the driver's error
    is chained as its cause, and the message is the driver's own."""


class ReadOnlyStorage(StorageError):
    """The SQLite file or its directory cannot be written."""


class CorruptStorage(StorageError):
    """The SQLite file is damaged: it can only be rebuilt from the seeds."""


def storage_error(context: ExceptionContext) -> None:
    """SQLAlchemy's handle_error hook: raise the store's own error in place of the
    driver's, classified once, here (SQLite says what is wrong only in its messages)."""
    original = context.original_exception
    message = str(original).lower()
    kind = StorageError
    if any(marker in message for marker in _READ_ONLY_MARKERS):
        kind = ReadOnlyStorage
    elif any(marker in message for marker in _CORRUPT_MARKERS):
        kind = CorruptStorage
    raise kind(str(original)) from context.sqlalchemy_exception or original


class NewerSchema(StorageError):
    """The database was written by a newer feedsvc (a higher schema version): this process
    neither rebuilds it nor writes to it. The newer version wins; the older steps down."""
