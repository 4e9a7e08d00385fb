"""`feedsvc serve|scan|check|export|db`: thin commands over the library.

Exit status: 0 done, 1 problems found (check) or the command failed, 2 bad settings or usage,
3 an export that wrote everything but the documents it names (EXPORT_INCOMPLETE).
A failure is one line on stderr naming its cause (``feedsvc: error: …``), never a traceback;
every line a command prints has its control characters escaped (file names may hold any).
Heavy modules are imported inside each command: `serve` must set up the metrics directory
before anything imports prometheus-client."""

from __future__ import annotations

import argparse
import contextlib
import logging
import logging.config
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feedsvc import __version__
from feedsvc.config import (
    DECLARED,
    DEFAULT_CONFIG_FILE,
    ConfigError,
    Settings,
    directory_path,
    load_settings,
)
from feedsvc.logs import escape_controls, log_config
from feedsvc.store.errors import OldSchema, SchemaRefused, StorageError

if TYPE_CHECKING:
    from feedsvc.store import Store


def _options(parser: argparse.ArgumentParser, command: str) -> None:
    """The flags of the settings ``command`` takes, made from their declarations (so their
    names, help and defaults are those of the config file and the docs), and ``--config``."""
    for declared in DECLARED:
        if declared.flag is not None and command in declared.flag.commands:
            text = f"{declared.plain_help} (default: {declared.shown_default()})"
            parser.add_argument(
                declared.option, metavar=declared.flag.metavar, help=text.replace("%", "%%")
            )
    parser.add_argument(
        "--config", metavar="FILE", type=Path, help=f"config file (default: {DEFAULT_CONFIG_FILE})"
    )


