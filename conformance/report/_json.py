"""report.json: the complete, versioned, machine-readable record of a run (see docs/report-format.md).

Every other format can be rebuilt from this document; it is validated in the tests against the JSON
Schema shipped next to this module (report.schema.json).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from conformance.baseline import describe_mark
from conformance.exit_codes import for_report
from conformance.report._common import (
    curl_command,
    family,
    key_header,
    not_judged_reason,
    scrub_settings,
    unicode_safe,
)
from conformance.results import (
    BaselineMark,
    Evidence,
    Exchange,
    LoadSummary,
    RecordedRequest,
    RecordedResponse,
    Result,
    RunReport,
)

__all__ = ["FORMAT", "REPORT_SCHEMA_PATH", "VERSION", "to_document", "write_json"]

FORMAT: Final = "enginy-conformance-report"
# Bump on any change that can break a reader (a field removed, renamed or retyped); adding is not one.
VERSION: Final = 3
REPORT_SCHEMA_PATH: Final = Path(__file__).with_name("report.schema.json")


def _request(request: RecordedRequest) -> dict[str, Any]:
    return {
        "method": request.method,
        "url": request.url,
        "headers": dict(request.headers),
        "body": request.body,
    }


def _response(response: RecordedResponse | None) -> dict[str, Any] | None:
    if response is None:
        return None
    return {
        "status": response.status,
        "headers": dict(response.headers),
        "body": response.body,
        "elapsed_ms": response.elapsed_ms,
    }


def _exchange(exchange: Exchange, header: str) -> dict[str, Any]:
    return {
        "request": _request(exchange.request),
        "response": _response(exchange.response),
        "error": exchange.error,
        "curl": curl_command(exchange.request, key_header=header),
    }


def _evidence(item: Evidence, header: str) -> dict[str, Any]:
    return {
        "outcome": item.outcome,
        "source": item.source,
        "message": item.message,
        "expected": item.expected,
        "actual": item.actual,
        "root_cause": item.root_cause,
        "gap": item.gap,
        "exchanges": [_exchange(exchange, header) for exchange in item.exchanges],
    }


def _mark(mark: BaselineMark | None) -> dict[str, Any] | None:
    if mark is None:
        return None
    return {
        "status": mark.status,
        "reason": mark.reason,
        "expires": mark.expires.isoformat() if mark.expires is not None else None,
        "note": describe_mark(mark),
    }


def _result(result: Result, header: str) -> dict[str, Any]:
    rule = result.rule
    return {
        "rule": rule.id,
        "level": rule.level,
        "family": family(rule.id),
        # What the run saw, also when the baseline accepts it (then `baseline.status` is "accepted").
        "outcome": result.outcome,
        "baseline": _mark(result.baseline),
        "statement": rule.statement,
        "operations": list(rule.operations),
        "source": {"document": rule.source.document, "quote": rule.source.quote},
        "evidence": [_evidence(item, header) for item in result.evidence],
    }


def _baseline(report: RunReport) -> dict[str, Any] | None:
    if report.baseline is None:
        return None
    by_status: dict[str, list[str]] = {"accepted": [], "expired": [], "stale": [], "not_judged": []}
    for result in report.results:
        if result.baseline is not None:
            by_status[result.baseline.status].append(result.rule.id)
    return {"path": report.baseline.path, **by_status, "not_selected": list(report.baseline.not_selected)}


def to_document(report: RunReport) -> dict[str, Any]:
    """The report as JSON-ready data (results in the order the run judged them)."""
    header = key_header(report)
    return {
        "format": FORMAT,
        "version": VERSION,
        "verdict": report.verdict,
        "exit_code": for_report(report),
        "interrupted": report.interrupted,
        "not_judged": [
            {"rule": result.rule.id, "reason": not_judged_reason(result)} for result in report.not_judged
        ],
        "target": report.target,
        "profile": report.profile,
        "started_at": report.started_at,
        "duration_s": report.duration_s,
        "summary": {
            "total": len(report.results),
            "passed": report.count("passed"),
            "failed": report.count("failed"),
            "warning": report.count("warning"),
            "skipped": report.count("skipped"),
            "accepted": len(report.accepted),
        },
        "baseline": _baseline(report),
        "results": [_result(result, header) for result in report.results],
        "created": [{"kind": record.kind, "id": record.id, "via": record.via} for record in report.created],
        "untagged_records": report.untagged,
        "requests": {"scripted": 0, **dict(report.requests), "total": sum(report.requests.values())},
        "rate_limited": report.rate_limited,
        "settings": scrub_settings(report.settings),
        "tool_versions": dict(report.tool_versions),
        **({"load": _load(report.load)} if report.load is not None else {}),
    }


def _load(load: LoadSummary) -> dict[str, Any]:
    """What `enginy-conformance load` measured: throughput and latency, overall and per second."""
    return {
        "users": load.users,
        "spawn_rate": load.spawn_rate,
        "duration_s": load.duration_s,
        "workers": load.workers,
        "requests": load.requests,
        "failures": load.failures,
        "requests_per_s": load.requests_per_s,
        "p50_ms": load.p50_ms,
        "p95_ms": load.p95_ms,
        "p99_ms": load.p99_ms,
        "p95_budget_ms": load.p95_budget_ms,
        "p95_within_budget": load.p95_ms <= load.p95_budget_ms,
        "timeline": [
            {
                "second": point.second,
                "requests": point.requests,
                "failures": point.failures,
                "p50_ms": point.p50_ms,
                "p95_ms": point.p95_ms,
                "p99_ms": point.p99_ms,
            }
            for point in load.points
        ],
    }


def _clean(value: Any) -> Any:
    # Lone surrogates (from fuzzed text) cannot be written as UTF-8; everything else is kept as is.
    if isinstance(value, str):
        return unicode_safe(value)
    if isinstance(value, dict):
        return {unicode_safe(str(key)): _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


def write_json(report: RunReport, path: Path) -> Path:
    # default=str: settings may hold paths or other plain values; they are shown, not interpreted.
    text = json.dumps(_clean(to_document(report)), indent=2, ensure_ascii=False, default=str)
    path.write_text(text + "\n", encoding="utf-8")
    return path
