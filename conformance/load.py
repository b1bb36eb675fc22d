"""`enginy-conformance load`: the contract judged under load, on Locust, from the CLI's side.

    settings (flags > ENGINY_LOAD_* > [load] in the config file > defaults) and the target check
      → a Locust process (`python -m conformance.load_locust`, never imported here: gevent patches
        the standard library of the process that imports Locust) per role: local, master, worker
      → its results file (conformance.load_results.LoadTally) → findings by rule id:
          every exchange's judges and the users' invariants (from the Locust processes), ids distinct
          across every process, and the p95 latency against --p95-ms (LOAD-P95-LATENCY, SHOULD)
      → a RunReport (conformance.judgements.run_report: only the rules some exchange spoke about get a
        result, the others are "not seen") → the four reports, load-timeline.csv, a chart in report.html

Exit codes, as the proxy's: 0 no MUST rule broke on what the load sent (not a PASSED verdict about the
rules it never exercised), 1 a MUST rule broke, 2 a usage error, a server that cannot be reached, a
non-loopback target without --i-own-this-server, or a run that got no answer at all.
"""

from __future__ import annotations

import csv
import ipaddress
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from conformance import judgements
from conformance.config import LOAD_TABLE, _duration
from conformance.errors import ServerUnreachable, UsageError
from conformance.load_model import TrafficModel
from conformance.load_results import LoadTally, evidence_from_json, percentile
from conformance.redaction import Redactor
from conformance.results import CreatedRecord, Evidence, LoadSummary, RunReport
from conformance.settings import RunSettings
from enginy_spec import Catalogue

__all__ = [
    "DEFAULT_P95_MS",
    "LATENCY_RULE",
    "TIMELINE_FILE",
    "LoadOutcome",
    "LoadSettings",
    "check_target",
    "resolve_load_settings",
    "run_load",
    "run_worker",
    "summary_lines",
    "write_timeline",
]

LATENCY_RULE: Final = "LOAD-P95-LATENCY"
# The docs set no response time (Reference §13: "Timeouts, retries, rate limits, backoff: not
# documented"). 1 s is a choice: a batch of 100 contacts or tasks answered within a second is what a
# CRM on ordinary hardware does (the bundled mock's p95 is about 30 ms under the default load), and
# well inside any HTTP client timeout Enginy could reasonably use.
DEFAULT_P95_MS: Final = 1000.0
TIMELINE_FILE: Final = "load-timeline.csv"
DEFAULT_MASTER_PORT: Final = 5557
_SOURCE: Final = "load"
# The rules whose ids a create answers: a duplicate across creates breaks the rule of its kind.
_ID_RULES: Final = {
    "task": "TASK-CREATE-RETURNS-ID",
    "activity": "ACTIVITY-RETURNS-ID",
    "contact": "CONTACT-CREATE-MAPS-EXTERNAL-IDS",
    "company": "COMPANY-CREATE-MAPS-EXTERNAL-IDS",
}
_PLURALS: Final = {"activity": "activities", "company": "companies"}
Out = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class LoadSettings:
    """The load's own settings; where the server is and the key come from `RunSettings`."""

    users: int = 10
    spawn_rate: float = 10.0
    duration_s: float = 60.0
    profile: str = "enginy"
    p95_ms: float = DEFAULT_P95_MS
    i_own_this_server: bool = False
    role: str = "local"  # local | master | worker
    master_host: str = "127.0.0.1"
    master_port: int = DEFAULT_MASTER_PORT
    master_bind_host: str = "127.0.0.1"
    expect_workers: int = 1
    progress_s: float = 5.0


# name, flag, environment variable, key in the [load] table, parser
def _positive_int(raw: Any, where: str) -> int:
    try:
        value = int(raw) if not isinstance(raw, bool | float) else -1
    except (TypeError, ValueError):
        value = -1
    if value < 1:
        raise UsageError(f"{where} must be a whole number of 1 or more, not {raw!r}.")
    return value


def _positive_float(raw: Any, where: str) -> float:
    try:
        value = float(raw) if not isinstance(raw, bool) else math.nan
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{where} must be a number above 0, not {raw!r}.")
    return value


def _profile(raw: Any, where: str) -> str:
    from conformance.load_model import profiles

    value = str(raw).strip()
    known = profiles()
    if value not in known:
        raise UsageError(
            f"{where} must be one of {', '.join(known)} (the traffic model's profiles), not {raw!r}."
        )
    return value


