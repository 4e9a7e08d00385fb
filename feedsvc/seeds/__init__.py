"""Seed files: finding them (``discover``), reading them against concurrent writes
(``read``), their front matter (``frontmatter``) and their fields made an entry
(``normalize``). One file gives one ``Loaded``: what a scan and a check both act on."""

from __future__ import annotations

from dataclasses import dataclass

from feedsvc.config import Settings
from feedsvc.seeds.discover import (
    MAX_DIR_DEPTH,
    SeedFile,
    SeedListing,
    display_path,
    is_seed_name,
    stat_seeds,
    walk_seeds,
)
from feedsvc.seeds.errors import FileChanging, SeedError
from feedsvc.seeds.frontmatter import MAX_YAML_NODES
from feedsvc.seeds.normalize import Parsed, parse_seed
from feedsvc.seeds.read import content_hash, read_seed

__all__ = [
    "MAX_DIR_DEPTH",
    "MAX_YAML_NODES",
    "Changing",
    "FileChanging",
    "Fresh",
    "Loaded",
    "Parsed",
    "Refused",
    "SeedError",
    "SeedFile",
    "SeedListing",
    "Unchanged",
    "content_hash",
    "display_path",
    "is_seed_name",
    "load_seed",
    "parse_seed",
    "read_seed",
    "stat_seeds",
    "walk_seeds",
]

# What reading one file gave a scan (picklable: it may come from another process).


@dataclass(frozen=True)
class Changing:
    """The file is being written: it is read again at the next scan, nothing changes now."""


@dataclass(frozen=True)
class Refused:
    """The file cannot be published, for ``reason`` (``path`` as the message names it);
    ``digest`` is its bytes' hash, '' when they could not be read."""

    digest: str
    path: str
    reason: str


@dataclass(frozen=True)
class Unchanged:
    """The bytes hash to what the store holds: nothing to parse."""

    digest: str


@dataclass(frozen=True)
class Fresh:
    """The file was read and parsed."""

    digest: str
    parsed: Parsed


Loaded = Changing | Refused | Unchanged | Fresh


def load_seed(seed: SeedFile, known_hash: str | None, settings: Settings) -> Loaded:
    """Read one seed file and parse it as the settings say, unless its bytes hash to
    ``known_hash`` (what the store holds): what a scan and a check both do."""
    try:
        data = read_seed(seed, settings.max_file_bytes)
    except FileChanging:
        return Changing()
    except SeedError as exc:
        return Refused("", exc.path, exc.reason)
    digest = content_hash(data)
    if digest == known_hash:
        return Unchanged(digest)
    try:
        parsed = parse_seed(
            data,
            seed.rel,
            settings.public_url,
            settings.tz,
            placeholder_hosts=settings.placeholder_image_hosts,
        )
    except SeedError as exc:
        return Refused(digest, exc.path, exc.reason)
    return Fresh(digest, parsed)
