"""The ``enginy-mock`` command: serve the reference mock of the Enginy Custom CRM API with waitress."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click

from enginy_spec import load_catalogue, version_line
from mock_server.app import create_app
from mock_server.config import (
    DEFAULT_API_KEY_HEADER,
    DEFAULT_JOURNAL_SIZE,
    DEFAULT_MAX_BODY_BYTES,
    MockConfig,
)
from mock_server.errors import MisconfigurationError
from mock_server.faults import FAULTS, Fault, parse_faults
from mock_server.journal import redact
from mock_server.scenario import Scenario, ScenarioError, load_scenario, parse_scenario
from mock_server.serving import ConnectionLimits, MockServer, bind_sockets
from mock_server.shared import SharedFaultState, SharedJournal, StateFile
from mock_server.storage import MemoryStore, SqliteStore, Store
from mock_server.workers import supervise

__all__ = ["cli", "fault_catalogue", "main", "resolve_settings"]

PROG = "enginy-mock"
_LOG_LEVELS = ("debug", "info", "warning", "error")


class _OneLineUsageError(click.UsageError):
    """Usage errors as one line on stderr, exit 2: other programs start the mock and read its output."""

    def show(self, file: Any = None) -> None:
        message = " ".join(self.format_message().split())
        click.echo(f"{PROG}: error: {message} (see '{PROG} --help')", err=True)


class _Command(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except _OneLineUsageError:
            raise
        except click.UsageError as ex:
            raise _OneLineUsageError(ex.format_message(), ctx) from None


def _usage(message: str) -> NoReturn:
    raise _OneLineUsageError(message)


class _ScenarioUsageError(click.UsageError):
    """A bad scenario file: one line per mistake, ``FILE: LOCATION: problem``, exit 2."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)

    def show(self, file: Any = None) -> None:
        # The prefix every other mistake of the mock carries, so a wrapper reading stderr finds them all.
        for line in self.problems:
            click.echo(f"{PROG}: error: {line}", err=True)


# Where a value came from decides whether it beats the scenario file: given on the command line or
# in the environment, it wins; a click default loses to the file.
_EXPLICIT = frozenset({click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT})


def _load_scenario(path: Path) -> Scenario:
    try:
        return load_scenario(path)
    except ScenarioError as ex:
        raise _ScenarioUsageError(ex.problems) from None  # the lines say it all; no traceback


def _scenario_from_report(path: Path) -> Scenario:
    from enginy_spec.reproduction import NotAReport, scenario_from_report

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as ex:
        _usage(f"cannot read {path}: {ex.strerror or ex}.")
    except (UnicodeDecodeError, ValueError):
        _usage(f"{path} is not JSON; --from-report takes the report.json of an enginy-conformance run.")
    try:
        built = scenario_from_report(document, source=str(path))
        return parse_scenario(built, source=f"{path} (as a scenario)")
    except NotAReport as ex:
        _usage(str(ex))
    except ScenarioError as ex:
        raise _ScenarioUsageError(ex.problems) from None


def resolve_settings(ctx: click.Context, scenario: Scenario | None) -> dict[str, Any]:
    """The settings the scenario file may hold, by precedence: command line > environment > file > default.

    Returns MockConfig keyword arguments plus ``fault_specs``. ``--fault`` and ``--seed-data``
    replace the file's whole list (faults and latency; records and users), they do not add to it.
    """
    params = ctx.params

    def pick(name: str, from_file: Any) -> Any:
        if ctx.get_parameter_source(name) in _EXPLICIT or from_file is None:
            return params[name]
        return from_file

    file = scenario or Scenario(source="")
    if params["seed_data"] is not None:
        seed = _read_seed(params["seed_data"])
    else:
        seed = dict(file.seed_data) if file.seed_data is not None else None
    users_file = None if file.users_enabled is None else not file.users_enabled
    return {
        "api_key_header": pick("api_key_header", file.api_key_header),
        "max_body_bytes": pick("max_body_bytes", file.max_body_bytes),
        "users_enabled": not pick("no_users", users_file),
        "seed_data": seed,
        "fault_specs": tuple(pick("faults", file.fault_specs)),
        "fault_seed": pick("fault_seed", file.fault_seed),
    }


