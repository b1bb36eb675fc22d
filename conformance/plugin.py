"""enginy_conformance: the conformance suite as a pytest plugin, one test item per rule.

Registered through the `pytest11` entry point, so it is loaded in every pytest run of an environment
where the project is installed, and it does NOTHING until asked by its own option: `--enginy-base-url`
on the command line or `enginy_base_url` in the ini file. The command line's ENGINY_BASE_URL never
switches it on: a shell set up for `enginy-conformance run` would otherwise send writes to that server
from every `pytest` typed in it. When that variable is set and the plugin is off, the header says so.

Switched on, it collects one item per selected rule, `enginy-conformance::test_rule[RULE-ID]`, through
pytest's own collection (a collector beside the session's others), so `collected N items`, `-k`, `-m`,
`--deselect` and `--co` work as for any test:

    -k TASK-BATCH              the rules whose id holds TASK-BATCH (any part of the node id matches)
    -m enginy_must             the MUST rules; -m enginy_should the SHOULD ones (namespaced: the plugin
                               is loaded in every pytest run, and must not claim a project's own marks)
    --enginy-only ID,ID        what is collected at all, like the command line's --only

The suite runs once, before the first test, for the rules still selected after -k/-m; with none
selected, or with --collect-only, nothing is sent. A MUST rule that fails fails its item, a SHOULD rule
that fails passes with an EnginyShouldWarning, a rule that could not be judged is skipped with the
reason. Each item's duration (`--durations`, JUnit's `time`) is its rule's own time
(`conformance.results.Result.duration_s`), not the run's.

A server that cannot be judged at all (refused, timed out, TLS, a redirect, a gateway page, the key
refused, not a Custom CRM API) ends the session before any test runs: one line,
`ERROR: enginy-conformance: The server could not be judged: ...`, and exit code 4, pytest's usage
error. That is the family of the command line's exit 2 (the job's fault, not a verdict on the server);
failing every rule instead would say the same thing once per rule.

With a baseline (conformance.baseline), a failure or warning it accepts is xfail with the baseline's
reason and expiry (so `pytest` exits 0 when nothing else fails); a failure whose entry expired fails
as usual, saying so; a rule that holds although the baseline lists it passes with an
EnginyBaselineWarning that the entry can be removed. The file is read when pytest starts, so a bad one
is a usage error before anything is sent. Rewriting the file is the command line's
(`enginy-conformance run --baseline-update`).

Settings, each a command-line option with an ini twin; once the plugin is on, all but the base URL fall
back on the command line's environment variable (the key best of all: not in shell history, not in a
committed ini file):

    --enginy-base-url        enginy_base_url        -                   (these two switch it on)
    --enginy-api-key         enginy_api_key         ENGINY_API_KEY      (prefer the environment)
    --enginy-api-key-header  enginy_api_key_header  ENGINY_API_KEY_HEADER
    --enginy-profile         enginy_profile         ENGINY_PROFILE
    --enginy-only            enginy_only            ENGINY_ONLY
    --enginy-timeout         enginy_timeout         ENGINY_TIMEOUT
    --enginy-baseline        enginy_baseline        ENGINY_BASELINE     (relative to the ini file's
                                                                         folder when set there)

Precedence is command line > environment > ini, resolved in `resolve_plugin_settings` only. The suite's
messages name the command line's options ("check that --base-url is right"); `in_plugin_terms` puts
them in the plugin's before they are shown. JUnit XML comes from pytest's own --junitxml.
"""

from __future__ import annotations

import functools
import os
import re
import warnings
from collections.abc import Generator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:  # the suite itself is imported only when a run is configured: pytest stays fast
    from conformance.results import Result
    from conformance.settings import RunSettings
    from enginy_spec import Rule

__all__ = [
    "EnginyBaselineWarning",
    "EnginyShouldWarning",
    "PluginOption",
    "RuleCollector",
    "RuleItem",
    "in_plugin_terms",
    "resolve_plugin_settings",
]

GROUP: Final = "enginy-conformance"
NODE: Final = "enginy-conformance"  # the collector's name and node id: items are NODE::test_rule[ID]
# The marker each level's items carry, for -m.
LEVEL_MARKERS: Final[Mapping[str, str]] = {"MUST": "enginy_must", "SHOULD": "enginy_should"}


@dataclass(frozen=True, slots=True)
class PluginOption:
    name: str  # RunSettings field
    flag: str
    ini: str
    env: str | None  # the command line's variable it falls back on; None: the flag and the ini only
    help: str