_LOAD_SETTINGS: Final[tuple[tuple[str, str, str, str, Callable[[Any, str], Any]], ...]] = (
    ("users", "--users", "ENGINY_LOAD_USERS", "users", _positive_int),
    ("spawn_rate", "--spawn-rate", "ENGINY_LOAD_SPAWN_RATE", "spawn-rate", _positive_float),
    ("duration_s", "--duration", "ENGINY_LOAD_DURATION", "duration", _duration),
    ("profile", "--profile", "ENGINY_LOAD_PROFILE", "profile", _profile),
    ("p95_ms", "--p95-ms", "ENGINY_LOAD_P95_MS", "p95-ms", _positive_float),
)


def resolve_load_settings(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    file_values: Mapping[str, Any],
    config_file: Path | None,
    **fixed: Any,
) -> LoadSettings:
    """flag > ENGINY_LOAD_* > the [load] table of the config file > default, each validated; a bad
    value is a UsageError naming where it came from."""
    table = file_values.get(LOAD_TABLE, {})
    known = {key for _, _, _, key, _ in _LOAD_SETTINGS}
    for key in table:
        if key not in known:
            raise UsageError(
                f"The [load] table of {config_file} has an unknown key {key!r}; the keys are "
                f"{', '.join(sorted(known))}."
            )
    values: dict[str, Any] = {}
    for name, flag, variable, key, parse in _LOAD_SETTINGS:
        if flags.get(name) is not None:
            values[name] = parse(flags[name], flag)
        elif env.get(variable, "").strip():
            values[name] = parse(env[variable], f"{variable} in the environment")
        elif key in table:
            values[name] = parse(table[key], f"{key} in the [load] table of {config_file}")
    return LoadSettings(**values, **fixed)


def check_target(base_url: str, *, i_own_this_server: bool) -> None:
    """Refuse (UsageError) a target that is not on this machine, unless its owner says so: load against
    someone else's server is an attack. Decided before any request is sent."""
    if i_own_this_server:
        return
    host = urlsplit(base_url).hostname or ""
    if not _loopback(host):
        raise UsageError(
            f"{host} is not a loopback address: load against a server you do not own is an attack. Pass "
            "--i-own-this-server if it is yours (a staging server, ideally), or point --base-url at "
            "127.0.0.1."
        )


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = {item[4][0] for item in found}
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%", 1)[0]).is_loopback for a in addresses
    )


@dataclass(frozen=True, slots=True)
class LoadOutcome:
    report: RunReport
    tally: LoadTally
    report_paths: dict[str, Path]

    @property
    def broke_a_must(self) -> bool:
        return any(result.outcome == "failed" for result in self.report.results)

    @property
    def exit_code(self) -> int:
        return 1 if self.broke_a_must else 0


# --- running the Locust process -------------------------------------------------------------------------


def _child_env(settings: RunSettings) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("ENGINY_")}
    env["ENGINY_API_KEY"] = settings.api_key  # the key never goes into the config file
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _locust_process(config: dict[str, Any], settings: RunSettings, out: Out, *, timeout_s: float) -> int:
    """Run `python -m conformance.load_locust` with `config`; its lines go to `out` (redacted)."""
    redactor = Redactor(secret=settings.api_key, header=settings.api_key_header)
    with tempfile.TemporaryDirectory(prefix="enginy-load-") as scratch:
        path = Path(scratch) / "config.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        process = subprocess.Popen(
            [sys.executable, "-m", "conformance.load_locust", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=_child_env(settings),
        )
        tail: list[str] = []

        def relay() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                text = redactor.text(line.rstrip("\n"))
                if text.startswith("load: "):
                    out(text)
                elif text.strip():
                    tail.append(text)  # Locust's own log lines: shown only when the process fails
                    del tail[:-20]

        reader = threading.Thread(target=relay, daemon=True)
        reader.start()
        try:
            code = process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            raise UsageError(
                f"The Locust process did not stop within {timeout_s:.0f} s of the start; it was killed."
            ) from None
        except KeyboardInterrupt:
            process.terminate()
            process.wait(10)
            raise
        finally:
            reader.join(5)
        if code != 0:
            last = next((line for line in reversed(tail) if "Error" in line), tail[-1] if tail else "")
            raise UsageError(f"The Locust process failed (exit {code}): {last.strip()[:300]}")
        return code


def _probe(settings: RunSettings) -> None:
    """One GET /health with the key: a server that cannot be reached is exit 2 before any load."""
    from conformance.client import Client

    client = Client(
        base_url=settings.base_url,
        api_key=settings.api_key,
        api_key_header=settings.api_key_header,
        timeout=min(settings.timeout, 10.0),
        user_agent="enginy-conformance load",
    )
    try:
        client.get("/health", operation="checkHealth")
    except ServerUnreachable:
        raise
    finally:
        client.close()