class _RedactingFormatter(logging.Formatter):
    """Every log line passes through the same redaction as the journal, tracebacks included."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._secrets = tuple(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


def _configure_logging(level: str, secrets: Sequence[str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter(secrets))
    handler.set_name(PROG)
    for name, floor in (("mock_server", logging.DEBUG), ("waitress", logging.WARNING)):
        log = logging.getLogger(name)
        # Replace our handler from a previous run in this process (tests invoke the command repeatedly).
        log.handlers = [h for h in log.handlers if h.get_name() != PROG] + [handler]
        log.setLevel(max(getattr(logging, level.upper()), floor))
    # waitress warns "Task queue depth is N" on every request that finds all threads busy: thousands of
    # lines a second under load, and their formatting and redaction cost the mock a third of its
    # speed. MockServer says it once in a while instead (serving.BACKLOG_REPORT_INTERVAL).
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)


def fault_catalogue() -> list[dict[str, Any]]:
    """The fault profiles as ``--list-faults --json`` prints them."""
    catalogue = load_catalogue()

    def entry(fault: Fault) -> dict[str, Any]:
        rule = fault.rule
        return {
            "id": fault.id,
            "kind": fault.kind,
            "rule": rule,
            "level": catalogue.get(rule).level if rule else None,
            "description": fault.description,
            "params": {
                param.name: {"default": param.default, "description": param.description}
                for param in fault.params
            },
            "also_breaks": list(fault.also_breaks),
        }

    return [entry(fault) for fault in FAULTS]


def _print_faults(as_json: bool) -> None:
    entries = fault_catalogue()
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    width = max(len(entry["id"]) for entry in entries)
    for entry in entries:
        level = entry["level"] or "-"
        click.echo(f"{entry['id']:<{width}}  {level:<6}  {entry['description']}")
        if entry["params"]:
            defaults = ", ".join(f"{name}={spec['default']:g}" for name, spec in entry["params"].items())
            click.echo(f"{'':<{width}}  {'':<6}  params: {defaults}")
        if entry["also_breaks"]:
            click.echo(f"{'':<{width}}  {'':<6}  also breaks: {', '.join(entry['also_breaks'])}")
    click.echo(f"\n{len(entries)} faults. Select with --fault ID or --fault ID:NAME=VALUE[,NAME=VALUE].")


def _read_seed(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as ex:
        _usage(f"cannot read --seed-data {path}: {ex.strerror or ex}.")
    except (UnicodeDecodeError, json.JSONDecodeError) as ex:
        _usage(f"--seed-data {path} is not a JSON document: {ex}.")


def _open_store(db: Path | None, *, lock: Path | None = None) -> Store:
    if db is None:
        return MemoryStore()
    try:
        return SqliteStore(db, lock=lock)
    except (sqlite3.Error, OSError) as ex:
        _usage(f"cannot open --db {db} as a SQLite database: {ex}.")


@click.command(
    cls=_Command,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100, "terminal_width": 100},
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="ENGINY_MOCK_HOST",
    show_envvar=True,
    help="Interface to bind.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    envvar="ENGINY_MOCK_PORT",
    show_envvar=True,
    help="Port to bind; 0 picks a free one.",
)
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    metavar="KEY",
    envvar=["ENGINY_MOCK_API_KEY", "ENGINY_API_KEY"],
    show_envvar=True,
    help="An accepted API key (repeatable; required).",
)
@click.option(
    "--api-key-header",
    default=DEFAULT_API_KEY_HEADER,
    show_default=True,
    metavar="NAME",
    envvar="ENGINY_MOCK_API_KEY_HEADER",
    show_envvar=True,
    help="Header carrying the key (matched case-insensitively).",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="ENGINY_MOCK_DB",
    show_envvar=True,
    help="Keep records in this SQLite file (every acknowledged write survives a crash). Default: memory.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="ID[:NAME=VALUE,...]",
    envvar="ENGINY_MOCK_FAULT",
    show_envvar=True,
    help="Switch a fault profile on (repeatable); see --list-faults.",
)
@click.option(
    "--fault-seed",
    type=int,
    default=0,
    show_default=True,
    envvar="ENGINY_MOCK_FAULT_SEED",
    show_envvar=True,
    help="Seed for the random draws of transport faults.",
)
@click.option(
    "--seed-data",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="ENGINY_MOCK_SEED_DATA",
    show_envvar=True,
    help='JSON file of records loaded at start and on reset: {"tasks": [...], ...}.',
)
@click.option(
    "--admin-token",
    metavar="TOKEN",
    envvar="ENGINY_MOCK_ADMIN_TOKEN",
    show_envvar=True,
    help="Token for /__admin/ (header X-Admin-Token). Default: generated, printed to stderr.",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_BODY_BYTES,
    show_default=True,
    envvar="ENGINY_MOCK_MAX_BODY_BYTES",
    show_envvar=True,
    help="Larger bodies are answered 413.",
)
@click.option(
    "--journal-size",
    type=click.IntRange(min=1),
    default=DEFAULT_JOURNAL_SIZE,
    show_default=True,
    envvar="ENGINY_MOCK_JOURNAL_SIZE",
    show_envvar=True,
    help="Exchanges /__admin/journal keeps (the newest; older ones are dropped).",
)
@click.option(
    "--no-users",
    is_flag=True,
    envvar="ENGINY_MOCK_NO_USERS",
    show_envvar=True,
    help="Do not implement GET /users (answers 404, Enginy's opt-out).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    envvar="ENGINY_MOCK_THREADS",
    show_envvar=True,
    help="waitress worker threads.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    envvar="ENGINY_MOCK_WORKERS",
    show_envvar=True,
    help="Processes serving the one port, sharing records, journal and faults through SQLite "
    "(--db, or a temporary file removed on exit). 1 keeps everything in this process.",
)
@click.option(
    "--connection-limit",
    type=click.IntRange(min=1),
    default=ConnectionLimits.connection_limit,
    show_default=True,
    envvar="ENGINY_MOCK_CONNECTION_LIMIT",
    show_envvar=True,
    help="Open connections per worker; past it new clients wait until one closes.",
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=ConnectionLimits.request_timeout,
    show_default=True,
    metavar="SECONDS",
    envvar="ENGINY_MOCK_REQUEST_TIMEOUT",
    show_envvar=True,
    help="A connection that has not sent a whole request this long after opening (or after the "
    "first byte of a later one) is closed: idle or slow sockets cannot lock clients out.",
)
@click.option(
    "--idle-timeout",
    type=click.IntRange(min=1),
    default=ConnectionLimits.idle_timeout,
    show_default=True,
    metavar="SECONDS",
    envvar="ENGINY_MOCK_IDLE_TIMEOUT",
    show_envvar=True,
    help="A keep-alive connection idle this long between requests is closed.",
)
@click.option(
    "--log-level",
    type=click.Choice(_LOG_LEVELS),
    default="info",
    show_default=True,
    envvar="ENGINY_MOCK_LOG_LEVEL",
    show_envvar=True,
    help="info logs one access line per request.",
)
@click.option(
    "--scenario",
    "scenario_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="ENGINY_MOCK_SCENARIO",
    show_envvar=True,
    help="YAML file describing a customer's server (faults, latency, records, users, key header, "
    "body limit; see docs/scenarios.md). Options given explicitly override the file.",
)
@click.option(
    "--from-report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="An enginy-conformance report.json: reproduce the server it judged (every rule it found broken "
    "becomes that rule's fault; its key header and answer latency are kept). Not with --scenario.",
)
@click.option("--list-faults", is_flag=True, help="Print the fault profiles and exit.")
@click.option(
    "--version",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=lambda ctx, _, value: _print_version(ctx) if value else None,
    help="Print the version of the mock, the spec and Schemathesis, and exit.",
)
@click.option("--json", "as_json", is_flag=True, help="With --list-faults: print them as JSON.")
def cli(
    host: str,
    port: int,
    api_keys: tuple[str, ...],
    api_key_header: str,
    db: Path | None,
    faults: tuple[str, ...],
    fault_seed: int,
    seed_data: Path | None,
    admin_token: str | None,
    max_body_bytes: int,
    journal_size: int,
    no_users: bool,
    threads: int,
    workers: int,
    connection_limit: int,
    request_timeout: float,
    idle_timeout: int,
    log_level: str,
    scenario_path: Path | None,
    report_path: Path | None,
    list_faults: bool,
    as_json: bool,
) -> None:
    """Serve the reference mock of the Enginy Custom CRM API: the 15 operations of spec/openapi.yaml
    with real state, spec-validated input, and fault profiles that break one catalogue rule each.

    On start it prints one line, "enginy-mock listening on http://HOST:PORT", to stdout. It stops
    cleanly on SIGINT or SIGTERM. Every option can also come from the environment variable shown.
    A --scenario file sets several options at once; precedence: command line > environment >
    scenario file > defaults. API keys never go in the file.

    The mock also serves Swagger UI at /docs (no key needed) and, under the admin token, the
    inspector page at /__admin/inspector (open it once as /__admin/inspector?token=TOKEN) and the
    journal as /__admin/journal.har and /__admin/journal.jsonl.

    \b
    Example:
      enginy-mock --port 0 --api-key test-key
      enginy-mock --api-key test-key --db mock.db --fault TASK-BATCH-ROUTE --fault latency:ms=200
      enginy-mock --api-key test-key --workers 2 --request-timeout 5
      enginy-mock --api-key test-key --scenario examples/scenarios/slow-and-flaky.yaml
      enginy-mock --api-key test-key --from-report reports/report.json
      enginy-mock --list-faults --json
      curl -H 'X-Admin-Token: TOKEN' http://127.0.0.1:8080/__admin/journal.har -o journal.har
    """
    if as_json and not list_faults:
        _usage("--json only goes with --list-faults.")
    if list_faults:
        _print_faults(as_json)
        return
    if not api_keys:
        _usage("give at least one --api-key KEY (or set ENGINY_API_KEY).")
    if scenario_path is not None and report_path is not None:
        _usage(
            "give --scenario or --from-report, not both "
            "(enginy-conformance scenario turns a report into a scenario file)."
        )
    scenario = _load_scenario(scenario_path) if scenario_path is not None else None
    if report_path is not None:
        scenario = _scenario_from_report(report_path)
    generated_token = admin_token is None
    token = admin_token if admin_token is not None else secrets.token_urlsafe(24)
    try:
        settings = resolve_settings(click.get_current_context(), scenario)
        parse_faults(settings["fault_specs"])
        config = MockConfig(api_keys=api_keys, admin_token=token, journal_size=journal_size, **settings)
    except MisconfigurationError as ex:
        _usage(str(ex))
    if scenario is not None:
        about = f" ({' '.join(scenario.description.split())})" if scenario.description else ""
        click.echo(f"{PROG} scenario: {scenario.source}{about}", err=True)
    for selection in parse_faults(config.fault_specs):
        # Support reads these lines to know what the mock is doing wrong on purpose.
        click.echo(f"{PROG} fault: {selection} ({_first_sentence(selection.fault.description)})", err=True)
    _configure_logging(log_level, config.secrets)
    limits = ConnectionLimits(
        connection_limit=connection_limit, request_timeout=request_timeout, idle_timeout=idle_timeout
    )
    _raise_file_limit(limits.connection_limit)
    if not _is_loopback(host):
        # Where these limits matter most: anyone on the network can now open connections.
        click.echo(
            f"{PROG}: warning: --host {host} is not a loopback address: anyone who can reach port "
            f"{port} can call this mock and hold its connections (at most {limits.connection_limit} "
            f"per worker, each closed {limits.request_timeout:g} s after opening without a whole request)",
            err=True,
        )
    shown_token = token if generated_token else None
    if workers > 1:
        _serve_workers(
            config,
            db,
            host=host,
            port=port,
            threads=threads,
            workers=workers,
            limits=limits,
            generated_token=shown_token,
        )
        click.echo(f"{PROG} stopped")
        return
    store = _open_store(db)
    try:
        try:
            app = create_app(config, store=store)
        except MisconfigurationError as ex:
            _usage(str(ex))
        try:
            server = MockServer(
                app,
                host=host,
                port=port,
                threads=threads,
                max_body_bytes=config.max_body_bytes,
                limits=limits,
            )
        except OSError as ex:
            _usage(f"cannot listen on {host}:{port}: {ex.strerror or ex}.")
        _serve(server, shown_token)
    finally:
        store.close()
    click.echo(f"{PROG} stopped")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost: it may well be reachable from outside


def _raise_file_limit(connection_limit: int) -> None:
    """Let the process hold ``connection_limit`` sockets: raise the soft limit on open files if low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connection_limit + 64  # the listeners, the trigger pipe, SQLite files, logs
    if soft != resource.RLIM_INFINITY and soft < wanted:
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if ceiling > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))