OPTIONS: Final = (
    PluginOption(
        "base_url",
        "--enginy-base-url",
        "enginy_base_url",
        None,
        "Root URL of the Custom CRM server to judge. This option or its ini twin switches the plugin on "
        "(ENGINY_BASE_URL, the command line's variable, does not); without them it adds no tests.",
    ),
    PluginOption(
        "api_key",
        "--enginy-api-key",
        "enginy_api_key",
        "ENGINY_API_KEY",
        "API key for the server. Prefer the ENGINY_API_KEY environment variable (not shell history, "
        "not a committed ini file).",
    ),
    PluginOption(
        "api_key_header",
        "--enginy-api-key-header",
        "enginy_api_key_header",
        "ENGINY_API_KEY_HEADER",
        "Header carrying the key (default X-API-Key).",
    ),
    PluginOption(
        "profile",
        "--enginy-profile",
        "enginy_profile",
        "ENGINY_PROFILE",
        "quick (default) or full: how much Schemathesis testing comes on top of the scripted checks.",
    ),
    PluginOption(
        "only",
        "--enginy-only",
        "enginy_only",
        "ENGINY_ONLY",
        "Judge only these rule ids (comma-separated; the option is repeatable).",
    ),
    PluginOption(
        "timeout",
        "--enginy-timeout",
        "enginy_timeout",
        "ENGINY_TIMEOUT",
        "Seconds one request may take, its whole answer included (default 10).",
    ),
    PluginOption(
        "baseline",
        "--enginy-baseline",
        "enginy_baseline",
        "ENGINY_BASELINE",
        "JSON file of accepted failures by rule id (enginy-conformance run --baseline-update writes it): a "
        "failure it accepts is xfail with its reason; one whose entry expired fails as usual.",
    ),
)

_SETTINGS_KEY: Final = pytest.StashKey["PluginSettings | None"]()
_RESULTS_KEY: Final = pytest.StashKey["dict[str, Result]"]()


class EnginyShouldWarning(UserWarning):
    """A SHOULD rule of the Enginy contract does not hold: a warning, not a failure."""


class EnginyBaselineWarning(UserWarning):
    """A rule holds although the baseline accepts its failure: the entry can be removed."""


@dataclass(frozen=True, slots=True)
class PluginSettings:
    settings: RunSettings
    sources: Mapping[str, str]
    rules: tuple[Rule, ...]  # what --enginy-only selects (all of the catalogue without it)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "Enginy Custom CRM conformance (on only with --enginy-base-url)")
    for option in OPTIONS:
        if option.name == "only":
            group.addoption(
                option.flag,
                dest=option.ini,
                action="append",
                default=None,
                metavar="RULE-ID",
                help=option.help,
            )
        else:
            group.addoption(option.flag, dest=option.ini, default=None, help=option.help)
        parser.addini(option.ini, help=option.help, default=None)


def _ini(config: pytest.Config, name: str) -> Any:
    try:
        value = config.getini(name)
    except ValueError:
        return None
    return value if value not in (None, "", []) else None


