"""`feedsvc check`: parse every seed file exactly as a scan would, write nothing, report all."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from feedsvc.config import Settings
from feedsvc.model import settle_claims
from feedsvc.scan import check_seeds_dir
from feedsvc.seeds import Fresh, Refused, load_seed, walk_seeds


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
    listing = walk_seeds(settings.seeds)
    result.errors.extend((problem.key, problem.reason) for problem in listing.unlisted)
    for seed in listing.files:
        result.files += 1
        match load_seed(seed, None, settings):
            case Refused(path=path, reason=reason):
                result.errors.append((path, reason))
            case Fresh(parsed=parsed):
                result.warnings.extend((seed.key, warning) for warning in parsed.warnings)
                if parsed.entry is None:
                    result.drafts += 1
                else:
                    claimants.setdefault(parsed.entry.id, []).append(seed.key)
            case _:  # changing while read (no bytes are known to be unchanged here)
                result.warnings.append((seed.key, "changed while being read; check again"))
    shared = sorted(entry_id for entry_id, keys in claimants.items() if len(keys) > 1)
    owners = served(shared) if served is not None and shared else {}
    _keepers, clashes = settle_claims(claimants, owners)
    result.ok = sum(map(len, claimants.values())) - len(clashes)
    result.errors.extend((clash.path, clash.reason) for clash in clashes)
    return result
