"""The pytest plugin, through pytester: off unless its own option asks, one item per rule when on."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import pytest

from conformance.checks import LOAD_ONLY
from conformance.plugin import OPTIONS
from enginy_spec import load_catalogue

CANARY = "canary-plugin-KEY-5b2e"
SCRIPTED = "HEALTH-OK,TASK-CREATE-RETURNS-ID"
# One item per rule a run judges: the rules only `enginy-conformance load` judges are not collected.
CATALOGUE = [rule for rule in load_catalogue() if rule.id not in LOAD_ONLY]


@pytest.fixture
def clean_env(monkeypatch):
    # The plugin falls back on ENGINY_* variables, and says so when it sees ENGINY_BASE_URL: the
    # developer's own must not leak into these tests.
    for name in list(os.environ):
        if name.startswith("ENGINY_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture(scope="module")
def conformant(start_mocks):
    """The real mock, conformant, on a port of its own (its journal shows what reached it)."""
    return start_mocks()


def journal(mock):
    status, body = mock.admin("GET", "/__admin/journal")
    assert status == 200
    return json.loads(body)["entries"]


def test_inert_without_a_base_url(pytester, clean_env):
    pytester.makepyfile("def test_own():\n    assert True\n")
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1)
    assert "enginy-conformance" not in result.stdout.str()
    assert "test_rule" not in result.stdout.str()


def test_the_command_lines_environment_alone_leaves_it_off_and_sends_nothing(pytester, clean_env, conformant):
    conformant.reset()
    clean_env.setenv("ENGINY_BASE_URL", conformant.url)
    clean_env.setenv("ENGINY_API_KEY", conformant.key)
    pytester.makepyfile("def test_own():\n    assert True\n")
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["enginy-conformance: off; ENGINY_BASE_URL is the command line's setting, so pass --enginy-base-url*"]
    )
    assert "test_rule" not in result.stdout.str()
    assert journal(conformant) == []


def test_options_and_ini_twins_are_documented(pytester, clean_env):
    result = pytester.runpytest("--help")
    for option in OPTIONS:
        result.stdout.fnmatch_lines([f"*{option.flag}*", f"*{option.ini} *"])
    result.stdout.fnmatch_lines(["*Enginy Custom CRM conformance*"])


def test_one_item_per_rule_with_redacted_header(pytester, clean_env, fake_crm):
    crm = fake_crm(key=CANARY)
    clean_env.setenv("ENGINY_API_KEY", CANARY)
    result = pytester.runpytest("-v", f"--enginy-base-url={crm.url}", f"--enginy-only={SCRIPTED}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "enginy-conformance: base-url *127.0.0.1* (--enginy-base-url), api-key [[]REDACTED[]] "
            "(ENGINY_API_KEY in the environment)*",
            "*collected 2 items",
            "*test_rule[[]HEALTH-OK[]] PASSED*",
            "*test_rule[[]TASK-CREATE-RETURNS-ID[]] PASSED*",
        ]
    )
    assert CANARY not in result.stdout.str() + result.stderr.str()


def test_must_fails_should_warns_skipped_skips(pytester, clean_env, fake_crm):
    def broken(request, answer):
        if request.method == "GET" and request.path.startswith("/tasks/"):
            if answer[0] == 404:
                return 200, {"id": "stub"}  # TASK-GET-UNKNOWN (MUST) fails
            return answer[0], {k: v for k, v in answer[1].items() if k != "completed"}  # SHOULD warns
        if request.method == "POST" and request.path == "/activities" and answer[0] == 201:
            return 201, {"id": answer[1]["id"]}  # no subject echoed: ACTIVITY-SUBJECT-VERBATIM is skipped
        return answer

    crm = fake_crm(transform=broken)
    clean_env.setenv("ENGINY_API_KEY", crm.app.key)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest(
        "-rA",
        f"--junitxml={junit}",
        f"--enginy-base-url={crm.url}",
        "--enginy-only=TASK-GET-UNKNOWN",
        "--enginy-only=TASK-GET-COMPLETION-FIELDS,ACTIVITY-SUBJECT-VERBATIM",
    )
    result.assert_outcomes(passed=1, failed=1, skipped=1, warnings=1)
    output = result.stdout.str()
    assert "TASK-GET-UNKNOWN (MUST)" in output and "Expected: 404" in output
    assert "EnginyShouldWarning: TASK-GET-COMPLETION-FIELDS (SHOULD)" in output
    assert "ACTIVITY-SUBJECT-VERBATIM: No answer echoed the subject" in output
    assert "Traceback" not in output
    xml = junit.read_text()
    assert 'name="test_rule[TASK-GET-UNKNOWN]"' in xml and "<failure" in xml


def test_ini_twins_and_cli_over_env_over_ini(pytester, clean_env, fake_crm, closed_port):
    crm = fake_crm()
    pytester.makeini(
        f"""
        [pytest]
        enginy_base_url = {crm.url}
        enginy_api_key = {crm.app.key}
        enginy_only = HEALTH-OK
        enginy_profile = full
        enginy_timeout = 5
        """
    )
    clean_env.setenv("ENGINY_BASE_URL", f"http://127.0.0.1:{closed_port}")  # never the plugin's: ini wins
    clean_env.setenv("ENGINY_PROFILE", "quick")  # env beats ini
    result = pytester.runpytest("-v", "--enginy-only=TASK-CREATE-RETURNS-ID")  # command line beats ini
    result.stdout.fnmatch_lines(
        [
            f"*base-url {crm.url} (enginy_base_url in the ini file), api-key [[]REDACTED[]] "
            "(enginy_api_key in the ini file)*profile quick, timeout 5 s (enginy_timeout in the ini file), "
            "TASK-CREATE-RETURNS-ID*"
        ]
    )
    result.assert_outcomes(passed=1)


def test_collection_counts_the_rules_and_k_and_m_select_among_them(pytester, clean_env, closed_port):
    # --collect-only judges nothing, so a closed port is enough: had anything been sent, the session
    # would have ended with the unreachable server's error.
    clean_env.setenv("ENGINY_API_KEY", CANARY)
    base = ("--co", f"--enginy-base-url=http://127.0.0.1:{closed_port}")
    total = len(CATALOGUE)
    batch = sum(1 for rule in CATALOGUE if "TASK-BATCH" in rule.id)
    must = sum(1 for rule in CATALOGUE if rule.level == "MUST")
    assert 0 < batch < must < total

    everything = pytester.runpytest(*base)
    everything.stdout.fnmatch_lines([f"collected {total} items"])
    assert everything.ret == pytest.ExitCode.OK
    by_k = pytester.runpytest(*base, "-k", "TASK-BATCH")
    by_k.stdout.fnmatch_lines([f"collected {total} items / {total - batch} deselected / {batch} selected"])
    by_k.stdout.fnmatch_lines(["*<RuleItem test_rule[[]TASK-BATCH-ROUTE[]]>*"])
    assert "TASK-GET-UNKNOWN" not in by_k.stdout.str()
    by_m = pytester.runpytest(*base, "-m", "enginy_must")
    by_m.stdout.fnmatch_lines([f"collected {total} items / {total - must} deselected / {must} selected"])
    by_should = pytester.runpytest(*base, "-m", "enginy_should", "-q")
    by_should.stdout.fnmatch_lines([f"{total - must}/{total} tests collected ({must} deselected)*"])


def test_deselected_rules_are_not_judged(pytester, clean_env, fake_crm):
    crm = fake_crm()
    clean_env.setenv("ENGINY_API_KEY", crm.app.key)
    result = pytester.runpytest(
        "-v", f"--enginy-base-url={crm.url}", f"--enginy-only={SCRIPTED}", "-k", "HEALTH"
    )
    result.stdout.fnmatch_lines(["*collected 2 items / 1 deselected / 1 selected"])
    result.assert_outcomes(passed=1, deselected=1)
    # TASK-CREATE-RETURNS-ID would have created tasks.
    assert [r.path for r in crm.app.seen if r.method == "POST"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--enginy-base-url=ftp://x"], "--enginy-base-url must be an http"),
        (["--enginy-base-url=http://x", "--enginy-only=NOPE"], "Unknown rule id NOPE"),
        (["--enginy-base-url=http://x", "--enginy-profile=slow"], "--enginy-profile must be one of"),
        (["--enginy-base-url=http://x", "--enginy-timeout=soon"], "--enginy-timeout must be a number"),
    ],
)
def test_bad_settings_are_usage_errors_naming_their_source(pytester, clean_env, args, message):
    clean_env.setenv("ENGINY_API_KEY", "k")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def error_lines(result):
    return [line for line in result.outlines + result.errlines if "could not be judged" in line]


def test_an_unreachable_server_is_one_error_for_the_session_not_a_failure_per_rule(
    pytester, clean_env, closed_port
):
    clean_env.setenv("ENGINY_API_KEY", CANARY)
    result = pytester.runpytest(f"--enginy-base-url=http://127.0.0.1:{closed_port}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines([f"collected {len(CATALOGUE)} items"])
    assert error_lines(result) == [
        f"ERROR: enginy-conformance: The server could not be judged: Could not connect to "
        f"http://127.0.0.1:{closed_port} (connection refused); check that the server is running and that "
        "--enginy-base-url is right."
    ]
    assert "failed" not in result.parseoutcomes()
    assert (
        "FAILED" not in result.stdout.str() and "Traceback" not in result.stdout.str() + result.stderr.str()
    )
    assert CANARY not in result.stdout.str() + result.stderr.str()


def test_a_refused_key_is_one_error_naming_the_plugins_own_options(pytester, clean_env, conformant):
    clean_env.setenv("ENGINY_API_KEY", "not-" + conformant.key)
    result = pytester.runpytest(f"--enginy-base-url={conformant.url}", f"--enginy-only={SCRIPTED}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    (line,) = error_lines(result)
    assert "refused the key (401)" in line
    assert "(ENGINY_API_KEY or --enginy-api-key)" in line and "(--enginy-api-key-header," in line
    assert " --api-key" not in line and "(--api-key-header" not in line


# --- durations: each rule's own time, though the suite runs once ------------------------------------

SLOW = 0.1  # seconds the mock waits before every answer


@pytest.fixture(scope="module")
def slow(start_mocks):
    return start_mocks("--fault", f"latency:ms={int(SLOW * 1000)}")


def test_each_item_takes_its_own_rules_time_not_the_runs(pytester, clean_env, slow):
    clean_env.setenv("ENGINY_API_KEY", slow.key)
    junit = pytester.path / "junit.xml"
    # One request, four and eleven, each after the other; none uses a shared fixture.
    result = pytester.runpytest(
        f"--junitxml={junit}",
        "--durations=1",
        f"--enginy-base-url={slow.url}",
        "--enginy-only=HEALTH-OK,AUTH-HEADER-CASE-INSENSITIVE,INPUT-MISSING-REQUIRED",
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*s call *enginy-conformance::test_rule[[]INPUT-MISSING-REQUIRED[]]"])
    cases = ET.parse(junit).getroot().iter("testcase")
    seconds = {case.get("name"): float(case.get("time")) for case in cases}
    one = seconds["test_rule[HEALTH-OK]"]
    four = seconds["test_rule[AUTH-HEADER-CASE-INSENSITIVE]"]
    eleven = seconds["test_rule[INPUT-MISSING-REQUIRED]"]
    # JUnit keeps milliseconds, so rules of equal cost could tie: these differ by whole requests.
    assert SLOW <= one < 4 * SLOW <= four < 11 * SLOW <= eleven
    assert one < eleven / 3  # the run's time is carried neither by the first rule nor by each rule
    assert sum(seconds.values()) < 2 * eleven  # so their sum is not three times the run


# --- a baseline (--enginy-baseline, enginy_baseline) ----------------------------------------------------

ACCEPTED = "TASK-GET-UNKNOWN"
EXPIRED = "TASK-CREATE-RETURNS-ID"


@pytest.fixture(scope="module")
def broken(start_mocks):
    """The real mock, breaking two MUST rules."""
    return start_mocks("--fault", ACCEPTED, "--fault", EXPIRED)


def write_baseline(path, *entries):
    path.write_text(json.dumps({"version": 1, "accepted": list(entries)}), encoding="utf-8")
    return path


def test_an_accepted_failure_is_xfail_an_expired_one_fails_a_stale_one_warns(pytester, clean_env, broken):
    clean_env.setenv("ENGINY_API_KEY", broken.key)
    write_baseline(
        pytester.path / "known.json",
        {"rule": ACCEPTED, "reason": "fixed by CRM-812", "expires": "2099-12-31"},
        {"rule": EXPIRED, "reason": "ids come later", "expires": "2020-01-01"},
        {"rule": "HEALTH-OK", "reason": "was down in March"},
    )
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest(
        "-rA",
        f"--junitxml={junit}",
        f"--enginy-base-url={broken.url}",
        f"--enginy-only={ACCEPTED},{EXPIRED},HEALTH-OK",
        "--enginy-baseline=known.json",
    )
    result.assert_outcomes(passed=1, failed=1, xfailed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*enginy-conformance: base-url*, baseline known.json (--enginy-baseline)*",
            f"XFAIL *test_rule[[]{ACCEPTED}[]]*{ACCEPTED} (failed): Accepted by the baseline until "
            "2099-12-31: fixed by CRM-812*",
            f"FAILED *test_rule[[]{EXPIRED}[]]*",
        ]
    )
    output = result.stdout.str()
    assert "The baseline entry for it expired on 2020-01-01, so this failure counts again" in output
    assert "EnginyBaselineWarning: HEALTH-OK: The rule holds now: its baseline entry can be removed" in output
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    xml = junit.read_text(encoding="utf-8")
    assert f'name="test_rule[{ACCEPTED}]"' in xml and 'type="pytest.xfail"' in xml


def test_a_run_whose_only_failure_is_accepted_exits_0_with_the_ini_twin(pytester, clean_env, broken):
    clean_env.setenv("ENGINY_API_KEY", broken.key)
    write_baseline(pytester.path / "known.json", {"rule": ACCEPTED, "reason": "fixed by CRM-812"})
    pytester.makeini(f"[pytest]\nenginy_base_url = {broken.url}\nenginy_baseline = known.json\n")
    without = pytester.runpytest(f"--enginy-only={ACCEPTED}", "--enginy-baseline=missing-on-purpose.json")
    assert without.ret == pytest.ExitCode.USAGE_ERROR  # the flag beats the ini
    result = pytester.runpytest(f"--enginy-only={ACCEPTED},HEALTH-OK")
    result.assert_outcomes(passed=1, xfailed=1)
    assert result.ret == pytest.ExitCode.OK


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "missing.json does not exist"),
        ('{"version": 1, "accepted": [{"rule": "TASK-GTE", "reason": "x"}]}', "did you mean TASK-GET?"),
    ],
)
def test_a_bad_baseline_is_a_usage_error_naming_its_source(pytester, clean_env, text, message):
    clean_env.setenv("ENGINY_API_KEY", "k")
    if text is not None:
        (pytester.path / "missing.json").write_text(text, encoding="utf-8")
    clean_env.setenv("ENGINY_BASELINE", "missing.json")
    result = pytester.runpytest("--enginy-base-url=http://127.0.0.1:9")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*(from ENGINY_BASELINE in the environment)*"])