def resolve_plugin_settings(
    config: pytest.Config, env: Mapping[str, str] | None = None
) -> PluginSettings | None:
    """Command line > environment > ini, for every option; None when neither --enginy-base-url nor
    enginy_base_url is set (ENGINY_BASE_URL alone leaves the plugin off).

    Raises pytest.UsageError naming the option, variable or ini key whose value is bad.
    """
    from conformance.baseline import load_baseline
    from conformance.config import parse_value
    from conformance.errors import UsageError
    from conformance.runner import select_rules
    from conformance.settings import RunSettings

    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in OPTIONS:
        cli_value = config.getoption(option.ini)
        if cli_value not in (None, []):
            raw, where = cli_value, option.flag
        elif option.env is not None and env.get(option.env, "").strip():
            raw, where = env[option.env], f"{option.env} in the environment"
        elif _ini(config, option.ini) is not None:
            raw, where = _ini(config, option.ini), f"{option.ini} in the ini file"
        else:
            continue
        try:
            value = parse_value(option.name, raw, where)
        except UsageError as ex:
            raise pytest.UsageError(str(ex)) from None
        if isinstance(value, Path) and where.endswith("ini file") and config.inipath is not None:
            # An ini file's paths are its own folder's, as pytest's own path options are.
            value = config.inipath.parent / value
        values[option.name] = value
        sources[option.name] = where
    if "base_url" not in values:
        return None
    if not values.get("api_key"):
        raise pytest.UsageError(
            "enginy-conformance: a base URL is set but no API key; set ENGINY_API_KEY (or --enginy-api-key)."
        )
    settings = RunSettings(**values)
    # Both read now: an unknown rule id or a bad baseline file is a usage error before anything is sent.
    try:
        rules = tuple(select_rules(settings))
    except UsageError as ex:
        raise pytest.UsageError(in_plugin_terms(str(ex))) from None
    if settings.baseline is not None:
        try:
            load_baseline(settings.baseline)
        except UsageError as ex:
            raise pytest.UsageError(in_plugin_terms(f"{ex} (from {sources['baseline']})")) from None
    return PluginSettings(settings=settings, sources=sources, rules=rules)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "enginy_rule(rule_id, level): a rule of the Enginy Custom CRM contract"
    )
    config.addinivalue_line("markers", "enginy_must: a MUST rule of the Enginy contract (its failure fails)")
    config.addinivalue_line("markers", "enginy_should: a SHOULD rule of the Enginy contract (it only warns)")
    config.stash[_SETTINGS_KEY] = resolve_plugin_settings(config)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    configured = config.stash.get(_SETTINGS_KEY, None)
    if configured is None:
        if os.environ.get("ENGINY_BASE_URL", "").strip():
            # Whoever switched the plugin on with this variable before learns why nothing is judged now.
            return [
                "enginy-conformance: off; ENGINY_BASE_URL is the command line's setting, so pass "
                "--enginy-base-url (or set enginy_base_url in the ini file) to judge a server here"
            ]
        return None
    from conformance.runner import safe_url

    settings = configured.settings
    sources = configured.sources
    only = ", ".join(settings.only) if settings.only else "all rules"
    timeout = f", timeout {settings.timeout:g} s ({sources['timeout']})" if "timeout" in sources else ""
    baseline = f", baseline {settings.baseline} ({sources['baseline']})" if settings.baseline else ""
    return [
        f"enginy-conformance: base-url {safe_url(settings.base_url)} ({sources['base_url']}), "
        f"api-key [REDACTED] ({sources['api_key']}), header {settings.api_key_header}, "
        f"profile {settings.profile}{timeout}, {only}{baseline}"
    ]


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    # The rules are no file's tests, so pytest_collect_file cannot make them; added to the session's own
    # report, they are collected, counted, selected and reported like any other test. Items added in
    # pytest_collection_modifyitems instead are never counted ("collected 0 items", "-47 selected").
    if (
        isinstance(collector, pytest.Session)
        and report.passed
        and collector.config.stash.get(_SETTINGS_KEY, None) is not None
    ):
        report.result.append(RuleCollector.from_parent(collector, name=NODE, nodeid=NODE))
    return report


class RuleCollector(pytest.Collector):
    """The rules the settings select, one RuleItem each."""

    def collect(self) -> list[pytest.Item]:
        configured = self.config.stash[_SETTINGS_KEY]
        assert configured is not None  # this collector is only added when the plugin is on
        items: list[pytest.Item] = []
        for rule in configured.rules:
            item = RuleItem.from_parent(self, name=f"test_rule[{rule.id}]", rule_id=rule.id)
            item.add_marker(pytest.mark.enginy_rule(rule.id, rule.level))
            item.add_marker(LEVEL_MARKERS[rule.level])
            item.user_properties.append(("level", rule.level))
            items.append(item)
        return items


