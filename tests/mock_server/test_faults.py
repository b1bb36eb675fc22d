"""The fault registry, the selection syntax, the seeded state, and the transport faults in-process."""

from __future__ import annotations

import time

import pytest

from enginy_spec import load_catalogue
from mock_server.errors import FaultSpecError
from mock_server.faults import FAULTS, Fault, FaultRegistry, FaultState, parse_fault, parse_faults


def test_rule_faults_are_named_by_catalogue_rules_and_declare_only_catalogue_rules():
    catalogue = load_catalogue()
    for fault in FAULTS:
        assert all(rule in catalogue for rule in fault.also_breaks), fault.id
        if fault.kind == "rule":
            assert fault.id in catalogue and fault.rule == fault.id and not fault.params
        elif fault.kind == "concurrency":  # named like a transport fault; the rule it breaks is named in it
            assert fault.rule in catalogue and fault.id == fault.id.lower(), fault.id
        else:
            assert fault.rule is None and fault.id == fault.id.lower()


def test_every_catalogue_rule_has_a_fault():
    assert set(load_catalogue().ids) <= set(FAULTS.ids)


def test_registry_refuses_duplicates():
    fault = Fault(id="x", kind="transport", description="d")
    with pytest.raises(ValueError, match="registered twice"):
        FaultRegistry([fault, fault])


def test_ids_match_case_insensitively_and_unknown_ids_suggest_close_matches():
    assert FAULTS.get("task-batch-route").id == "TASK-BATCH-ROUTE"
    assert FAULTS.get("LATENCY").id == "latency"
    with pytest.raises(
        FaultSpecError, match=r"Unknown fault 'TASK-BATCH-ROTE'\. Did you mean TASK-BATCH-ROUTE"
    ):
        FAULTS.get("TASK-BATCH-ROTE")
    with pytest.raises(FaultSpecError, match="lists all 62"):
        FAULTS.get("zzz")


def test_parse_fills_defaults_and_reads_parameters():
    assert parse_fault("latency").params == {"ms": 200, "jitter": 0}
    selection = parse_fault(" latency:ms=150, jitter=20 ")
    assert selection.params == {"ms": 150, "jitter": 20}
    assert str(selection) == "latency:ms=150,jitter=20"
    assert str(parse_fault("rate-limit:rate=0.5")) == "rate-limit:rate=0.5,retry_after=1"
    assert str(parse_fault("AUTH-WRONG-KEY")) == "AUTH-WRONG-KEY"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("latency:ms=fast", "ms must be an integer, not 'fast'"),
        ("error-rate:rate=1.5", "rate must be at least 0 and at most 1"),
        ("error-rate:rate=-0.1", "rate must be at least 0"),
        ("error-rate:rat=0.1", "cannot read 'rat=0.1'; write NAME=VALUE with NAME one of rate"),
        ("error-rate:0.1", "cannot read '0.1'"),
        ("TASK-GET:x=1", "takes no parameters"),
    ],
)
def test_parse_errors_are_sentences(text, message):
    with pytest.raises(FaultSpecError, match=message):
        parse_fault(text)


def test_naming_a_fault_twice_keeps_the_last_parameters():
    selections = parse_faults(["latency:ms=1", "TASK-GET", "latency:ms=2", ""])
    assert [str(s) for s in selections] == ["latency:ms=2,jitter=0", "TASK-GET"]


def test_state_draws_repeat_for_a_seed_and_are_independent_per_fault():
    def draws(seed, specs):
        state = FaultState(parse_faults(specs), seed=seed)
        return [state.draw("error-rate") for _ in range(5)]

    assert draws(7, ["error-rate"]) == draws(7, ["error-rate", "rate-limit"])
    assert draws(7, ["error-rate"]) != draws(8, ["error-rate"])


def test_state_refuses_unregistered_ids_so_typos_cannot_hide():
    with pytest.raises(KeyError):
        FaultState().active("TASK-BATCH-ROTE")


def test_state_replace_keeps_the_seed_unless_given():
    state = FaultState(parse_faults(["TASK-GET"]), seed=3)
    state.replace(parse_faults(["latency"]))
    assert state.seed == 3 and state.active("latency") and not state.active("TASK-GET")
    state.replace((), seed=9)
    assert state.seed == 9 and state.selections == ()


def test_error_rate_answers_503_json_with_retry_after_before_auth(make_mock):
    mock = make_mock(faults=("error-rate:rate=1",))
    result = mock.bare.simulate_get("/health")
    assert result.status_code == 503
    assert result.headers["retry-after"] == "1"
    assert result.json == {
        "error": "Service unavailable",
        "message": "The server is temporarily unavailable; retry later.",
    }
    assert mock.admin("GET", "faults").status_code == 200  # the admin API is never bent


def test_rate_limit_answers_429_with_the_configured_retry_after(make_mock):
    mock = make_mock(faults=("rate-limit:rate=1,retry_after=7",))
    result = mock.client.simulate_post("/tasks", json={"subject": "x"})
    assert result.status_code == 429 and result.headers["retry-after"] == "7"
    assert mock.journal()[0]["why"].startswith("fault rate-limit")


def test_seeded_rates_repeat_from_run_to_run(make_mock):
    def statuses(seed):
        mock = make_mock(faults=("error-rate:rate=0.5",), fault_seed=seed)
        return [mock.client.simulate_get("/health").status_code for _ in range(40)]

    first = statuses(11)
    assert first == statuses(11)
    assert first != statuses(12)
    assert 5 < first.count(503) < 35


def test_rate_zero_never_fires(make_mock):
    mock = make_mock(faults=("error-rate:rate=0", "rate-limit:rate=0", "drop-connection:rate=0"))
    assert {mock.client.simulate_get("/health").status_code for _ in range(20)} == {200}


def test_latency_delays_api_requests_only(make_mock):
    mock = make_mock(faults=("latency:ms=120",))
    started = time.perf_counter()
    assert mock.client.simulate_get("/health").status_code == 200
    assert time.perf_counter() - started >= 0.12
    started = time.perf_counter()
    mock.admin("GET", "journal")
    assert time.perf_counter() - started < 0.1
    assert mock.journal()[0]["why"] == "fault latency (120 ms)"


def test_faults_can_be_replaced_at_run_time(mock):
    assert mock.client.simulate_get("/tasks/nope").status_code == 404
    mock.set_faults("TASK-GET-UNKNOWN", "latency:ms=0", seed=5)
    assert mock.client.simulate_get("/tasks/nope").status_code == 200
    assert mock.admin("GET", "faults").json == {
        "faults": [
            {"id": "TASK-GET-UNKNOWN", "kind": "rule", "params": {}, "spec": "TASK-GET-UNKNOWN"},
            {
                "id": "latency",
                "kind": "transport",
                "params": {"ms": 0, "jitter": 0},
                "spec": "latency:ms=0,jitter=0",
            },
        ],
        "seed": 5,
    }
    mock.set_faults()
    assert mock.client.simulate_get("/tasks/nope").status_code == 404


def test_a_fault_switched_off_mid_request_answers_defaults_instead_of_failing():
    state = FaultState(parse_faults(["error-rate:rate=0.5"]))
    state.replace(())
    assert state.param("error-rate", "rate") == 0.1 and state.draw("error-rate") == 1.0
