"""What can happen to the database under a running process: the SQLite file, or the
PostgreSQL schema that holds feedsvc's tables. The serving workers stop reading and say
why; the leader repairs what it can (feedsvc.leader)."""

from __future__ import annotations

from enum import StrEnum


class StoreProblem(StrEnum):
    """The value reads as the end of a sentence that starts with the database's name."""

    DELETED = "was deleted"
    REPLACED = "was replaced"
    CORRUPT = "is corrupt"
    UNREADABLE = "cannot be read"
    # PostgreSQL: the schema its search_path names was dropped (none to create tables in),
    # or it is there and feedsvc's tables are not (dropped with everything in them).
    SCHEMA_DROPPED = "has no schema: the one its search_path names does not exist"
    EMPTIED = "has lost its tables"
