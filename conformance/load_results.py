"""What one Locust process of `enginy-conformance load` saw, in a shape that merges and travels as JSON.

    each Locust process: LoadTally (per rule held/broken, timeline, created ids, writes)
        → to_json → (a worker) a Locust message to the master, merged there with `merge`
        → (the master or the local process) a JSON file → the CLI process: `LoadTally.from_json`

Nothing here imports Locust or gevent, so the CLI process (never monkey-patched) reads the same
structure the Locust processes write. Evidence travels as plain dicts (`evidence_json`), turned back
into `conformance.results.Evidence` by `evidence_from_json`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from conformance.results import Evidence, Exchange, RecordedRequest, RecordedResponse, TimePoint

__all__ = [
    "MAX_EVIDENCE",
    "LoadTally",
    "TimePoint",
    "bucket_ms",
    "evidence_from_json",
    "evidence_json",
    "exchange_from_json",
    "exchange_json",
    "percentile",
]

# Findings kept per rule and process: enough to show what broke, while a server breaking a rule on
# every one of 50,000 requests cannot fill the memory or the report.
MAX_EVIDENCE: Final = 3
Histogram = dict[int, int]


def bucket_ms(ms: float) -> int:
    """A latency rounded as Locust rounds its own (exact below 100 ms, then 2 significant digits), so
    a histogram of a long run stays small."""
    if ms < 100:
        return round(ms)
    if ms < 1000:
        return int(round(ms, -1))
    return int(round(ms, -2))


def percentile(histogram: Mapping[int, int], share: float) -> float:
    """The latency below which `share` (0..1) of the requests of the histogram fell (0 when empty)."""
    total = sum(histogram.values())
    if total == 0:
        return 0.0
    wanted = max(1, math.ceil(total * share))
    seen = 0
    for ms in sorted(histogram):
        seen += histogram[ms]
        if seen >= wanted:
            return float(ms)
    return float(max(histogram))


def exchange_json(exchange: Exchange) -> dict[str, Any]:
    request = exchange.request
    response = exchange.response
    return {
        "request": {
            "method": request.method,
            "url": request.url,
            "headers": dict(request.headers),
            "body": request.body,
        },
        "response": None
        if response is None
        else {
            "status": response.status,
            "headers": dict(response.headers),
            "body": response.body,
            "elapsed_ms": response.elapsed_ms,
        },
        "error": exchange.error,
    }


def exchange_from_json(data: Mapping[str, Any]) -> Exchange:
    request = data["request"]
    response = data.get("response")
    return Exchange(
        request=RecordedRequest(
            method=request["method"], url=request["url"], headers=request["headers"], body=request["body"]
        ),
        response=None
        if response is None
        else RecordedResponse(
            status=response["status"],
            headers=response["headers"],
            body=response["body"],
            elapsed_ms=response["elapsed_ms"],
        ),
        error=data.get("error"),
    )


def evidence_json(
    rule_id: str, outcome: str, message: str, expected: str, actual: str, exchanges: Iterable[Exchange]
) -> dict[str, Any]:
    return {
        "rule_id": rule_id,
        "outcome": outcome,
        "message": message,
        "expected": expected,
        "actual": actual,
        "exchanges": [exchange_json(exchange) for exchange in exchanges],
    }


def evidence_from_json(data: Mapping[str, Any], *, source: str) -> Evidence:
    return Evidence(
        rule_id=data["rule_id"],
        outcome=data["outcome"],
        source=source,
        message=data["message"],
        expected=data["expected"],
        actual=data["actual"],
        exchanges=tuple(exchange_from_json(item) for item in data["exchanges"]),
    )


def _merge_histograms(into: Histogram, other: Mapping[Any, int]) -> None:
    for ms, count in other.items():
        key = int(ms)
        into[key] = into.get(key, 0) + int(count)


@dataclass
class LoadTally:
    """Everything one process (or, merged, the whole run) saw under load.

    `held` counts the exchanges each rule held for; `broken` counts those it broke for, and `evidence`
    keeps the first MAX_EVIDENCE findings per rule. `timeline` is per wall-clock second: requests,
    failures (no answer, or a MUST rule broken) and a latency histogram; `endpoints` is a latency
    histogram per "METHOD /path", so a p95 over the budget can name the endpoints that were slow.
    `created` lists every record a create acknowledged as [kind, id, via, process], for cleanup and for
    the ids-distinct invariant.
    """

    requests: int = 0
    no_answer: int = 0
    rate_limited: int = 0
    writes: int = 0
    writes_capped: bool = False
    must_broken: int = 0  # exchanges that broke a MUST rule
    held: Counter[str] = field(default_factory=Counter)
    broken: Counter[str] = field(default_factory=Counter)
    evidence: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    latency: Histogram = field(default_factory=dict)
    endpoints: dict[str, Histogram] = field(default_factory=dict)
    timeline: dict[int, list[Any]] = field(default_factory=dict)
    created: list[list[str]] = field(default_factory=list)
    actions: Counter[str] = field(default_factory=Counter)
    no_answer_notes: list[str] = field(default_factory=list)
    processes: int = 1

    def add_request(self, *, at: float, elapsed_ms: float, failed: bool, endpoint: str = "") -> None:
        self.requests += 1
        ms = bucket_ms(elapsed_ms)
        self.latency[ms] = self.latency.get(ms, 0) + 1
        if endpoint:
            histogram = self.endpoints.setdefault(endpoint, {})
            histogram[ms] = histogram.get(ms, 0) + 1
        second = self.timeline.setdefault(int(at), [0, 0, {}])
        second[0] += 1
        second[1] += 1 if failed else 0
        second[2][ms] = second[2].get(ms, 0) + 1

    def add_finding(self, finding: dict[str, Any]) -> None:
        rule_id = finding["rule_id"]
        self.broken[rule_id] += 1
        kept = self.evidence.setdefault(rule_id, [])
        if len(kept) < MAX_EVIDENCE:
            kept.append(finding)

    def merge(self, other: LoadTally) -> None:
        self.requests += other.requests
        self.no_answer += other.no_answer
        self.rate_limited += other.rate_limited
        self.writes += other.writes
        self.writes_capped = self.writes_capped or other.writes_capped
        self.must_broken += other.must_broken
        self.held.update(other.held)
        self.broken.update(other.broken)
        for rule_id, items in other.evidence.items():
            kept = self.evidence.setdefault(rule_id, [])
            kept.extend(items[: max(0, MAX_EVIDENCE - len(kept))])
        _merge_histograms(self.latency, other.latency)
        for endpoint, histogram in other.endpoints.items():
            _merge_histograms(self.endpoints.setdefault(endpoint, {}), histogram)
        for second, (count, failures, histogram) in other.timeline.items():
            mine = self.timeline.setdefault(int(second), [0, 0, {}])
            mine[0] += count
            mine[1] += failures
            _merge_histograms(mine[2], histogram)
        self.created.extend(other.created)
        self.actions.update(other.actions)
        self.no_answer_notes.extend(other.no_answer_notes[: max(0, 5 - len(self.no_answer_notes))])
        self.processes += other.processes

    def points(self) -> tuple[TimePoint, ...]:
        """The timeline, one point per second from the first second anything was answered."""
        if not self.timeline:
            return ()
        start = min(self.timeline)
        points = []
        for second in range(start, max(self.timeline) + 1):
            count, failures, histogram = self.timeline.get(second, [0, 0, {}])
            points.append(
                TimePoint(
                    second=second - start,
                    requests=count,
                    failures=failures,
                    p50_ms=percentile(histogram, 0.50),
                    p95_ms=percentile(histogram, 0.95),
                    p99_ms=percentile(histogram, 0.99),
                )
            )
        return tuple(points)

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "no_answer": self.no_answer,
            "rate_limited": self.rate_limited,
            "writes": self.writes,
            "writes_capped": self.writes_capped,
            "must_broken": self.must_broken,
            "held": dict(self.held),
            "broken": dict(self.broken),
            "evidence": self.evidence,
            # JSON and msgpack keys: strings
            "latency": {str(ms): n for ms, n in self.latency.items()},
            "endpoints": {
                endpoint: {str(ms): n for ms, n in histogram.items()}
                for endpoint, histogram in self.endpoints.items()
            },
            "timeline": {
                str(second): [count, failures, {str(ms): n for ms, n in histogram.items()}]
                for second, (count, failures, histogram) in self.timeline.items()
            },
            "created": self.created,
            "actions": dict(self.actions),
            "no_answer_notes": self.no_answer_notes,
            "processes": self.processes,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoadTally:
        tally = cls(
            requests=int(data["requests"]),
            no_answer=int(data["no_answer"]),
            rate_limited=int(data["rate_limited"]),
            writes=int(data["writes"]),
            writes_capped=bool(data["writes_capped"]),
            must_broken=int(data["must_broken"]),
            held=Counter({str(k): int(v) for k, v in data["held"].items()}),
            broken=Counter({str(k): int(v) for k, v in data["broken"].items()}),
            evidence={str(k): list(v) for k, v in data["evidence"].items()},
            created=[list(item) for item in data["created"]],
            actions=Counter({str(k): int(v) for k, v in data["actions"].items()}),
            no_answer_notes=list(data["no_answer_notes"]),
            processes=int(data["processes"]),
        )
        _merge_histograms(tally.latency, data["latency"])
        for endpoint, histogram in data.get("endpoints", {}).items():
            _merge_histograms(tally.endpoints.setdefault(str(endpoint), {}), histogram)
        for second, (count, failures, histogram) in data["timeline"].items():
            merged: Histogram = {}
            _merge_histograms(merged, histogram)
            tally.timeline[int(second)] = [int(count), int(failures), merged]
        return tally
