"""enginy-conformance: the command line. The docstrings below are the help.

Exit codes (conformance.exit_codes): 0 every selected MUST rule was judged and holds (SHOULD failures
are warnings; with --baseline, the failures it accepts do not count); 1 a MUST rule fails; 2 the tool
was misused, the server could not be reached, or the target is not a Custom CRM API (one line on
stderr, never a traceback); 3 no MUST rule failed but one could not be judged (INCOMPLETE).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlsplit

import click

from conformance.config import resolve_settings
from conformance.errors import TransportError, UsageError
from conformance.runner import describe_plan, plan_run, run, safe_url
from conformance.settings import RunSettings
from enginy_spec import load_catalogue, version_line

if TYPE_CHECKING:
    from conformance.proxy_server import ProxyServer
    from conformance.terminal import Terminal

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])
PROG: Final = "enginy-conformance"
_MOCK_START_S: Final = 30.0
_LISTENING = re.compile(r"listening on (https?://\S+)")


class Fatal(click.ClickException):
    """A usage error or an unreachable server: one line on stderr, exit 2."""

    exit_code = 2


class Interrupted(click.ClickException):
    """Ctrl-C: one line on stderr, exit 130 (what a shell reports for SIGINT), no verdict."""

    exit_code = 130


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except (UsageError, TransportError) as ex:
        raise Fatal(str(ex)) from None
    except KeyboardInterrupt:
        raise Interrupted("Interrupted: no verdict, no reports written.") from None


_config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML file with the same settings (base-url, profile, only, ...). [default: "
    "./enginy-conformance.toml when it exists]",
)


def _target_options(function: F) -> F:
    """--base-url, --api-key, --api-key-header, --config: where the server is and how to reach it."""
    options = [
        click.option(
            "--base-url", metavar="URL", help="Root URL of the server under test. [env ENGINY_BASE_URL]"
        ),
        click.option(
            "--api-key",
            metavar="KEY",
            help="The API key. Prefer the environment variable ENGINY_API_KEY: a key given here lands in "
            "your shell history and in process lists.",
        ),
        click.option(
            "--api-key-header",
            metavar="NAME",
            help="Header that carries the key. [env ENGINY_API_KEY_HEADER; default X-API-Key]",
        ),
        _config_option,
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _run_options(function: F) -> F:
    """The options every judging command shares (run and demo)."""
    options = [
        click.option(
            "--profile",
            type=click.Choice(["quick", "full"]),
            help="quick: scripted checks and a short Schemathesis pass; full: every Schemathesis phase with "
            "more examples. [env ENGINY_PROFILE; default quick]",
        ),
        click.option(
            "--only",
            "only",
            multiple=True,
            metavar="RULE-ID",
            help="Judge only this rule (repeatable, or comma-separated). [env ENGINY_ONLY]",
        ),
        click.option(
            "--report-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Where report.json, junit.xml, report.html and summary.md go. [env ENGINY_REPORT_DIR; "
            "default reports/]",
        ),
        click.option(
            "--max-writes",
            type=int,
            metavar="N",
            help="At most N POST/PUT/PATCH requests; checks beyond it are skipped. [env ENGINY_MAX_WRITES]",
        ),
        click.option(
            "--timeout",
            type=float,
            metavar="S",
            help="Seconds one request may take, connect and whole answer included; past it, the rule it "
            "judges is not judged. [env ENGINY_TIMEOUT; default 10]",
        ),
        click.option(
            "--seed", type=int, metavar="N", help="Seed of the Schemathesis pass. [env ENGINY_SEED]"
        ),
        click.option(
            "--concurrency",
            type=int,
            metavar="N",
            help="Scripted checks run N at a time, and generated testing in N worker processes against a "
            "server that is slow to answer; 1 runs everything one request after another. A 429 with "
            "Retry-After slows the run down instead of failing it. [env ENGINY_CONCURRENCY; default 16]",
        ),
        click.option(
            "--max-time",
            metavar="DURATION",
            help="The longest the run may take (300, 90s, 5m); what is left then is not judged "
            "(INCOMPLETE, exit 3) and the reports are written. [env ENGINY_MAX_TIME; default none]",
        ),
        click.option(
            "--color",
            type=click.Choice(["auto", "always", "never"]),
            help="Colour the output: auto colours a terminal only, and not when NO_COLOR is set; always "
            "colours a pipe too (a CI log that shows ANSI colours). The live progress display needs a "
            "terminal either way. [env ENGINY_COLOR; default auto]",
        ),
        click.option(
            "-v",
            "--verbose",
            is_flag=True,
            help="List every rule in the end table, passed ones included, and print the Schemathesis "
            "pass's own lines as it goes.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


class _OneLineUsageError(click.UsageError):
    """A usage mistake as one line on stderr (exit 2), like every other mistake: click's own shows a
    four-line usage block, which CI logs and wrapper scripts then have to pick apart."""

    def show(self, file: Any = None) -> None:
        message = " ".join(self.format_message().split())
        where = self.ctx.command_path if self.ctx is not None else PROG
        # "Error: " as click writes the suite's other one-line mistakes (Fatal), so all read alike.
        click.echo(f"Error: {message} (see '{where} --help')", err=True)


def _one_line(ex: click.UsageError) -> _OneLineUsageError:
    if isinstance(ex, _OneLineUsageError):
        return ex
    return _OneLineUsageError(ex.format_message(), ex.ctx)


class _Group(click.Group):
    """The command group, with usage errors of the group and of every command made one line."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as ex:
            raise _one_line(ex) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as ex:  # a command's own arguments, or a command that does not exist
            raise _one_line(ex) from None


