"""The store's own errors: the only ones it lets out for a database that is unavailable,
unwritable or damaged (the driver's error is the cause). A programming error (bad SQL, a
value the database refuses, a broken constraint) is not unavailability: it propagates as
SQLAlchemy raised it, to be logged with its traceback and answered 500."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import ExceptionContext

# SQLite messages that mean the file itself is damaged or unwritable, not that one statement
# failed: SQLite says what is wrong only in its messages.
_READ_ONLY_MARKERS = ("readonly", "read-only", "unable to open database file")
_CORRUPT_MARKERS = (
    "disk image is malformed",
    "malformed database schema",
    "not a database",
    "file is encrypted",
)
# SQLite raises these as OperationalError, yet they are mistakes in a statement or a value
# (FTS5 names its own syntax errors), never a database that is unavailable. ('no such table'
# is not one of them: a SQLite file deleted or replaced under a running process says so.)
_SQLITE_STATEMENT_MARKERS = (
    "syntax error",
    "no such function",
    "unterminated string",
    "unrecognized token",
    "malformed match",
    "fts5:",
    "wrong number of",
    "ambiguous column",
)
# Errors of a statement or of its values, whatever the backend.
_PROGRAMMING = (
    sa_exc.ProgrammingError,
    sa_exc.DataError,
    sa_exc.IntegrityError,
    sa_exc.NotSupportedError,
)
# PostgreSQL's "insufficient privilege" and "no schema has been selected" are
# ProgrammingErrors, but a role without rights or a search_path naming no schema is how a
# database is unusable to this process as deployed, not a bug in it.
_UNAVAILABLE_SQLSTATES = ("42501", "3F000")


class StorageError(Exception):
    """The database is unavailable, unwritable or damaged: the driver's error is chained as
    its cause, and the message is the driver's own."""


class ReadOnlyStorage(StorageError):
    """The SQLite file or its directory cannot be written."""


class CorruptStorage(StorageError):
    """The SQLite file is damaged: it can only be rebuilt from the seeds."""


def is_programming_error(context: ExceptionContext) -> bool:
    """Whether the driver's error is a mistake in a statement or a value (to propagate)
    rather than the database failing (to become a StorageError)."""
    error = context.sqlalchemy_exception
    original = context.original_exception
    if getattr(original, "sqlstate", None) in _UNAVAILABLE_SQLSTATES:
        return False
    if isinstance(error, _PROGRAMMING):
        return True
    if context.dialect is not None and context.dialect.name == "sqlite":
        message = str(original).lower()
        if any(marker in message for marker in (*_READ_ONLY_MARKERS, *_CORRUPT_MARKERS)):
            return False  # the file, not the statement (a damaged schema can say anything)
        return any(marker in message for marker in _SQLITE_STATEMENT_MARKERS)
    return False


def storage_error(context: ExceptionContext) -> None:
    """SQLAlchemy's handle_error hook: raise the store's own error in place of the driver's
    when the database fails, classified once, here; a programming error is left alone."""
    if not context.is_disconnect and is_programming_error(context):
        return
    original = context.original_exception
    message = str(original).lower()
    kind = StorageError
    if any(marker in message for marker in _READ_ONLY_MARKERS):
        kind = ReadOnlyStorage
    elif any(marker in message for marker in _CORRUPT_MARKERS):
        kind = CorruptStorage
    raise kind(str(original)) from context.sqlalchemy_exception or original


class SchemaRefused(StorageError):
    """The database's schema is not one this process serves, and it will not change it: it
    says why in one line (the kinds below) instead of serving or writing."""


class NewerSchema(SchemaRefused):
    """The database was written by a newer feedsvc (a schema revision this one does not
    know): this process neither upgrades it nor writes to it. The newer version wins; the
    older steps down."""


class OldSchema(SchemaRefused):
    """The database is at an older schema revision and this process may not upgrade it
    (`feedsvc serve --no-upgrade`, or a file that cannot be written)."""


class UnknownSchema(SchemaRefused):
    """The database is not in a state any feedsvc leaves: someone else's tables, a version
    table with no revision, a version row no release wrote, or an upgrade that failed on
    tables unlike their recorded revision. Nothing is changed (and nothing emptied)."""
