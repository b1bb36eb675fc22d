"""conformance.judges: the one place that decides each rule one request and its answer can show.

The scripted checks, their side evidence, replay and the proxy all ask these judges; the tests below
bend a judge and watch the scripted suite follow it, which it only does if it never decides on its own.
"""

from __future__ import annotations

import pytest

from conformance import judges
from conformance.judges import BY_RULE, JUDGES, Judge, Seen
from conformance.results import RuleViolation
from enginy_spec import load_catalogue


def test_every_judge_speaks_about_one_rule_of_the_catalogue_and_no_rule_has_two() -> None:
    ids = [judge.rule_id for judge in JUDGES]
    assert len(ids) == len(set(ids))
    assert set(ids) <= set(load_catalogue().ids)
    assert list(BY_RULE) == ids


@pytest.mark.parametrize("rule_id", [judge.rule_id for judge in JUDGES])
def test_the_scripted_suite_follows_the_rules_single_exchange_judge(
    rule_id, fake_crm, judge, outcomes, monkeypatch
) -> None:
    crm = fake_crm()
    assert outcomes(judge(crm.url, rule_id))[rule_id] == "passed"

    def bent(seen: Seen) -> None:
        raise RuleViolation(
            rule_id, message="bent judge", expected="-", actual="-", exchanges=[seen.reply.exchange]
        )

    monkeypatch.setitem(judges.BY_RULE, rule_id, Judge(rule_id, bent))
    assert outcomes(judge(crm.url, rule_id))[rule_id] in ("failed", "warning")