def _print_version(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if value:
        click.echo(version_line(PROG))
        ctx.exit()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--version",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_print_version,
    help="Print the version of the suite, the spec it judges by and Schemathesis, and exit.",
)
def cli() -> None:
    """Judge a Custom CRM server against the Enginy contract.

    Enginy calls these endpoints on your CRM; this suite calls them the way Enginy does and judges each
    answer against the rules in spec/rules.yaml.

    \b
    Exit codes:
      0  PASSED: every selected MUST rule was judged and holds (SHOULD failures only warn),
         or fails as the --baseline file accepts
      1  FAILED: a MUST rule does not hold
      2  a usage error, an unreachable server, or a target that is not a Custom CRM API
      3  INCOMPLETE: no MUST rule failed, but one could not be judged (e.g. --max-writes too low)

    \b
    Example:
      export ENGINY_API_KEY=your-key
      enginy-conformance run --base-url https://crm.example.com/enginy
      enginy-conformance rules --level MUST
      enginy-conformance demo
    """


@cli.command("run")
@_target_options
@_run_options
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="JSON file of accepted failures by rule id, each with a reason and an optional expiry date: a "
    "failure it accepts is reported as accepted and does not fail the run (docs/ci-gating.md). "
    "[env ENGINY_BASELINE]",
)
@click.option(
    "--baseline-update",
    is_flag=True,
    help="After the run, rewrite the --baseline file: every MUST failure accepted (new entries get a TODO "
    "reason to replace), entries of rules that now hold dropped, reasons and expiry dates kept. Exits 0 "
    "when the file written accepts every failure.",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the plan (rules, requests, write count) and send nothing."
)
@click.pass_context
def run_command(
    ctx: click.Context, /, config_file: Path | None, dry_run: bool, baseline_update: bool, **flags: Any
) -> None:
    """Judge the server at --base-url and write the reports.

    Every record the run creates is tagged 'enginy-conformance' (subjects, externalIds, emails at
    example.invalid, and {"enginyConformance": true} in activity metadata) and listed in the report
    for cleanup. Settings come from flags, then ENGINY_* environment variables, then the config file.
    Pass the key in ENGINY_API_KEY rather than --api-key: the command line lands in shell history.

    With --baseline, the failures the file accepts (until their expiry date) are shown as accepted and
    do not fail the run; every other MUST failure still does, and a rule not judged is still not judged.

    \b
    Example:
      export ENGINY_API_KEY=your-key
      enginy-conformance run --base-url https://crm.example.com/enginy
      enginy-conformance run --base-url http://localhost:8080 --only TASK-BATCH-ROUTE --dry-run
      enginy-conformance run --config enginy-conformance.toml --profile full --report-dir out/
      enginy-conformance run --base-url http://localhost:8080 --baseline known.json --baseline-update
    """
    verbose = flags.pop("verbose")
    with _one_line_errors():
        resolved = resolve_settings(
            flags,
            os.environ,
            config_file=config_file,
            cwd=Path.cwd(),
            dry_run=dry_run,
            update_baseline=baseline_update,
        )
        if dry_run:
            for line in describe_plan(resolved.settings, plan_run(resolved.settings)):
                click.echo(line)
            return
        terminal = _terminal(resolved.settings, verbose=verbose)
        settings = resolved.settings
        terminal.say(
            f"enginy-conformance: judging {safe_url(settings.base_url)} (profile {settings.profile}; key "
            f"from {resolved.describe_source('api_key')}, sent as {settings.api_key_header})",
            "bold",
        )
        outcome = run(resolved.settings, observer=terminal)
    terminal.show_outcome(outcome)
    if outcome.report.interrupted:
        terminal.say("Interrupted (Ctrl-C): exit 130; the reports hold what was judged before the stop.")
    ctx.exit(outcome.exit_code)


