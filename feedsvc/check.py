"""`feedsvc check`: parse every seed file exactly as a scan would, write nothing, report all."""

from __future__ import annotations

from dataclasses import dataclass, field

from feedsvc.config import Settings
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


def check_seeds(settings: Settings) -> CheckResult:
    check_seeds_dir(settings.seeds)
    result = CheckResult()
    owners: dict[str, str] = {}
    for seed in walk_seeds(settings.seeds):
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
        owner = owners.setdefault(parsed.entry.id, shown)
        if owner != shown:
            result.errors.append((shown, f"id {parsed.entry.id} is already used by {owner}"))
            continue
        result.ok += 1
    return result
