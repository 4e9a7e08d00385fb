"""Front matter, split with python-frontmatter and read with PyYAML's C loader in two
steps: compose (to check size, aliases and duplicate keys, and to keep the source text of
titles and names that YAML would turn into numbers), then construct (for dates and flags).
Hostile YAML (alias bombs, recursion, huge mappings) is refused before it costs anything."""

from __future__ import annotations

import re
from typing import Any

import yaml
from frontmatter.default_handlers import YAMLHandler

from feedsvc.seeds.errors import SeedError

MAX_YAML_NODES = 10_000
MAX_YAML_DEPTH = 32

# What PyYAML refuses to read ("unacceptable character"): scraped titles carry such control
# characters, and one of them must not cost the whole entry. They go before the YAML parse
# (every field drops them afterwards anyway). NUL is refused earlier: it marks binary files.
_YAML_UNPRINTABLE = re.compile(
    "[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]"
)
_NULL_TAG = "tag:yaml.org,2002:null"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_HANDLER = YAMLHandler()


class SeedLoader(yaml.CSafeLoader):
    """PyYAML's C safe loader, except that an impossible timestamp (2021-02-30) stays text:
    the date falls back like any unreadable date instead of rejecting the whole file."""

    def construct_lenient_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return self.construct_yaml_timestamp(node)
        except (ValueError, OverflowError):
            return node.value


SeedLoader.add_constructor(_TIMESTAMP_TAG, SeedLoader.construct_lenient_timestamp)


def _count_nodes(root: yaml.Node, rel: str) -> None:
    """Reject alias bombs and recursive aliases before anything is constructed."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node, depth: int = 0) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise SeedError(rel, "front matter contains a recursive alias")
        if depth > MAX_YAML_DEPTH:
            raise SeedError(rel, f"front matter is nested deeper than {MAX_YAML_DEPTH} levels")
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_YAML_NODES:
                raise SeedError(rel, f"front matter expands to over {MAX_YAML_NODES} values")
        active.discard(key)
        sizes[key] = total
        return total

    size(root)


def _check_events(front: str, rel: str) -> None:
    """Refuse front matter of over MAX_YAML_NODES values from the parser's events, before a
    node is composed: composing costs far more per value than parsing, and a long mapping
    would be composed whole before _count_nodes could stop it. (Each value is at least one
    event, a list or mapping two; the stream and the document add four.) YAML errors are
    left to _load_front_matter, which reports them with their line."""
    loader = SeedLoader(front)
    try:
        for _ in range(2 * MAX_YAML_NODES + 5):
            if not loader.check_event():
                return
            loader.get_event()
    except yaml.YAMLError:
        return
    finally:
        loader.dispose()
    raise SeedError(rel, f"front matter expands to over {MAX_YAML_NODES} values")


def _load_front_matter(
    front: str, rel: str, first_line: int
) -> tuple[dict[str, Any], dict[str, yaml.Node]]:
    """The constructed mapping and, per key, its node (for source text of scalars).
    ``first_line`` is the file's line number of the opening '---', for error messages."""
    _check_events(front, rel)
    loader = SeedLoader(front)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SeedError(rel, "front matter is empty")
        if not isinstance(node, yaml.MappingNode):
            raise SeedError(rel, "front matter is not a mapping of keys to values")
        _count_nodes(node, rel)
        nodes: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise SeedError(rel, "front matter has a key that is not a plain name")
            if key_node.value in nodes:
                raise SeedError(rel, f"front matter has the key {key_node.value!r} twice")
            nodes[key_node.value] = value_node
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + first_line}, column {mark.column + 1}" if mark else ""
        raise SeedError(rel, f"invalid YAML front matter{where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise SeedError(rel, f"invalid YAML front matter: {exc}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise SeedError(rel, f"invalid value in front matter: {exc}") from None
    finally:
        loader.dispose()
    return {str(k): v for k, v in data.items()}, nodes


def read_front_matter(
    text: str, rel: str, first_line: int, warnings: list[str]
) -> tuple[dict[str, Any], dict[str, yaml.Node], str]:
    """The front matter of a file's text (which starts at its opening '---', the file's
    line ``first_line``): the constructed mapping, its nodes by key, and the body after it.
    Control characters YAML refuses are dropped first, with a warning."""
    if not _HANDLER.detect(text):
        raise SeedError(rel, "no front matter: the file must start with a '---' line")
    try:
        front, body = _HANDLER.split(text)
    except ValueError:
        raise SeedError(rel, "front matter has no closing '---' line") from None
    front, removed = _YAML_UNPRINTABLE.subn("", front)
    if removed:
        warnings.append(f"front matter: removed {removed} control character(s)")
    meta, nodes = _load_front_matter(front, rel, first_line)
    return meta, nodes, body


def scalar_text(node: yaml.Node | None) -> str | None:
    """The source text of a scalar (so `title: 12_00` stays '12_00'); None for null/absent."""
    if node is None or not isinstance(node, yaml.ScalarNode):
        return None
    if node.tag == _NULL_TAG and not node.style:  # plain (unquoted) null: ~, null, empty
        return None
    return str(node.value)