@cli.command("rules")
@click.option("--json", "as_json", is_flag=True, help="Print the rules as a JSON array.")
@click.option(
    "--level", type=click.Choice(["MUST", "SHOULD"], case_sensitive=False), help="Only rules of this level."
)
def rules_command(as_json: bool, level: str | None) -> None:
    """List the rules of the catalogue: id, level, operations and statement.

    Each rule says which command judges it: run judges every rule (by a scripted check or the
    Schemathesis pass) except those marked "judged by enginy-conformance load", which need many
    requests at once (--json: judged_by scripted, schemathesis or load).

    \b
    Example:
      enginy-conformance rules
      enginy-conformance rules --level SHOULD
      enginy-conformance rules --json | jq '.[].id'
    """
    from conformance.checks import CHECKS, LOAD_ONLY

    def judged_by(rule_id: str) -> str:
        if rule_id in LOAD_ONLY:
            return "load"
        return "scripted" if rule_id in CHECKS else "schemathesis"

    rules = [rule for rule in load_catalogue() if level is None or rule.level == level.upper()]
    if as_json:
        data = [
            {
                "id": rule.id,
                "level": rule.level,
                "operations": list(rule.operations),
                "statement": rule.statement,
                "source": {"document": rule.source.document, "quote": rule.source.quote},
                "judged_by": judged_by(rule.id),
            }
            for rule in rules
        ]
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    width = max((len(rule.id) for rule in rules), default=2)
    for rule in rules:
        ops = (
            ", ".join(rule.operations) if len(rule.operations) <= 3 else f"{len(rule.operations)} operations"
        )
        by_load = "  (judged by enginy-conformance load, not run)" if rule.id in LOAD_ONLY else ""
        click.echo(f"{rule.id:<{width}}  {rule.level:<6}  {ops}{by_load}")
        click.echo(f"{'':<{width}}  {rule.statement}")


@cli.command("scenario")
@click.argument("report", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the scenario to this file instead of printing it.",
)
def scenario_command(report: Path, output: Path | None) -> None:
    """Turn a report.json into a mock scenario that reproduces the server it judged.

    Every rule the report found broken (MUST failures and SHOULD warnings) becomes the mock's fault of
    that id; the header the key went under and the server's median answer time come along. The file
    names the report it came from and holds no key. `enginy-mock --from-report` does the same in one
    step.

    \b
    Example:
      enginy-conformance scenario reports/report.json -o ticket-4711.yaml
      enginy-mock --api-key test-key --scenario ticket-4711.yaml
    """
    from enginy_spec.reproduction import NotAReport, scenario_from_report, scenario_yaml

    try:
        document = json.loads(report.read_text(encoding="utf-8"))
    except OSError as ex:
        raise Fatal(f"Cannot read {report}: {ex.strerror or ex}.") from None
    except (UnicodeDecodeError, ValueError):
        raise Fatal(f"{report} is not JSON; give the report.json of an enginy-conformance run.") from None
    try:
        text = scenario_yaml(scenario_from_report(document, source=str(report)))
    except NotAReport as ex:
        raise Fatal(str(ex)) from None
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as ex:
        raise Fatal(f"Cannot write {output}: {ex.strerror or ex}; choose another -o.") from None
    click.echo(f"Wrote {output}; start it with: enginy-mock --api-key KEY --scenario {output}")