# The commands over the seeds: what each does, and its own switches (flag, meaning); the
# settings' flags come from their declarations (feedsvc.config).
USAGE = {
    "serve": (
        "serve feeds over HTTP and watch the seeds directory",
        [
            (
                "--no-upgrade",
                "refuse to start on an older schema instead of upgrading it (see `feedsvc db`)",
            )
        ],
    ),
    "scan": (
        "scan the seeds directory once into the database",
        [
            (
                "--prune-now",
                "remove the entries of missing files now, without waiting out delete_grace",
            )
        ],
    ),
    "check": ("validate seed files without writing anything", []),
    "export": (
        "write every feed as a static file",
        [
            ("--no-scan", "export the database as it is, without scanning first"),
            ("--feeds-only", "write the feeds, the index and the OPML, not the entry pages"),
        ],
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feedsvc",
        description="Serve a directory of seed files as Atom, RSS and JSON feeds.",
        epilog="Every option can also be set in the config file or as FEEDSVC_<NAME> in the environment.",
    )
    parser.add_argument("--version", action="version", version=f"feedsvc {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, (text, switches) in USAGE.items():
        command = commands.add_parser(name, help=text)
        _options(command, name)
        if name == "export":
            # (a str: Path("") would already be ".", see cmd_export)
            command.add_argument("outdir", metavar="OUTDIR", help="directory to write into")
        for flag, meaning in switches:
            command.add_argument(flag, action="store_true", help=meaning)

    db = commands.add_parser("db", help="the database's schema: where it stands, upgrading it")
    steps = db.add_subparsers(dest="db_command", required=True, metavar="STEP")
    for name, text in (
        ("current", "say which schema revision the database is at"),
        ("upgrade", "upgrade the database to this feedsvc's revision (serve does it by default)"),
        ("history", "list this feedsvc's schema revisions, newest first"),
    ):
        _options(steps.add_parser(name, help=text), "db")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    cli = {declared.name: getattr(args, declared.name, None) for declared in DECLARED}
    return load_settings(cli, config_file=args.config)


# An export that wrote every document but those whose paths collide with others': not 1, so
# that a script can tell a site written (publish it) from one not written (keep the last).
EXPORT_INCOMPLETE = 3


class CommandFailed(Exception):
    """A command cannot go on; the message is the one line that says why (exit status 1)."""


def _open_store(settings: Settings, *, upgrade: bool = True) -> Store:
    """The store, or CommandFailed saying why the database cannot be opened."""
    from feedsvc.store import Store
    from feedsvc.store.engine import failure_message

    try:
        return Store(settings.db, upgrade=upgrade)
    except SchemaRefused:
        raise
    except StorageError as exc:
        raise CommandFailed(failure_message(settings.db, exc, opening=True)) from exc


def _fail(message: str, status: int = 1) -> int:
    print(f"feedsvc: error: {escape_controls(message)}", file=sys.stderr)
    return status


def _setup_logging(settings: Settings, command: str) -> None:
    stream = "stdout" if command == "serve" else "stderr"
    logging.config.dictConfig(log_config(settings.log_level, settings.log_format, stream))


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from feedsvc.server import serve

    serve(settings, upgrade=not args.no_upgrade)
    return 0


def _progress_bar() -> Any:
    """A tqdm progress callback on a terminal, None elsewhere."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bar = tqdm(unit="file", desc="scanning", leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
        if done == total:
            bar.close()

    return update


def _run_scan(settings: Settings, progress: Any = None, prune_now: bool = False) -> Any:
    """Scan, then (as the leader does, once the feeds are live) render the parts of what
    changed and index it for search."""
    from feedsvc.prerender import prerender
    from feedsvc.scan import Scanner

    store = _open_store(settings)
    try:
        scanner = Scanner(store, settings)
        report = scanner.scan(progress, prune_now=prune_now, index=False)
        prerender(store, settings)
        scanner.index_search()
        return report
    finally:
        store.close()


def cmd_scan(settings: Settings, args: argparse.Namespace) -> int:
    from feedsvc.scan import ScanError

    try:
        report = _run_scan(settings, _progress_bar(), args.prune_now)
    except ScanError as exc:
        return _fail(str(exc))
    for path, reason in report.errors:
        print(escape_controls(f"{path}: {reason}"))
    print(
        f"added {report.added}, updated {report.updated}, removed {report.removed}, "
        f"unchanged {report.unchanged}, errors {report.files_with_errors} "
        f"({len(report.errors)} new)"
    )
    if report.missing:
        print(
            f"missing {report.missing}: kept until delete_grace passes (--prune-now removes them)"
        )
    if report.held:
        print(f"deletion hold: {report.held.reason}")
    return 0


def cmd_check(settings: Settings, _args: argparse.Namespace) -> int:
    from feedsvc.check import check_seeds
    from feedsvc.scan import ScanError
    from feedsvc.store import database_exists

    # With a database, ask it which file serves an id two files give, as a scan would;
    # never create or upgrade one (check writes nothing): without it, as a first scan would.
    store = None
    if database_exists(settings.db):
        with contextlib.suppress(OldSchema):
            store = _open_store(settings, upgrade=False)
    try:
        result = check_seeds(settings, store.id_owners if store is not None else None)
    except ScanError as exc:
        return _fail(str(exc))
    finally:
        if store is not None:
            store.close()
    for line in result.lines():
        print(escape_controls(line))
    print(
        f"{result.files} files: {result.ok} ok, {result.drafts} drafts, {len(result.errors)} errors, "
        f"{len(result.warnings)} warnings",
        file=sys.stderr,
    )
    return 1 if result.errors else 0


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    from feedsvc.export import ExportFailed, export_site
    from feedsvc.scan import ScanError

    try:  # checked as the seeds directory is: "" is no way to say "here"
        outdir = directory_path(args.outdir)
    except ValueError as exc:
        return _fail(f"OUTDIR: {exc}", 2)
    if not args.no_scan:
        try:
            _run_scan(settings)
        except ScanError as exc:
            return _fail(str(exc))
    store = _open_store(settings)
    try:
        exported = export_site(store, settings, outdir, entries=not args.feeds_only)
    except ExportFailed as exc:
        raise CommandFailed(str(exc)) from exc
    finally:
        store.close()
    for line in exported.skipped:
        print(f"feedsvc: warning: {escape_controls(line)}", file=sys.stderr)
    print(escape_controls(f"wrote {exported.written} files to {outdir}"))
    if not exported.skipped:
        return 0
    print(
        f"feedsvc: warning: export incomplete: {len(exported.skipped)} documents skipped"
        " (above), each where another's file must be; exit status 3",
        file=sys.stderr,
    )
    return EXPORT_INCOMPLETE


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    from feedsvc.store import database_exists, migrate, schema_state
    from feedsvc.store.engine import masked_url

    where = masked_url(settings.db)
    if args.db_command == "history":
        for revision, before, summary in migrate.history():
            head = " (head)" if revision == migrate.HEAD else ""
            print(f"{before or '<base>'} -> {revision}{head}, {summary}")
        return 0
    if args.db_command == "current":
        if not database_exists(settings.db):
            raise CommandFailed(f"no database at {where}")
        print(schema_state(settings.db).describe())
        return 0
    store = _open_store(settings)
    store.close()
    was = store.upgraded
    if was is None:
        print(f"database {where} is at {migrate.HEAD} (head): nothing to do")
    else:
        rebuilt = " (rebuilt: the next scan fills it from the seeds)" if was.rebuilt else ""
        print(f"database {where}: upgraded from {was.label} to {migrate.HEAD}{rebuilt}")
    return 0


COMMANDS = {
    "serve": cmd_serve,
    "scan": cmd_scan,
    "check": cmd_check,
    "export": cmd_export,
    "db": cmd_db,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ConfigError as exc:
        return _fail(str(exc), 2)
    _setup_logging(settings, args.command)
    try:
        return COMMANDS[args.command](settings, args)
    except (CommandFailed, SchemaRefused) as exc:
        return _fail(str(exc))
    except StorageError as exc:
        from feedsvc.store.engine import failure_message

        return _fail(failure_message(settings.db, exc))
    except OSError as exc:  # the environment's, not a bug: e.g. OUTDIR cannot be written
        return _fail(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))