def _serve_workers(
    config: MockConfig,
    db: Path | None,
    *,
    host: str,
    port: int,
    threads: int,
    workers: int,
    limits: ConnectionLimits,
    generated_token: str | None,
) -> None:
    """Serve with ``workers`` processes on one port (see mock_server.workers and mock_server.shared)."""
    state_dir = Path(tempfile.mkdtemp(prefix="enginy-mock-"))
    try:
        # Write transactions of the workers queue on this lock in the kernel, not in SQLite's busy handler.
        records_lock = state_dir / "records.lock"
        if db is None:
            # Nobody keeps it, so no fsync per write: it dies with the run.
            store = SqliteStore(state_dir / "records.db", durable=False, lock=records_lock)
        else:
            opened = _open_store(db, lock=records_lock)
            assert isinstance(opened, SqliteStore)
            store = opened
        state = StateFile(state_dir / "state.db")
        try:
            journal = SharedJournal(state, config.journal_size)
            faults = SharedFaultState(state, parse_faults(config.fault_specs), seed=config.fault_seed)
            try:
                app = create_app(config, store=store, journal=journal, faults=faults)
            except MisconfigurationError as ex:
                _usage(str(ex))
            # On Linux every worker gets sockets of its own on the one port (SO_REUSEPORT), and the
            # kernel hashes each new connection to one worker. With one socket shared by all, the
            # worker that wakes first takes the connection: wrk's 16 connections came out 12/4 in
            # 3 runs of 8, and a keep-alive connection stays where it landed, so one worker did
            # three times the other's work. The supervisor keeps every socket open, so the
            # connections queued for a worker that died wait for its replacement, not lost.
            # Elsewhere SO_REUSEPORT does not spread connections: one shared socket.
            spread = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")
            groups: list[list[socket.socket]] = []
            try:
                groups.append(bind_sockets(host, port, backlog=limits.backlog, reuse_port=spread))
                chosen = groups[0][0].getsockname()[1]
                while spread and len(groups) < workers:
                    groups.append(bind_sockets(host, chosen, backlog=limits.backlog, reuse_port=True))
            except (OSError, ValueError) as ex:
                for group in groups:
                    for sock in group:
                        sock.close()
                reason = ex.strerror if isinstance(ex, OSError) and ex.strerror else ex
                _usage(f"cannot listen on {host}:{port}: {reason}.")
            sockets = groups[0]
            # No SQLite connection may cross fork(): each worker opens its own on first use.
            store.disconnect()
            state.disconnect()
            journal.disconnect()
            supervisor = os.getpid()

            def serve(index: int) -> None:
                journal.as_worker(index)  # a replacement appends to its predecessor's file
                server = MockServer(
                    app,
                    threads=threads,
                    max_body_bytes=config.max_body_bytes,
                    limits=limits,
                    sockets=groups[index % len(groups)],
                    parent_pid=supervisor,
                )
                _serve(server, None, announce=False)

            host_shown, port_shown = sockets[0].getsockname()[:2]
            url = (
                f"http://[{host_shown}]:{port_shown}"
                if ":" in host_shown
                else f"http://{host_shown}:{port_shown}"
            )

            def started(pids: list[int]) -> None:
                click.echo(f"{PROG} listening on {url}")
                sys.stdout.flush()
                click.echo(f"{PROG} workers: {len(pids)} (pids {' '.join(map(str, pids))})", err=True)
                if generated_token is not None:
                    click.echo(f"{PROG} admin token: {generated_token}", err=True)

            code = supervise(
                workers, serve, started=started, report=lambda line: click.echo(f"{PROG}: {line}", err=True)
            )
            for group in groups:
                for sock in group:
                    sock.close()
            if code:
                raise SystemExit(code)
        finally:
            store.close()
            state.disconnect()
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def _print_version(ctx: click.Context) -> None:
    click.echo(version_line(PROG))
    ctx.exit()


def _first_sentence(text: str) -> str:
    flat = " ".join(text.split())
    head, dot, _ = flat.partition(". ")
    return head.rstrip(".") if dot else flat.rstrip(".")


def _serve(server: MockServer, generated_token: str | None, *, announce: bool = True) -> None:
    def stop(signum: int, frame: FrameType | None) -> None:
        server.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if announce:  # a worker of --workers does not: its supervisor says it once for all
            click.echo(f"{PROG} listening on {server.url}")
            sys.stdout.flush()
        if generated_token is not None:
            click.echo(f"{PROG} admin token: {generated_token}", err=True)
        server.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (also ``python -m mock_server``)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name=PROG)