@cli.command("demo")
@_run_options
@click.pass_context
def demo_command(ctx: click.Context, /, **flags: Any) -> None:
    """Run the suite against the bundled reference mock, to see what a run and its reports look like.

    Starts the mock (python -m mock_server) on a free local port with a random key, judges it, writes
    the reports, and stops the mock. The mock is conformant, so every MUST rule should hold.

    \b
    Example:
      enginy-conformance demo
      enginy-conformance demo --only TASK-BATCH-ROUTE --report-dir /tmp/demo-reports
    """
    with _one_line_errors():
        if importlib.util.find_spec("mock_server") is None:
            raise UsageError(
                "The bundled mock (mock_server) is not installed; install the project with "
                "'python -m pip install -e .' and run the demo again."
            )
        key = secrets.token_urlsafe(24)
        verbose = flags.pop("verbose")
        # Only the demo's own flags: ENGINY_BASE_URL and friends describe the user's server, not the mock.
        # ENGINY_COLOR describes the user's terminal, so it counts.
        colour = {name: value for name, value in os.environ.items() if name == "ENGINY_COLOR"}
        resolved = resolve_settings(flags, colour, require_target=False)
        with _mock(key) as url:
            settings = _with_target(resolved.settings, url, key)
            terminal = _terminal(settings, verbose=verbose)
            terminal.say(f"enginy-conformance: the bundled mock listens on {url}; judging it.", "bold")
            outcome = run(settings, observer=terminal)
    terminal.show_outcome(outcome)
    ctx.exit(outcome.exit_code)


@cli.command("replay")
@click.argument("recording", metavar="FILE", type=click.Path(path_type=Path))
@_target_options
@click.option(
    "--timeout",
    type=float,
    metavar="S",
    help="Seconds to wait to connect and for each answer. [env ENGINY_TIMEOUT; default 10]",
)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write report.json, junit.xml, report.html and summary.md of the replay here (only when "
    "given).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the replay as one JSON document.")
@click.option("--dry-run", is_flag=True, help="List the requests the file holds and send nothing.")
@click.option("--delay-ms", metavar="MS", help="Wait this long between two requests. [default 0]")
@click.option(
    "--keep-ids",
    is_flag=True,
    help="Send ids as recorded, instead of the ids the server created for the replayed creates.",
)
@click.pass_context
def replay_command(
    ctx: click.Context,
    /,
    recording: Path,
    config_file: Path | None,
    as_json: bool,
    dry_run: bool,
    delay_ms: str | None,
    keep_ids: bool,
    **flags: Any,
) -> None:
    """Re-send a recorded session to a server and judge, request by request, what came back.

    FILE is a HAR 1.2 file (a browser's or proxy's recording, or the mock's /__admin/journal.har), the
    mock's journal (GET /__admin/journal, or journal.jsonl) or a report.json of 'run', whose failing
    cases are replayed. Each answer is judged by the rules one exchange can show; a path the spec does
    not document is sent and reported as not in the contract. The key sent is the one given now
    (ENGINY_API_KEY); recorded keys, cookies and tokens are never re-sent. POST, PUT and
    PATCH requests are re-sent too, so look at --dry-run first when the server holds real data.

    \b
    Example:
      export ENGINY_API_KEY=your-key
      enginy-conformance replay session.har --base-url https://crm.example.com/enginy
      enginy-conformance replay reports/report.json --base-url http://localhost:8080 --json
      curl -H "X-Admin-Token: $TOKEN" http://127.0.0.1:8080/__admin/journal.jsonl > journal.jsonl
      enginy-conformance replay journal.jsonl --dry-run
    """
    from conformance.client import Client
    from conformance.replay import (
        describe_steps,
        dry_run_json,
        parse_delay_ms,
        read_recording,
        replay,
        require_steps,
        summary_lines,
        to_json,
        to_run_report,
    )

    report_dir = flags.pop("report_dir")
    with _one_line_errors():
        delay_s = parse_delay_ms(delay_ms)
        resolved = resolve_settings(
            flags,
            os.environ,
            config_file=config_file,
            cwd=Path.cwd(),
            dry_run=dry_run,
            require_target=not dry_run,
        )
        settings = resolved.settings
        session = read_recording(recording, api_key_header=settings.api_key_header)
        client = Client(
            base_url=settings.base_url or "http://replay.invalid",
            api_key=settings.api_key,
            api_key_header=settings.api_key_header,
            timeout=settings.timeout,
            user_agent="enginy-conformance replay",
        )

        def echo(text: str) -> None:
            click.echo(client.redact(text))

        try:
            if dry_run:
                if as_json:
                    echo(json.dumps(dry_run_json(session), indent=2, ensure_ascii=False))
                else:
                    for line in describe_steps(session):
                        echo(line)
                return
            require_steps(session)
            if not as_json:
                echo(
                    f"enginy-conformance: replaying {len(session.steps)} request"
                    f"{'' if len(session.steps) == 1 else 's'} from {recording} to "
                    f"{safe_url(settings.base_url)} (key from {resolved.describe_source('api_key')}, sent as "
                    f"{settings.api_key_header})"
                )
            outcome = replay(
                session,
                client,
                out=None if as_json else echo,
                delay_s=delay_s,
                remap_ids=not keep_ids,
            )
        finally:
            client.close()
        paths: dict[str, Path] = {}
        if report_dir is not None:
            from conformance.report import write_reports

            report = to_run_report(outcome, api_key_header=settings.api_key_header)
            try:
                paths = write_reports(report, report_dir)
            except OSError as ex:
                raise UsageError(
                    f"Could not write the reports to {report_dir} ({ex.strerror or ex}); choose another "
                    "--report-dir."
                ) from None
        if as_json:
            document = to_json(outcome)
            document["reports"] = {name: str(path) for name, path in paths.items()}
            echo(json.dumps(document, indent=2, ensure_ascii=False))
        else:
            echo("")
            for line in summary_lines(outcome):
                echo(line)
            if paths:
                echo("Reports:")
                for name, path in paths.items():
                    echo(f"  {name}: {path}")
    if outcome.problem is not None:
        raise Fatal(outcome.problem)  # answered, but not judgeable: exit 2 after the lines above
    ctx.exit(outcome.exit_code)


