"""Every feed there is, arranged the way pages, OPML, /status and metrics show them: the
all-entries summary, the category tree, the authors and the tags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from feedsvc.model import Scope, ScopeKind
from feedsvc.store import ScopeSummary


@dataclass
class TreeNode:
    """One category, with its sub-categories."""

    summary: ScopeSummary
    children: list[TreeNode] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.summary.scope.names[-1]


@dataclass(frozen=True)
class Catalog:
    summaries: tuple[ScopeSummary, ...]
    everything: ScopeSummary
    tree: tuple[TreeNode, ...]
    authors: tuple[ScopeSummary, ...]
    tags: tuple[ScopeSummary, ...]
    nodes: dict[tuple[str, ...], TreeNode] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, summaries: Sequence[ScopeSummary]) -> Catalog:
        """From the summaries sorted by scope (a parent category before its children)."""
        ordered = tuple(sorted(summaries, key=lambda s: s.scope))
        everything = next((s for s in ordered if s.scope.kind is ScopeKind.ALL), None)
        roots: list[TreeNode] = []
        nodes: dict[tuple[str, ...], TreeNode] = {}
        for summary in ordered:
            if summary.scope.kind is ScopeKind.CATEGORY:
                node = nodes[summary.scope.names] = TreeNode(summary)
                parent = nodes.get(summary.scope.names[:-1])
                (parent.children if parent else roots).append(node)
        return cls(
            summaries=ordered,
            everything=everything or ScopeSummary.empty(Scope.all()),
            tree=tuple(roots),
            authors=tuple(s for s in ordered if s.scope.kind is ScopeKind.AUTHOR),
            tags=tuple(s for s in ordered if s.scope.kind is ScopeKind.TAG),
            nodes=nodes,
        )

    def node(self, scope: Scope) -> TreeNode | None:
        """A category's place in the tree (its sub-categories), if it has entries."""
        return self.nodes.get(scope.names)

    @property
    def newest(self) -> datetime:
        """The newest update of any entry (the all-entries feed's)."""
        return self.everything.newest_updated
