"""Imported once by generated testing's fork server (conformance.engine_parallel): warms it up.

A worker process's first share costs about two seconds of CPU before it sends anything: Schemathesis
and Hypothesis import modules and fill caches on first use. Paid by every worker on a 2-core CI box,
that is as long as the waiting the workers exist to overlap. So the fork server, from which every
worker is forked, runs a tiny pass first, against an in-memory application that answers `{}` to
everything: no network, no server. Importing this module anywhere else runs that pass too, for nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from conformance.engine import BUDGETS, Budget, Job, Share, run_share
from conformance.settings import RunSettings

__all__ = ["warm_up"]


def _answer_anything(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b"{}"]


def warm_up() -> None:
    job = Job(
        settings=RunSettings(base_url="http://warm-up.invalid", api_key="warm-up-only"),
        rule_ids=("SERVER-NO-5XX", "RESPONSE-SCHEMA"),
        checks=("not_a_server_error", "response_schema_conformance"),
        budget=Budget(max_examples=1, stateful_steps=2, phases=BUDGETS["quick"].phases),
        run_id="warm-up",
    )
    for share in (
        Share(("checkHealth",), ("coverage", "fuzzing"), 1),
        Share(("createTask",), ("coverage", "fuzzing"), 1),
        Share(None, ("stateful",), 1),
    ):
        run_share(job, share, quiet=True, app=_answer_anything)


warm_up()