@cli.command("proxy")
@click.option(
    "--upstream",
    metavar="URL",
    help="The server every request is forwarded to: the root of the Custom CRM API under test. "
    "[env ENGINY_UPSTREAM]",
)
@click.option("--host", default="127.0.0.1", help="Address the proxy listens on. [default 127.0.0.1]")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8787,
    help="Port the proxy listens on; 0 picks a free one (the first line says which). [default 8787]",
)
@click.option(
    "--api-key-header",
    metavar="NAME",
    help="Header that carries the key: a request without it is judged as sent without the key. "
    "[env ENGINY_API_KEY_HEADER; default X-API-Key]",
)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where report.json, junit.xml, report.html, summary.md and traffic.har go when the proxy "
    "stops. [env ENGINY_REPORT_DIR; default reports/]",
)
@click.option(
    "--timeout",
    type=float,
    metavar="S",
    help="Seconds to wait for the upstream to connect, and for each read of its answer; past it the "
    "client gets 504. [env ENGINY_TIMEOUT; default 30]",
)
@click.option(
    "--max-exchanges",
    type=click.IntRange(min=1),
    metavar="N",
    help="Stop by itself after N exchanges and write the reports (for scripts). [default: until Ctrl-C]",
)
@_config_option
@click.pass_context
def proxy_command(
    ctx: click.Context,
    /,
    upstream: str | None,
    host: str,
    port: int,
    max_exchanges: int | None,
    config_file: Path | None,
    **flags: Any,
) -> None:
    """Forward traffic to a server unchanged, and judge every exchange on the way through.

    Point a staging Enginy (or curl, or 'enginy-conformance replay') at the proxy instead of at the
    server. Each request goes to --upstream as it came (method, path, query, headers, body; Host becomes
    the upstream's) and each answer comes back as the server gave it. Every exchange prints one line:
    the rules one exchange can show that it holds (✓) or breaks (✗ MUST, ! SHOULD), by id. The proxy is
    not given the key: every value it sees in the key header, Authorization, cookies or other credential
    headers is [REDACTED] in what it prints and writes. When the upstream does not answer, the client
    gets 502 (504 after --timeout) with a JSON error, and that exchange is listed, not judged.

    Ctrl-C (or SIGTERM, or --max-exchanges) stops it: it writes report.json, junit.xml, report.html,
    summary.md and traffic.har (HAR 1.2 of every exchange) to --report-dir and prints a summary. The
    reports hold a result for each rule an exchange spoke about; the rules none did are named as not
    seen, never passed. --api-key-header, --report-dir and --timeout come from flags, then ENGINY_*
    variables, then the config file, as for run; --upstream from the flag or ENGINY_UPSTREAM only
    (not ENGINY_BASE_URL, which may well point at the proxy itself).

    \b
    Exit codes:
      0  no exchange broke a MUST rule (not a PASSED verdict: a proxy judges only what it sees)
      1  an exchange broke a MUST rule
      2  a usage error: a bad --upstream, a port in use, a --report-dir that cannot be written
    A proxy makes no claim to judge every rule, so it never exits 3 (INCOMPLETE) the way run does.

    \b
    Example:
      enginy-conformance proxy --upstream http://staging.example:8080 --port 8787
      curl -H "X-API-Key: $KEY" http://127.0.0.1:8787/health
      enginy-conformance replay session.har --base-url http://127.0.0.1:8787
      enginy-conformance proxy --upstream http://localhost:8080 --port 0 --max-exchanges 20
    """
    from conformance.checks._spec import SpecSchemas
    from conformance.config import parse_value
    from conformance.proxy import DEFAULT_TIMEOUT_S, create_proxy_app
    from conformance.proxy_server import ProxyServer
    from conformance.report import write_reports
    from conformance.traffic import HAR_FILE, Traffic, scrub_files, summary_lines, to_run_report

    with _one_line_errors():
        resolved = resolve_settings(
            flags, os.environ, config_file=config_file, cwd=Path.cwd(), require_target=False
        )
        settings = resolved.settings
        target = _upstream(upstream, parse_value)
        timeout = settings.timeout if resolved.sources["timeout"] != "default" else DEFAULT_TIMEOUT_S
        report_dir = settings.report_dir
        har_path = report_dir / HAR_FILE
        try:
            report_dir.mkdir(parents=True, exist_ok=True)
            har = har_path.open("w", encoding="utf-8")
        except OSError as ex:
            raise UsageError(
                f"Cannot write to {report_dir} ({ex.strerror or ex}); choose another --report-dir."
            ) from None
        with har:
            traffic = Traffic(
                upstream=target,
                api_key_header=settings.api_key_header,
                out=click.echo,
                schemas=SpecSchemas(),
                catalogue=load_catalogue(),
                max_exchanges=max_exchanges,
            )
            app = create_proxy_app(upstream=target, record=traffic.record, timeout=timeout)
            try:
                server = ProxyServer(app, host=host, port=port)
            except OSError as ex:
                har.close()
                har_path.unlink(missing_ok=True)
                raise UsageError(
                    f"Cannot listen on {host}:{port} ({ex.strerror or ex}); choose another --port (0 picks "
                    "a free one) or --host."
                ) from None
            traffic.start(har=har, on_limit=server.stop)
            click.echo(
                f"enginy-conformance proxy listening on {server.url}, forwarding to {target} (key header "
                f"{settings.api_key_header}; Ctrl-C stops it and writes the reports to {report_dir})"
            )
            _serve_until_signalled(server)
            session = traffic.finish()
        try:
            paths = write_reports(to_run_report(session, listen=server.url), report_dir)
        except OSError as ex:
            raise UsageError(
                f"Could not write the reports to {report_dir} ({ex.strerror or ex}); traffic.har is there."
            ) from None
        paths["har"] = har_path
        scrub_files(paths.values(), traffic.secrets)
        click.echo("")
        for line in summary_lines(session):
            click.echo(traffic.secrets.text(line))
        click.echo("Reports:")
        for name, path in paths.items():
            click.echo(f"  {name}: {path}")
    ctx.exit(session.exit_code)


