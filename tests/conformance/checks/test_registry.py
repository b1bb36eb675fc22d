"""The registry of checks: complete, refusing bad registrations, and its plans matching real runs."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from conformance.checks import (
    CHECKS,
    FIXTURES,
    LOAD_ONLY,
    SCHEMATHESIS_ONLY,
    Registry,
    RegistryError,
    is_iso8601_datetime,
)
from conformance.runner import plan_run
from conformance.settings import RunSettings
from enginy_spec import load_catalogue, operations


def test_every_scriptable_rule_has_exactly_one_check():
    catalogue = load_catalogue()
    scriptable = {rule.id for rule in catalogue} - SCHEMATHESIS_ONLY - LOAD_ONLY
    assert set(CHECKS.ids) == scriptable
    assert len(CHECKS.ids) == len(set(CHECKS.ids))
    assert set(catalogue.ids) >= SCHEMATHESIS_ONLY | LOAD_ONLY and not SCHEMATHESIS_ONLY & LOAD_ONLY


def test_check_names_say_what_must_hold():
    for registered in CHECKS:
        assert registered.function.__doc__ is None or registered.function.__doc__.strip()
        assert not registered.name.startswith("check_"), registered.name


@pytest.mark.parametrize(
    ("rule_id", "message"),
    [
        ("NOT-A-RULE", "not in rules.yaml"),
        ("SERVER-NO-5XX", "Schemathesis alone"),
        ("LOAD-P95-LATENCY", "only enginy-conformance load judges"),
        ("HEALTH-OK", "both judge"),
    ],
)
def test_bad_registrations_are_refused(rule_id, message):
    registry = Registry(load_catalogue().ids, excluded=SCHEMATHESIS_ONLY, load_only=LOAD_ONLY)

    @registry.check("HEALTH-OK")
    def health_is_fine(ctx):
        return None

    with pytest.raises(RegistryError, match=message):

        @registry.check(rule_id)
        def another(ctx):
            return None


def test_the_global_registry_can_be_restored():
    snapshot = CHECKS.snapshot()
    try:
        CHECKS.restore({})
        assert len(CHECKS) == 0
    finally:
        CHECKS.restore(snapshot)
    assert len(CHECKS) == len(snapshot)


def test_fixture_plans_name_known_fixtures():
    for registered in CHECKS:
        assert set(registered.uses) <= set(FIXTURES), registered.rule_id
    for plan in FIXTURES.values():
        assert set(plan.needs) <= set(FIXTURES), plan.name


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-15T10:00:00Z",
        "2024-01-15T10:00:00+01:00",
        "2024-01-15T10:00:00.123-0530",
        "2024-01-15T10:00Z",
        "2024-01-15t10:00:00z",
        "20240115T100000Z",
        "2024-01-15T10:00:00",
        "2024-01-15T10:00:00,5Z",
        "2016-12-31T23:59:60Z",
    ],
)
def test_iso_8601_date_times_are_accepted(value):
    assert is_iso8601_datetime(value)


@pytest.mark.parametrize(
    "value",
    [
        None,
        1705312800,
        "",
        "2024-01-15",
        "Mon, 15 Jan 2024 11:30:00 GMT",
        "15/01/2024 10:00",
        "2024-13-01T00:00:00Z",
        "2024-02-30T10:00:00Z",
        "2024-01-15T25:00:00Z",
        "2024-01-15 10:00:00Z",
        "yesterday",
    ],
)
def test_other_values_are_not_iso_8601_date_times(value):
    assert not is_iso8601_datetime(value)


def _template(path: str) -> str:
    path = path.split("?", 1)[0]
    if path == "/tasks/batch":
        return path
    return re.sub(r"^/tasks/[^/]+$", "/tasks/{taskId}", path)


@pytest.mark.parametrize("rule_id", CHECKS.ids)
def test_the_dry_run_plan_is_what_a_run_sends(fake_crm, judge, rule_id):
    """Each check, run alone against a conformant server, sends exactly the requests its plan declares."""
    crm = fake_crm()
    judge(crm.url, rule_id)
    sent = Counter(
        f"{r.method} {_template(r.path)}" for r in crm.app.seen[1:]
    )  # [0] is the GET /health probe
    plan = plan_run(RunSettings(base_url=crm.url, api_key="k", only=(rule_id,)))
    planned = Counter()
    for item in plan.requests:
        planned[f"{item.method} {item.path}"] += item.count
    assert sent == planned


def test_the_plan_covers_every_operation_of_the_spec():
    plan = plan_run(RunSettings(base_url="http://x", api_key="k"))
    planned = {f"{item.method} {item.path}" for item in plan.requests}
    assert planned == {f"{op.method} {op.path}" for op in operations().values()}