def run_load(
    settings: RunSettings,
    load: LoadSettings,
    model: TrafficModel,
    *,
    catalogue: Catalogue,
    out: Out,
    write: bool = True,
) -> LoadOutcome:
    """Run the load (local, or as the master of `load.expect_workers` workers) and judge it."""
    check_target(settings.base_url, i_own_this_server=load.i_own_this_server)
    _probe(settings)
    run_id = os.urandom(4).hex()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory(prefix="enginy-load-") as scratch:
        results = Path(scratch) / "results.json"
        config = {
            "role": "master" if load.role == "master" else "local",
            "base_url": settings.base_url,
            "api_key_header": settings.api_key_header,
            "users": load.users,
            "spawn_rate": load.spawn_rate,
            "duration_s": load.duration_s,
            "model": model.to_json(),
            "tag": settings.tag,
            "run_id": run_id,
            "max_writes": settings.max_writes,
            "results": str(results),
            "progress_s": load.progress_s,
            "bind_host": load.master_bind_host,
            "master_port": load.master_port,
            "expect_workers": load.expect_workers,
            "worker_wait_s": 60.0,
        }
        out(
            f"enginy-conformance load: {load.users} users (spawn rate {load.spawn_rate:g}/s) for "
            f"{load.duration_s:g} s against {settings.base_url}, profile {model.profile}"
            + (f", as the master of {load.expect_workers} workers" if load.role == "master" else "")
            + (f", at most {settings.max_writes} writes" if settings.max_writes is not None else "")
        )
        _locust_process(config, settings, out, timeout_s=load.duration_s + 150)
        if not results.is_file():
            raise UsageError("The Locust process wrote no results; see its lines above.")
        document = json.loads(results.read_text(encoding="utf-8"))
    if document.get("error") == "workers":
        raise UsageError(
            f"Fewer than {load.expect_workers} workers connected to the master within 60 s; start them with "
            "enginy-conformance load --worker --master-host HOST."
        )
    tally = LoadTally.from_json(document["tally"])
    if tally.requests == 0:
        raise ServerUnreachable(f"No request of the load got an answer from {settings.base_url}.")
    elapsed = max(1e-6, float(document["ended_at"]) - float(document["started_at"]))
    report = build_report(
        tally,
        settings=settings,
        load=load,
        model=model,
        catalogue=catalogue,
        started_at=started_at,
        duration_s=round(elapsed, 3),
        workers=int(document.get("workers", 0)),
        run_id=run_id,
    )
    paths: dict[str, Path] = {}
    if write:
        from conformance.report import write_reports

        try:
            paths = write_reports(report, settings.report_dir)
            paths["timeline"] = write_timeline(report, settings.report_dir / TIMELINE_FILE)
        except OSError as ex:
            raise UsageError(
                f"Could not write the reports to {settings.report_dir} ({ex.strerror or ex}); choose another "
                "--report-dir."
            ) from None
    return LoadOutcome(report=report, tally=tally, report_paths=paths)


def run_worker(settings: RunSettings, load: LoadSettings, model: TrafficModel, *, out: Out) -> int:
    """Be one worker of a distributed load: connect to the master, send what it says, report back."""
    check_target(settings.base_url, i_own_this_server=load.i_own_this_server)
    config = {
        "role": "worker",
        "base_url": settings.base_url,
        "api_key_header": settings.api_key_header,
        "model": model.to_json(),
        "tag": settings.tag,
        "run_id": "pending",  # the master's, sent before the users start
        "max_writes": settings.max_writes,
        "master_host": load.master_host,
        "master_port": load.master_port,
        "progress_s": load.progress_s,
    }
    out(
        f"enginy-conformance load: worker of {load.master_host}:{load.master_port}, sending to "
        f"{settings.base_url}"
    )
    # A worker runs as long as its master: bounded by a day, as --duration is.
    return _locust_process(config, settings, out, timeout_s=86400 + 150)


# --- the findings -----------------------------------------------------------------------------------------