@cli.command("load")
@_target_options
@click.option(
    "--users",
    type=int,
    metavar="N",
    help="Concurrent users (Enginy workspaces). [env ENGINY_LOAD_USERS; default 10]",
)
@click.option(
    "--spawn-rate",
    type=float,
    metavar="R",
    help="Users started per second until --users run. [env ENGINY_LOAD_SPAWN_RATE; default 10]",
)
@click.option(
    "--duration",
    metavar="DURATION",
    help="How long the load runs (60, 90s, 5m); it stops on its own then. [env ENGINY_LOAD_DURATION; "
    "default 60s]",
)
@click.option(
    "--profile",
    metavar="NAME",
    help="The traffic model's profile (spec/traffic.yaml). [env ENGINY_LOAD_PROFILE; default enginy]",
)
@click.option(
    "--p95-ms",
    type=float,
    metavar="MS",
    help="Latency budget: a p95 over it is a LOAD-P95-LATENCY warning (the docs set no response time). "
    "[env ENGINY_LOAD_P95_MS; default 1000]",
)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where report.json, junit.xml, report.html, summary.md and load-timeline.csv go. [env "
    "ENGINY_REPORT_DIR; default reports/]",
)
@click.option(
    "--max-writes",
    type=int,
    metavar="N",
    help="A hard cap on POST/PUT/PATCH requests of the whole load (split across workers); past it only "
    "reads are sent. [env ENGINY_MAX_WRITES]",
)
@click.option(
    "--timeout",
    type=float,
    metavar="S",
    help="Seconds one request may take. [env ENGINY_TIMEOUT; default 10]",
)
@click.option(
    "--i-own-this-server",
    is_flag=True,
    help="Allow a target that is not a loopback address. Load against a server you do not own is an attack.",
)
@click.option(
    "--master", "as_master", is_flag=True, help="Be the master of a distributed load (Locust's --master)."
)
@click.option(
    "--expect-workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="With --master: start once this many workers are connected.",
)
@click.option(
    "--master-bind-host",
    default="127.0.0.1",
    show_default=True,
    help="With --master: the address workers connect to (0.0.0.0 for other machines).",
)
@click.option(
    "--master-port",
    type=click.IntRange(1, 65535),
    default=5557,
    show_default=True,
    help="The master's port (Locust's --master-port).",
)
@click.option(
    "--worker", "as_worker", is_flag=True, help="Be a worker of a distributed load (Locust's --worker)."
)
@click.option("--master-host", metavar="HOST", help="With --worker: the master's address.")
@click.pass_context
def load_command(
    ctx: click.Context,
    /,
    config_file: Path | None,
    users: int | None,
    spawn_rate: float | None,
    duration: str | None,
    profile: str | None,
    p95_ms: float | None,
    i_own_this_server: bool,
    as_master: bool,
    expect_workers: int,
    master_bind_host: str,
    master_port: int,
    as_worker: bool,
    master_host: str | None,
    **flags: Any,
) -> None:
    """Judge the server under load: Enginy's traffic from many users at once, on Locust.

    Locust (pip install enginy-crm-contract[load]) runs in a process of its own and drives the traffic
    model of spec/traffic.yaml: contact and company exports and syncs in batches of up to 100,
    associations, task creates, batch reads and completions of up to 100 ids, activity bursts, health
    checks. Every exchange is judged by the suite's single-exchange judges, and the load adds what only
    it shows: ids distinct across every concurrent create, every completion visible on a later read,
    every acknowledged task readable, and the p95 latency within --p95-ms (LOAD-P95-LATENCY, SHOULD).
    Findings are by rule id; the rules no exchange spoke about are "not seen", never passed.

    Records are tagged as run tags them and listed in report.json; --max-writes caps the writes; the
    load stops on its own at --duration. A target that is not a loopback address is refused unless
    --i-own-this-server is given. Distributed: one --master and any number of --worker processes, on
    one machine or many (Locust's own master/worker mode); each worker sends with its own key
    (ENGINY_API_KEY), the master merges one verdict.

    \b
    Exit codes:
      0  no MUST rule broke under load (not a PASSED verdict: load judges what its traffic exercises)
      1  a MUST rule broke under load
      2  a usage error, an unreachable server, a non-loopback target without --i-own-this-server

    \b
    Example:
      export ENGINY_API_KEY=your-key
      enginy-conformance load --base-url http://127.0.0.1:8080 --users 20 --duration 60s
      enginy-conformance load --base-url https://staging.mycrm.example --i-own-this-server --max-writes 2000
      enginy-conformance load --base-url http://127.0.0.1:8080 --master --expect-workers 2 &
      enginy-conformance load --base-url http://127.0.0.1:8080 --worker --master-host 127.0.0.1
    """
    if importlib.util.find_spec("locust") is None:
        raise Fatal("Locust is not installed: pip install 'enginy-crm-contract[load]'.")
    from conformance.config import read_config
    from conformance.load import (
        LoadSettings,
        resolve_load_settings,
        run_load,
        run_worker,
        summary_lines,
    )
    from conformance.load_model import load_model

    with _one_line_errors():
        if as_master and as_worker:
            raise UsageError("--master and --worker cannot go together: a process is one or the other.")
        if as_worker and not master_host:
            raise UsageError("--worker needs --master-host HOST: the address of the master to connect to.")
        resolved = resolve_settings(flags, os.environ, config_file=config_file, cwd=Path.cwd())
        path, file_values = read_config(config_file, Path.cwd())
        load = resolve_load_settings(
            {
                "users": users,
                "spawn_rate": spawn_rate,
                "duration_s": duration,
                "profile": profile,
                "p95_ms": p95_ms,
            },
            os.environ,
            file_values,
            path,
            i_own_this_server=i_own_this_server,
            role="master" if as_master else "worker" if as_worker else "local",
            master_host=master_host or "127.0.0.1",
            master_port=master_port,
            master_bind_host=master_bind_host,
            expect_workers=expect_workers,
        )
        if not isinstance(load, LoadSettings):  # pragma: no cover - for the type checker
            raise UsageError("bad load settings")
        model = load_model(load.profile)
        if as_worker:
            ctx.exit(run_worker(resolved.settings, load, model, out=click.echo))
        outcome = run_load(resolved.settings, load, model, catalogue=load_catalogue(), out=click.echo)
        click.echo("")
        for line in summary_lines(outcome, load_catalogue()):
            click.echo(line)
        if outcome.report_paths:
            click.echo("Reports:")
            for name, where in outcome.report_paths.items():
                click.echo(f"  {name}: {where}")
    ctx.exit(outcome.exit_code)