def _tests_will_run(session: pytest.Session) -> bool:
    config = session.config
    if config.getoption("collectonly", False) or config.getoption("setuponly", False):
        return False  # --co, --setup-only and --setup-plan run no test, so nothing is to be judged
    # Collection errors stop the session before the first test (pytest's own loop says why).
    return not (session.testsfailed and not config.getoption("continue_on_collection_errors", False))


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Judge the server once, before any test runs, for the rules still selected after -k and -m."""
    configured = session.config.stash.get(_SETTINGS_KEY, None)
    if configured is None:
        return
    wanted = tuple(item.rule_id for item in session.items if isinstance(item, RuleItem))
    if wanted and _tests_will_run(session):
        session.config.stash[_RESULTS_KEY] = _judge(session.config, replace(configured.settings, only=wanted))


def _judge(config: pytest.Config, settings: RunSettings) -> dict[str, Result]:
    from conformance.errors import TransportError, UsageError
    from conformance.runner import run, safe_url

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and config.get_verbosity() >= 0:
        # The run takes seconds to minutes before the first rule's line: say what the wait is.
        reporter.write_line(
            f"enginy-conformance: judging {safe_url(settings.base_url)} on {len(settings.only)} rules …"
        )
    try:
        outcome = run(settings, out=lambda line: None, write=False)
    except (UsageError, TransportError) as ex:
        # Nothing was judged, and every rule would fail for this one reason: say it once, for the session.
        raise pytest.UsageError(
            f"enginy-conformance: The server could not be judged: {in_plugin_terms(str(ex))}"
        ) from None
    return {result.rule.id: result for result in outcome.report.results}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if isinstance(item, RuleItem) and report.when == "call":
        result = item.result
        if result is not None:
            # The suite ran before the tests; what this test stands for took its own rule's time.
            report.duration = result.duration_s
    return report


class RuleFailed(AssertionError):
    """A MUST rule does not hold (or the server could not be judged)."""


class RuleItem(pytest.Item):
    """One rule of the catalogue, judged by the shared run."""

    def __init__(self, *, rule_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rule_id = rule_id

    @property
    def result(self) -> Result | None:
        """The run's verdict on this rule; None before the run (or when it did not run)."""
        return self.config.stash.get(_RESULTS_KEY, {}).get(self.rule_id)

    def runtest(self) -> None:
        result = self.result
        if result is None:
            raise RuleFailed(
                f"{self.rule_id}: the suite did not run before this test; another plugin ran the tests "
                "without pytest's own run loop, which is where this plugin judges the server."
            )
        self.user_properties.append(("outcome", result.outcome))
        mark = result.baseline
        if mark is not None:
            from conformance.baseline import describe_mark

            self.user_properties.append(("baseline", mark.status))
            if result.accepted:
                # The reason is what a reader of the xfail line needs; the finding is in the reports.
                pytest.xfail(in_plugin_terms(f"{self.rule_id} ({result.outcome}): {describe_mark(mark)}"))
            if mark.status == "stale":
                warnings.warn(
                    EnginyBaselineWarning(in_plugin_terms(f"{self.rule_id}: {describe_mark(mark)}.")),
                    stacklevel=1,
                )
        if result.outcome == "failed":
            raise RuleFailed(_describe(result))
        if result.outcome == "warning":
            warnings.warn(EnginyShouldWarning(f"{self.rule_id} (SHOULD): {_describe(result)}"), stacklevel=1)
        elif result.outcome == "skipped":
            reasons = [e.message for e in result.evidence if e.message]
            pytest.skip(in_plugin_terms(f"{self.rule_id}: {reasons[0] if reasons else 'not judged'}"))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, RuleFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[str, int | None, str]:
        return NODE, None, f"{self.rule_id}"


def _describe(result: Result) -> str:
    lines = [f"{result.rule.id} ({result.rule.level}): {result.rule.statement}"]
    if result.baseline is not None:  # expired (an accepted failure never gets here)
        from conformance.baseline import describe_mark

        lines.append(f"  {describe_mark(result.baseline)}.")
    for evidence in result.failures:
        lines.append(f"  {evidence.message}")
        if evidence.expected:
            lines.append(f"  Expected: {evidence.expected}")
        if evidence.actual:
            lines.append(f"  Received: {evidence.actual}")
        for exchange in evidence.exchanges[:2]:
            request = exchange.request
            status = exchange.response.status if exchange.response is not None else exchange.error
            lines.append(f"  {request.method} {request.url} -> {status}")
    lines.append(f'  Source: {result.rule.source.document}: "{result.rule.source.quote}"')
    return in_plugin_terms("\n".join(lines))


def in_plugin_terms(text: str) -> str:
    """`text` with the command line's option names replaced by this plugin's own.

    The suite's messages are written for `enginy-conformance run` ("check that --base-url is right",
    "raise --timeout"); a pytest user set --enginy-base-url or its ini twin, and is told that name.
    """
    pattern, words = _plugin_words()
    return pattern.sub(lambda match: words[match.group(0)], text)


@functools.cache
def _plugin_words() -> tuple[re.Pattern[str], Mapping[str, str]]:
    from conformance.config import SETTINGS

    cli_flag = {setting.name: setting.flag for setting in SETTINGS}
    words = {cli_flag[option.name]: option.flag for option in OPTIONS}
    # The plugin never rewrites a baseline: that stays the command line's job.
    words["--baseline-update"] = "enginy-conformance run --baseline-update"
    # Whole options only: --baseline is not the start of --baseline-update, nor --base-url the end of
    # --enginy-base-url.
    alternatives = "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])"), words