def _duplicate_ids(tally: LoadTally) -> list[Evidence]:
    """Ids answered to creates in two different processes (a process finds its own duplicates)."""
    where: dict[tuple[str, str], set[str]] = defaultdict(set)
    via: dict[tuple[str, str], str] = {}
    for kind, record_id, how, process in tally.created:
        where[(kind, record_id)].add(process)
        via[(kind, record_id)] = how
    found: dict[str, list[str]] = defaultdict(list)
    for (kind, record_id), processes in where.items():
        if len(processes) > 1:
            found[kind].append(record_id)
    evidence = []
    for kind, ids in found.items():
        evidence.append(
            Evidence(
                rule_id=_ID_RULES[kind],
                outcome="failed",
                source=_SOURCE,
                message=f"{len(ids)} {kind} id{'s were' if len(ids) != 1 else ' was'} answered to creates "
                "sent by different load workers: ids collide when creates arrive together.",
                expected=f"a distinct id for every {kind} created",
                actual=f"the same id answered to creates of several workers, e.g. {ids[:3]}",
            )
        )
    return evidence


def _slowest(tally: LoadTally, count: int = 3) -> list[tuple[str, float, int]]:
    """The endpoints with the highest p95 first: (endpoint, p95 ms, requests)."""
    ranked = [
        (endpoint, percentile(histogram, 0.95), sum(histogram.values()))
        for endpoint, histogram in tally.endpoints.items()
    ]
    return sorted(ranked, key=lambda item: (-item[1], item[0]))[:count]


def _latency(tally: LoadTally, load: LoadSettings, catalogue: Catalogue) -> list[Evidence]:
    """LOAD-P95-LATENCY: the p95 of every answer of the load against --p95-ms, the slowest endpoints
    named. A SHOULD rule (the docs set no response time): over the budget is a warning."""
    if LATENCY_RULE not in catalogue.ids or tally.requests == 0:
        return []
    p95 = percentile(tally.latency, 0.95)
    slowest = _slowest(tally)
    first = f"; slowest: {slowest[0][0]} (p95 {slowest[0][1]:.0f} ms)" if slowest else ""
    ranked = ", ".join(
        f"{endpoint} p95 {ms:.0f} ms over {n} request{'s' if n != 1 else ''}" for endpoint, ms, n in slowest
    )
    if p95 <= load.p95_ms:
        return [
            Evidence(
                rule_id=LATENCY_RULE,
                outcome="passed",
                source=_SOURCE,
                message=f"p95 latency {p95:.0f} ms over {tally.requests} requests, within the budget of "
                f"{load.p95_ms:g} ms (--p95-ms){first}.",
            )
        ]
    level = catalogue.get(LATENCY_RULE).level
    return [
        Evidence(
            rule_id=LATENCY_RULE,
            outcome="failed" if level == "MUST" else "warning",
            source=_SOURCE,
            message=f"Under load, the p95 latency was {p95:.0f} ms (5% of the answers took that long or "
            f"longer), over the budget of {load.p95_ms:g} ms (--p95-ms){first}.",
            expected=f"p95 latency at most {load.p95_ms:g} ms",
            actual=f"p95 {p95:.0f} ms (p50 {percentile(tally.latency, 0.5):.0f} ms, p99 "
            f"{percentile(tally.latency, 0.99):.0f} ms) over {tally.requests} requests"
            + (f"; slowest: {ranked}" if ranked else ""),
        )
    ]