def _upstream(flag: str | None, parse: Callable[[str, Any, str], Any]) -> str:
    """--upstream, else ENGINY_UPSTREAM: an http(s) URL with a host and without credentials in it.

    Not ENGINY_BASE_URL: that may well point at the proxy itself (a run judged through it).
    """
    if flag is not None:
        raw, where = flag, "--upstream"
    elif os.environ.get("ENGINY_UPSTREAM", "").strip():
        raw, where = os.environ["ENGINY_UPSTREAM"], "ENGINY_UPSTREAM in the environment"
    else:
        raise UsageError("No server to forward to: pass --upstream URL or set ENGINY_UPSTREAM.")
    url = str(parse("base_url", raw, where))
    if urlsplit(url).username is not None:
        raise UsageError(
            f"{where} must not hold a user or password; clients send their own credentials through the proxy."
        )
    return url


def _serve_until_signalled(server: ProxyServer) -> None:
    """Serve until SIGINT (Ctrl-C) or SIGTERM, which stop the proxy as its normal end (not exit 130)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        server.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.serve_until_stopped()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _with_target(settings: RunSettings, url: str, key: str) -> RunSettings:
    from dataclasses import replace

    return replace(settings, base_url=url, api_key=key)


@contextlib.contextmanager
def _mock(key: str) -> Iterator[str]:
    """Start `python -m mock_server` on a free port; yield its URL; stop it (by its pid) afterwards."""
    # The mock reads ENGINY_* variables too (faults, keys, a database file); the demo wants it plain.
    env = {name: value for name, value in os.environ.items() if not name.startswith("ENGINY_")}
    with tempfile.TemporaryFile(mode="w+") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "mock_server", "--port", "0", "--api-key", key, "--log-level", "warning"],
            stdout=subprocess.PIPE,
            stderr=errors,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        try:
            url = _await_listening(process, errors)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _await_listening(process: subprocess.Popen[str], errors: Any) -> str:
    lines: list[str] = []
    stdout = process.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(_MOCK_START_S)
    match = _LISTENING.search(lines[0]) if lines else None
    if match is None:
        errors.seek(0)
        tail = [line.strip() for line in errors.read().splitlines() if line.strip()][-1:]
        why = f": {tail[0]}" if tail else ""
        raise UsageError(
            f"The bundled mock did not start within {_MOCK_START_S:g} s{why}; run 'python -m mock_server "
            "--port 0 --api-key test' to see why."
        )
    return match.group(1)


def _terminal(settings: RunSettings, *, verbose: bool) -> Terminal:
    """The run's terminal (conformance.terminal), redacting `settings.api_key` from all it prints."""
    from conformance.redaction import Redactor
    from conformance.terminal import open_terminal

    redactor = Redactor(secret=settings.api_key, header=settings.api_key_header)
    return open_terminal(settings.color, verbose=verbose, redact=redactor.text)


def main() -> None:
    """The console script `enginy-conformance`."""
    cli(prog_name="enginy-conformance")
