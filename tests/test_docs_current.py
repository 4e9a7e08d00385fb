"""What is made from the settings' declarations (config/feedsvc.toml, the table in
docs/configuration.md, the CLI's flags) is current and says what the declarations say."""

from __future__ import annotations

import argparse
import tomllib
from dataclasses import fields

import pytest
from cogapp import Cog

from feedsvc.cli import build_parser
from feedsvc.config import (
    DECLARED,
    Settings,
    example_toml,
    load_settings,
    read_config_file,
    reference_table,
)
from tests.helpers import ROOT

GENERATED = ("config/feedsvc.toml", "docs/configuration.md")

# The options that are a command's own, not a setting's.
COMMAND_OPTIONS = {
    "-h",
    "--help",
    "--config",
    "--no-upgrade",
    "--prune-now",
    "--no-scan",
    "--feeds-only",
}


@pytest.mark.parametrize("path", GENERATED)
def test_generated_text_is_current(path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    status = Cog().main(["cog", "--check", "--diff", "--check-fail-msg", "run `make docs`", path])
    out = capsys.readouterr()
    assert status == 0, (
        f"{path} is not what the declarations in feedsvc/config.py make: run `make docs`\n"
        f"{out.out}{out.err}"
    )


def test_declarations_are_whole():
    assert [declared.name for declared in DECLARED] == [f.name for f in fields(Settings)]
    for declared in DECLARED:
        assert declared.help.strip() == declared.help and "\n" not in declared.help
        assert declared.help and not declared.help.endswith("."), declared.name


def test_example_loads_to_the_defaults(tmp_path):
    example = tmp_path / "example.toml"
    example.write_text(example_toml())
    assert Settings(**read_config_file(example)) == Settings()
    assert load_settings({}, config_file=example, environ={}) == Settings()


def test_shipped_config_differs_from_the_defaults_only_where_it_says_so():
    shipped = load_settings({}, config_file=ROOT / "config" / "feedsvc.toml", environ={})
    text = (ROOT / "config" / "feedsvc.toml").read_text()
    differ = [d.name for d in DECLARED if getattr(shipped, d.name) != d.default]
    assert differ == ["language"]
    assert text.count("# Set for the sample seeds (the default is") == len(differ)


def test_every_setting_is_in_both_generated_files():
    data = tomllib.loads((ROOT / "config" / "feedsvc.toml").read_text())
    assert list(data) == [declared.name for declared in DECLARED]
    docs = (ROOT / "docs" / "configuration.md").read_text()
    table = reference_table()
    assert table in docs
    rows = table.splitlines()[2:]
    assert len(rows) == len(DECLARED)
    for declared, row in zip(DECLARED, rows, strict=True):
        assert row.startswith(f"| `{declared.name}` | `{declared.env}` | ")
        assert declared.help in row


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Each command's parser, the steps of `db` each as "db"."""

    def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}

    found = {}
    for name, parser in subparsers(build_parser()).items():
        steps = subparsers(parser)
        found.update(
            {f"{name} {step}": sub for step, sub in steps.items()} if steps else {name: parser}
        )
    return found


def test_every_cli_flag_of_a_setting_comes_from_its_declaration():
    by_name = {declared.name: declared for declared in DECLARED}
    given = set()
    for command, parser in _parsers().items():
        for action in parser._actions:
            if not action.option_strings:
                continue  # a positional argument (OUTDIR)
            if action.dest not in by_name:
                assert set(action.option_strings) <= COMMAND_OPTIONS, (
                    command,
                    action.option_strings,
                )
                continue
            declared = by_name[action.dest]
            assert declared.flag is not None, f"{command}: {declared.option} has no declared flag"
            assert action.option_strings == [declared.option]
            assert action.metavar == declared.flag.metavar
            assert action.help is not None and declared.plain_help in action.help
            given.add((command.split()[0], declared.name))
    declared_flags = {
        (command, d.name) for d in DECLARED if d.flag is not None for command in d.flag.commands
    }
    assert given == declared_flags


def test_a_flag_overrides_the_environment(tmp_path, monkeypatch):
    from feedsvc.cli import _settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FEEDSVC_PORT", "9001")
    args = build_parser().parse_args(["serve", "--port", "9002", "--scan-interval", "30"])
    settings = _settings(args)
    assert (settings.port, settings.scan_interval) == (9002, 30)
