"""`feedsvc check`: parse every seed file exactly as a scan would, write nothing, report all."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from feedsvc.config import Settings
from feedsvc.model import id_keeper
from feedsvc.scan import check_seeds_dir
from feedsvc.seeds import display_path, load_seed, walk_seeds


@dataclass
class CheckResult:
    files: int = 0
    ok: int = 0
    drafts: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One line per problem, `path: reason`, errors first, each group sorted by path."""
        return [f"{path}: {reason}" for path, reason in sorted(self.errors)] + [
            f"{path}: warning: {reason}" for path, reason in sorted(self.warnings)
        ]


def check_seeds(
    settings: Settings, served: Callable[[Sequence[str]], Mapping[str, str]] | None = None
) -> CheckResult:
    """``served(ids)``: which file serves each of these ids now (the store's answer, when
    there is a database), so a clash blames the file a scan would."""
    check_seeds_dir(settings.seeds)
    result = CheckResult()
    claimants: dict[str, list[str]] = {}
    shown_as: dict[str, str] = {}
    listing = walk_seeds(settings.seeds)
    result.errors.extend((problem.key, problem.reason) for problem in listing.unlisted)
    for seed in listing.files:
        result.files += 1
        shown = display_path(seed.rel)
        loaded = load_seed(seed, None, settings)
        if loaded.error is not None:
            result.errors.append(loaded.error)
            continue
        if loaded.parsed is None:  # changing while read
            result.warnings.append((shown, "changed while being read; check again"))
            continue
        parsed = loaded.parsed
        result.warnings.extend((shown, warning) for warning in parsed.warnings)
        if parsed.entry is None:
            result.drafts += 1
            continue
        claimants.setdefault(parsed.entry.id, []).append(seed.rel)
        shown_as[seed.rel] = shown
    shared = {entry_id: rels for entry_id, rels in claimants.items() if len(rels) > 1}
    owners = served(sorted(shared)) if served is not None and shared else {}
    for entry_id, rels in claimants.items():
        keeper = id_keeper(rels, owners.get(entry_id))
        for rel in rels:
            if rel == keeper:
                result.ok += 1
            else:
                reason = f"id {entry_id} is already used by {shown_as[keeper]}"
                result.errors.append((shown_as[rel], reason))
    return result
