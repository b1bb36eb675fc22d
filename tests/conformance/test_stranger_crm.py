"""The suite against a server it was not written with: `stranger_crm.py`, built from the docs alone.

stranger_crm makes choices the docs allow and the mock does not (201 for every create, "1"/"2" and UUID
ids, +00:00 millisecond timestamps, no completedAt on open tasks outside GET, {"error"} bodies, an HTML
404 page, no /users, sync by email/LinkedIn/domain only, {crmId, success} PUT results, storage-order
batch reads, extra fields, no type checks on optional fields). Every one of those must pass.

Current honest state (see the report handed to the suite's maintainers):

* RESPONSE-SCHEMA (MUST) fails, and only because of Schemathesis' *negative* cases: the server accepts
  a schema-violating request (already reported, as the docs rank it, by the SHOULD rule
  INPUT-INVALID-REJECTED) and echoes the suite's own invalid value back (`externalId: 0` "copied from
  request", `metadata: 0`, `description: 0`), or a later GET returns a record such a request stored.
  The docs define answers to requests Enginy sends, not to these, so this is a false finding: the
  engine routes response_schema_conformance failures of negative cases to RESPONSE-SCHEMA.
* Every scripted (docs-driven) check passes, and nothing else fails.

When the suite stops judging answers to invalid requests under RESPONSE-SCHEMA, `KNOWN_FALSE_MUST`
becomes empty and this test demands exit code 0; until then it pins exactly that one known failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

from click.testing import CliRunner

from conformance.cli import cli

# Long enough to appear in no answer: the client redacts the key inside reply bodies *before* the
# checks read them, so a one-letter key such as "k" turns "linkedin" into "lin[REDACTED]edin" and
# CONTACT-SYNC-MATCHES-LINKEDIN warns for nothing (reported to the maintainers as well).
KEY = "stranger-key-5f0c9e2a71"
SEED = "20240115"
KNOWN_FALSE_MUST = {"RESPONSE-SCHEMA"}  # empty it once the suite's fix lands


def _load_stranger() -> ModuleType:
    path = Path(__file__).with_name("stranger_crm.py")
    spec = importlib.util.spec_from_file_location("stranger_crm", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("stranger_crm", module)
    spec.loader.exec_module(module)
    return module


def test_the_suite_passes_a_docs_conformant_stranger(tmp_path: Path) -> None:
    server, thread = _load_stranger().serve(0, KEY)
    try:
        base_url = f"http://127.0.0.1:{server.server_address[1]}"
        env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("ENGINY_")}
        env["ENGINY_API_KEY"] = KEY
        result = CliRunner().invoke(
            cli,
            [
                "run",
                "--base-url",
                base_url,
                "--profile",
                "quick",
                "--seed",
                SEED,
                "--report-dir",
                str(tmp_path),
            ],
            env=env,
            catch_exceptions=False,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    outcomes = {item["rule"]: item for item in report["results"]}
    failed_must = {rule for rule, item in outcomes.items() if item["outcome"] == "failed"}
    warned = {rule for rule, item in outcomes.items() if item["outcome"] == "warning"}

    # The only SHOULD the stranger breaks on purpose: it does not type-check optional fields.
    assert warned == {"INPUT-INVALID-REJECTED"}, result.output
    assert failed_must == KNOWN_FALSE_MUST, result.output
    if not KNOWN_FALSE_MUST:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 1, result.output
    # Pin the false finding to its cause: no scripted check saw it, only generated (negative) cases did,
    # and every request behind it is one INPUT-INVALID-REJECTED also flags, or a GET of what one stored.
    evidence = [item for item in outcomes["RESPONSE-SCHEMA"]["evidence"] if item["outcome"] == "failed"]
    assert evidence, result.output
    assert all(item["source"].startswith("schemathesis:") for item in evidence), evidence
    rejected_ops = {
        item["message"].split(" on ", 1)[1].split(":", 1)[0]
        for item in outcomes["INPUT-INVALID-REJECTED"]["evidence"]
        if item["outcome"] == "warning"
    }
    for item in evidence:
        operation = item["message"].split(" on ", 1)[1].split(":", 1)[0]
        assert operation in rejected_ops or operation == "GET /tasks/{taskId}", item["message"]
