"""conformance.config: flag > environment > config file > default, and errors that name their source."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.config import CONFIG_FILE_NAME, resolve_settings
from conformance.errors import UsageError

TARGET = {"ENGINY_BASE_URL": "http://env.test", "ENGINY_API_KEY": "env-key"}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_apply_when_nothing_else_says(tmp_path):
    resolved = resolve_settings({}, TARGET, cwd=tmp_path)
    settings = resolved.settings
    assert (settings.profile, settings.api_key_header, settings.timeout, settings.max_writes) == (
        "quick",
        "X-API-Key",
        10.0,
        None,
    )
    assert resolved.sources["profile"] == "default"
    assert resolved.config_file is None


@pytest.mark.parametrize(
    ("flag", "env", "file", "expected", "source"),
    [
        (30.0, "20", "timeout = 5", 30.0, "flag"),
        (None, "20", "timeout = 5", 20.0, "env"),
        (None, None, "timeout = 5", 5.0, "file"),
        (None, None, "", 10.0, "default"),
    ],
)
def test_precedence_flag_env_file_default(tmp_path, flag, env, file, expected, source):
    config = write(tmp_path / "c.toml", file)
    environ = dict(TARGET, **({"ENGINY_TIMEOUT": env} if env else {}))
    resolved = resolve_settings({"timeout": flag}, environ, config_file=config)
    assert resolved.settings.timeout == expected
    assert resolved.sources["timeout"] == source


def test_every_setting_can_come_from_the_file(tmp_path):
    write(
        tmp_path / CONFIG_FILE_NAME,
        """
        base-url = "https://crm.example.com/enginy/"
        api-key = "file-key"
        api-key-header = "X-Tenant-Key"
        profile = "full"
        only = ["task-get", "HEALTH-OK"]
        report-dir = "out"
        max-writes = 50
        timeout = 2.5
        seed = 7
        concurrency = 4
        max-time = "5m"
        """.replace("        ", ""),
    )
    resolved = resolve_settings({}, {}, cwd=tmp_path)  # found in the working directory
    s = resolved.settings
    assert s.base_url == "https://crm.example.com/enginy"
    assert (s.api_key, s.api_key_header, s.profile, s.only) == (
        "file-key",
        "X-Tenant-Key",
        "full",
        ("TASK-GET", "HEALTH-OK"),
    )
    assert (s.report_dir, s.max_writes, s.timeout, s.seed) == (Path("out"), 50, 2.5, 7)
    assert (s.concurrency, s.max_time) == (4, 300.0)
    assert resolved.config_file == tmp_path / CONFIG_FILE_NAME
    assert resolved.describe_source("api_key") == f"api-key in {tmp_path / CONFIG_FILE_NAME}"


def test_concurrency_and_max_time_default_to_16_and_none():
    settings = resolve_settings({}, TARGET).settings
    assert (settings.concurrency, settings.max_time) == (16, None)


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        (
            {"concurrency": 2, "max_time": "90s"},
            {"ENGINY_CONCURRENCY": "8", "ENGINY_MAX_TIME": "5m"},
            (2, 90.0),
        ),
        ({}, {"ENGINY_CONCURRENCY": "1", "ENGINY_MAX_TIME": "2m"}, (1, 120.0)),
        ({}, {"ENGINY_MAX_TIME": "45"}, (16, 45.0)),
    ],
)
def test_concurrency_and_max_time_from_flags_then_environment(flags, env, expected):
    settings = resolve_settings(flags, {**TARGET, **env}).settings
    assert (settings.concurrency, settings.max_time) == expected


def test_only_from_the_environment_is_comma_or_space_separated():
    resolved = resolve_settings({}, dict(TARGET, ENGINY_ONLY="TASK-GET, health-ok  ASSOC-CREATE"))
    assert resolved.settings.only == ("TASK-GET", "HEALTH-OK", "ASSOC-CREATE")


@pytest.mark.parametrize(
    ("flags", "env", "file", "message"),
    [
        ({}, {"ENGINY_TIMEOUT": "soon"}, "", "ENGINY_TIMEOUT in the environment must be a number"),
        ({"timeout": -1.0}, {}, "", "--timeout must be a number"),
        ({}, {}, "max-writes = -3", "max-writes in .* must be a whole number"),
        ({}, {}, 'profile = "thorough"', "profile in .* must be one of quick, full"),
        ({"base_url": "ftp://crm"}, {}, "", "--base-url must be an http:// or https:// URL"),
        ({"base_url": "http://crm?x=1"}, {}, "", "must not carry a query"),
        (
            {},
            {"ENGINY_API_KEY_HEADER": "X API Key"},
            "",
            "ENGINY_API_KEY_HEADER .* not a valid HTTP header name",
        ),
        (
            {},
            {},
            "timeout = 2\nbase_url = 'http://x'",
            "unknown key 'base_url' \\(did you mean base-url\\?\\)",
        ),
        ({}, {}, "timeout = [", "not valid TOML"),
        ({"concurrency": 0}, {}, "", "--concurrency must be a whole number from 1 to 64"),
        ({}, {"ENGINY_CONCURRENCY": "lots"}, "", "ENGINY_CONCURRENCY in the environment must be a whole"),
        ({}, {}, "concurrency = 65", "concurrency in .* must be a whole number from 1 to 64"),
        ({}, {"ENGINY_MAX_TIME": "soon"}, "", "ENGINY_MAX_TIME in the environment must be"),
        ({"max_time": "-5s"}, {}, "", "--max-time must be"),
    ],
)
def test_bad_values_name_their_source(tmp_path, flags, env, file, message):
    config = write(tmp_path / "bad.toml", file)
    with pytest.raises(UsageError, match=message):
        resolve_settings(flags, {**TARGET, **env}, config_file=config)


def test_missing_config_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        resolve_settings({}, TARGET, config_file=tmp_path / "nope.toml")


def test_missing_target_and_key_say_how_to_give_them():
    with pytest.raises(UsageError, match="--base-url URL or set ENGINY_BASE_URL"):
        resolve_settings({}, {})
    with pytest.raises(UsageError, match=r"set ENGINY_API_KEY .*shell history"):
        resolve_settings({"base_url": "http://crm.test"}, {})


def test_a_dry_run_needs_no_key():
    assert resolve_settings({"base_url": "http://crm.test"}, {}, dry_run=True).settings.dry_run


def test_the_key_is_never_in_the_settings_repr():
    settings = resolve_settings({}, TARGET).settings
    assert "env-key" not in repr(settings)


@pytest.mark.parametrize(
    ("flag", "env", "file", "expected", "source"),
    [
        (Path("flag.json"), "env.json", 'baseline = "file.json"', Path("flag.json"), "flag"),
        (None, "env.json", 'baseline = "file.json"', Path("env.json"), "env"),
        (None, None, 'baseline = "file.json"', Path("file.json"), "file"),
        (None, None, "", None, "default"),
    ],
)
def test_the_baseline_comes_from_flag_env_file_like_any_setting(tmp_path, flag, env, file, expected, source):
    config = write(tmp_path / "c.toml", file)
    environ = dict(TARGET, **({"ENGINY_BASELINE": env} if env else {}))
    resolved = resolve_settings({"baseline": flag}, environ, config_file=config)
    assert (resolved.settings.baseline, resolved.sources["baseline"]) == (expected, source)
    assert resolved.settings.update_baseline is False


def test_baseline_update_takes_the_file_from_any_source_and_refuses_none(tmp_path):
    settings = resolve_settings({}, dict(TARGET, ENGINY_BASELINE="known.json"), update_baseline=True).settings
    assert (settings.baseline, settings.update_baseline) == (Path("known.json"), True)
    with pytest.raises(UsageError, match=r"^--baseline-update needs the file to write"):
        resolve_settings({}, TARGET, update_baseline=True)
    with pytest.raises(UsageError, match=r"^--baseline-update and --dry-run cannot go together"):
        resolve_settings({"baseline": Path("known.json")}, TARGET, update_baseline=True, dry_run=True)
    with pytest.raises(UsageError, match=r"baseline in .* must be a non-empty string"):
        resolve_settings({}, TARGET, config_file=write(tmp_path / "c.toml", "baseline = 3"))