def build_report(
    tally: LoadTally,
    *,
    settings: RunSettings,
    load: LoadSettings,
    model: TrafficModel,
    catalogue: Catalogue,
    started_at: str,
    duration_s: float,
    workers: int,
    run_id: str,
) -> RunReport:
    """The findings as a RunReport: only the rules some exchange spoke about get a result."""
    evidence: list[Evidence] = []
    for rule_id, items in tally.evidence.items():
        count = tally.broken[rule_id]
        for index, item in enumerate(items):
            found = evidence_from_json(item, source=f"{_SOURCE} #{index + 1} of {count}")
            evidence.append(found)
    for rule_id, count in tally.held.items():
        evidence.append(
            Evidence(
                rule_id=rule_id,
                outcome="passed",
                source=_SOURCE,
                message=f"The rule held for {count} exchange{'s' if count != 1 else ''} under load.",
            )
        )
    evidence += _duplicate_ids(tally)
    evidence += _latency(tally, load, catalogue)
    spoken = {item.rule_id for item in evidence}
    not_seen = [rule.id for rule in catalogue if rule.id not in spoken]
    report = judgements.run_report(
        (),
        source=_SOURCE,
        noun="exchange",
        catalogue=catalogue,
        target=settings.base_url,
        started_at=started_at,
        duration_s=duration_s,
        settings={
            "base_url": settings.base_url,
            "api_key_header": settings.api_key_header,
            "run_id": run_id,
            "tag": settings.tag,
            "profile": model.profile,
            "users": load.users,
            "spawn_rate": load.spawn_rate,
            "duration_s": load.duration_s,
            "p95_ms": load.p95_ms,
            "max_writes": settings.max_writes,
            "writes": tally.writes,
            "writes_capped": tally.writes_capped,
            "workers": workers,
            "actions": dict(tally.actions),
            "no_answer": tally.no_answer,
            "not_seen": not_seen,
        },
        extra=evidence,
        requests={"load": tally.requests},
    )
    created: dict[tuple[str, str], CreatedRecord] = {}
    for kind, record_id, via, _ in tally.created:
        created.setdefault((kind, record_id), CreatedRecord(kind=kind, id=record_id, via=via))
    failures = tally.no_answer + tally.must_broken
    return replace(
        report,
        profile=f"load ({model.profile})",
        created=tuple(created.values()),
        rate_limited=tally.rate_limited,
        load=LoadSummary(
            users=load.users,
            spawn_rate=load.spawn_rate,
            duration_s=duration_s,
            workers=workers,
            requests=tally.requests,
            failures=failures,
            requests_per_s=round(tally.requests / max(1e-6, duration_s), 1),
            p50_ms=percentile(tally.latency, 0.50),
            p95_ms=percentile(tally.latency, 0.95),
            p99_ms=percentile(tally.latency, 0.99),
            p95_budget_ms=load.p95_ms,
            points=tally.points(),
        ),
    )


def write_timeline(report: RunReport, path: Path) -> Path:
    """load-timeline.csv: one row per second of the run (requests/s, failures, latency percentiles)."""
    assert report.load is not None
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["second", "requests_per_s", "failures", "p50_ms", "p95_ms", "p99_ms"])
        for point in report.load.points:
            writer.writerow(
                [point.second, point.requests, point.failures, point.p50_ms, point.p95_ms, point.p99_ms]
            )
    return path


def summary_lines(outcome: LoadOutcome, catalogue: Catalogue) -> list[str]:
    """The end of a load run: throughput and latency, the rules broken, the rules not seen, the outcome."""
    report = outcome.report
    summary = report.load
    assert summary is not None
    lines = [
        f"{summary.requests} requests in {summary.duration_s:.1f} s ({summary.requests_per_s:g} req/s, "
        f"{summary.workers or 1} process{'es' if summary.workers > 1 else ''}): p50 {summary.p50_ms:.0f} ms, "
        f"p95 {summary.p95_ms:.0f} ms (budget {summary.p95_budget_ms:g} ms), p99 {summary.p99_ms:.0f} ms; "
        f"{summary.failures} exchanges got no answer or broke a MUST rule's judge."
    ]
    marks = {"failed": "✗", "warning": "!"}
    for result in report.results:
        if result.outcome in marks:
            first = result.failures[0]
            count = outcome.tally.broken.get(result.rule.id, 0) or len(result.failures)
            lines.append(
                f"{marks[result.outcome]} {result.rule.id} ({result.rule.level}, {count} finding"
                f"{'s' if count != 1 else ''}): {judgements.one_line(first.message, 200)}"
            )
    held = sum(1 for result in report.results if result.outcome == "passed")
    not_seen = list(report.settings.get("not_seen", ()))  # type: ignore[call-overload]
    must = sum(1 for rule_id in not_seen if catalogue.get(rule_id).level == "MUST")
    lines.append(
        f"{held} rules held for every exchange that spoke about them; not seen (not judged, not passed): "
        f"{len(not_seen)} of {len(catalogue)} rules, {must} of them MUST."
    )
    if report.settings.get("writes_capped"):
        lines.append(
            f"--max-writes {report.settings.get('max_writes')} was reached: later writes were not sent."
        )
    if report.created:
        kinds = Counter(record.kind for record in report.created)
        listed = ", ".join(
            f"{n} {_PLURALS.get(kind, kind + 's') if n != 1 else kind}" for kind, n in kinds.items()
        )
        lines.append(
            f"The load created {listed} on the server, all tagged '{report.settings.get('tag')}-"
            f"{report.settings.get('run_id')}'; report.json lists them for cleanup."
        )
    if outcome.broke_a_must:
        lines.append("FAILED: a MUST rule broke under load.")
    else:
        lines.append(
            "No MUST rule broke under load. That is not a PASSED verdict on every rule: load judges what its "
            "traffic exercises; enginy-conformance run probes every other rule."
        )
    return lines
