"""Where a run's settings come from: flags, environment variables, a TOML file, defaults.

Precedence is flag > environment > config file > default, decided in `resolve_settings` and nowhere
else. Every setting has one name per source:

    setting         flag              environment              config file (TOML, top level)
    base_url        --base-url        ENGINY_BASE_URL          base-url
    api_key         --api-key         ENGINY_API_KEY           api-key
    api_key_header  --api-key-header  ENGINY_API_KEY_HEADER    api-key-header
    profile         --profile         ENGINY_PROFILE           profile          (quick | full)
    only            --only            ENGINY_ONLY              only             (rule ids, comma-separated)
    report_dir      --report-dir      ENGINY_REPORT_DIR        report-dir
    max_writes      --max-writes      ENGINY_MAX_WRITES        max-writes
    timeout         --timeout         ENGINY_TIMEOUT           timeout          (seconds, per request)
    seed            --seed            ENGINY_SEED              seed
    concurrency     --concurrency     ENGINY_CONCURRENCY       concurrency      (1 to 64)
    max_time        --max-time        ENGINY_MAX_TIME          max-time         (seconds, or 90s, 5m)
    baseline        --baseline        ENGINY_BASELINE          baseline         (accepted failures, JSON)
    color           --color           ENGINY_COLOR             color            (auto | always | never)

NO_COLOR in the environment (https://no-color.org) turns colour off where `color` is auto; it is read
by conformance.terminal, not here, since it is not a setting of ours.

The config file is `--config FILE`, else `enginy-conformance.toml` in the working directory when it
exists. A bad value is a UsageError naming the source it came from, so the user knows what to fix.
Paths (report-dir, baseline) are taken relative to the working directory wherever they come from.

`--baseline-update` (rewrite the baseline after the run) and `--dry-run` are actions of one run, not
settings: flags only, passed to `resolve_settings` as keywords.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args
from urllib.parse import urlsplit

from conformance.errors import UsageError
from conformance.settings import ColorChoice, Profile, RunSettings

__all__ = [
    "CONFIG_FILE_NAME",
    "LOAD_TABLE",
    "SETTINGS",
    "Resolved",
    "Setting",
    "parse_value",
    "read_config",
    "resolve_settings",
]

CONFIG_FILE_NAME: Final = "enginy-conformance.toml"
# The table of the config file that holds `enginy-conformance load`'s own settings ([load]).
LOAD_TABLE: Final = "load"
_PROFILES: Final = get_args(Profile)
_COLORS: Final = get_args(ColorChoice)
# RFC 9110 token: the characters a header name may hold.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")

Source = Literal["flag", "env", "file", "default"]


@dataclass(frozen=True, slots=True)
class Setting:
    name: str  # RunSettings field
    flag: str
    env: str
    key: str  # in the TOML file


SETTINGS: Final = tuple(
    Setting(name, "--" + name.replace("_", "-"), "ENGINY_" + name.upper(), name.replace("_", "-"))
    for name in (
        "base_url",
        "api_key",
        "api_key_header",
        "profile",
        "only",
        "report_dir",
        "max_writes",
        "timeout",
        "seed",
        "concurrency",
        "max_time",
        "baseline",
        "color",
    )
)


@dataclass(frozen=True, slots=True)
class Resolved:
    """The settings, and where each came from ("flag", "env", "file" or "default")."""

    settings: RunSettings
    sources: Mapping[str, Source]
    config_file: Path | None

    def describe_source(self, name: str) -> str:
        setting = next(s for s in SETTINGS if s.name == name)
        return {
            "flag": setting.flag,
            "env": setting.env,
            "file": f"{setting.key} in {self.config_file}",
            "default": "the default",
        }[self.sources[name]]


def resolve_settings(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    config_file: Path | None = None,
    cwd: Path | None = None,
    dry_run: bool = False,
    update_baseline: bool = False,
    require_target: bool = True,
) -> Resolved:
    """Resolve every setting, flag > environment > config file > default, and validate it.

    `flags` holds the command-line values by setting name (None or () when not given). Raises UsageError
    naming the flag, variable or file entry at fault, or the flags that cannot go together.
    """
    path = config_file
    if path is None and cwd is not None and (cwd / CONFIG_FILE_NAME).is_file():
        path = cwd / CONFIG_FILE_NAME
    file_values = _read_config(path) if path is not None else {}
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for setting in SETTINGS:
        flag_value = flags.get(setting.name)
        if flag_value is not None and flag_value != ():
            raw, source, where = flag_value, "flag", setting.flag
        elif env.get(setting.env, "").strip():
            raw, source, where = env[setting.env], "env", f"{setting.env} in the environment"
        elif setting.key in file_values:
            raw, source, where = file_values[setting.key], "file", f"{setting.key} in {path}"
        else:
            continue
        values[setting.name] = _PARSERS[setting.name](raw, where)
        sources[setting.name] = cast(Source, source)
    for setting in SETTINGS:
        sources.setdefault(setting.name, "default")
    if require_target and "base_url" not in values:
        raise UsageError(
            "No server to judge: pass --base-url URL or set ENGINY_BASE_URL (or base-url in the config file)."
        )
    if require_target and not dry_run and not values.get("api_key"):
        raise UsageError(
            "No API key: set ENGINY_API_KEY (preferred: a key given with --api-key lands in your shell "
            "history) or pass --api-key."
        )
    if update_baseline and dry_run:
        raise UsageError(
            "--baseline-update and --dry-run cannot go together: a dry run judges nothing to write a "
            "baseline from."
        )
    if update_baseline and "baseline" not in values:
        raise UsageError(
            "--baseline-update needs the file to write: pass --baseline FILE (or set ENGINY_BASELINE, or "
            "baseline in the config file)."
        )
    settings = RunSettings(
        base_url=values.get("base_url", ""),
        api_key=values.get("api_key", ""),
        dry_run=dry_run,
        update_baseline=update_baseline,
        **{name: value for name, value in values.items() if name not in ("base_url", "api_key")},
    )
    return Resolved(settings=settings, sources=sources, config_file=path)


def parse_value(name: str, raw: Any, where: str) -> Any:
    """Validate one setting's raw value; `where` names its source in the UsageError (e.g. "--timeout")."""
    return _PARSERS[name](raw, where)


def read_config(config_file: Path | None, cwd: Path | None) -> tuple[Path | None, dict[str, Any]]:
    """The config file that applies (`--config`, else ./enginy-conformance.toml) and its contents."""
    path = config_file
    if path is None and cwd is not None and (cwd / CONFIG_FILE_NAME).is_file():
        path = cwd / CONFIG_FILE_NAME
    return path, (_read_config(path) if path is not None else {})


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise UsageError(
            f"The config file {path} does not exist; check the path given to --config."
        ) from None
    except OSError as ex:
        raise UsageError(
            f"The config file {path} cannot be read ({ex.strerror}); check its permissions."
        ) from None
    except tomllib.TOMLDecodeError as ex:
        raise UsageError(
            f"The config file {path} is not valid TOML ({ex}); fix it or pass another --config."
        ) from None
    known = [setting.key for setting in SETTINGS]
    for key in data:
        if key == LOAD_TABLE and isinstance(data[key], dict):
            continue  # `enginy-conformance load`'s own table (conformance.load reads it)
        if key not in known:
            close = difflib.get_close_matches(key.replace("_", "-"), known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UsageError(
                f"The config file {path} has an unknown key {key!r}{hint}; the keys are {', '.join(known)}."
            )
    return data


# --- parsers: (raw value, where it came from) -> value, or UsageError naming `where` ------------------


def _text(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise UsageError(f"{where} must be a non-empty string.")
    return raw.strip()


def _base_url(raw: Any, where: str) -> str:
    url = _text(raw, where)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{where} must be an http:// or https:// URL with a host, not {url!r}.")
    if parts.query or parts.fragment:
        raise UsageError(f"{where} must not carry a query or fragment ({url!r}); give the base URL only.")
    try:
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError:
        raise UsageError(f"{where} has an invalid port: {url!r}.") from None
    return url.rstrip("/")


def _api_key(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise UsageError(f"{where} must be a non-empty string.")
    if any(ch in raw for ch in "\r\n"):
        raise UsageError(f"{where} holds a line break; an HTTP header value cannot.")
    return raw


def _header(raw: Any, where: str) -> str:
    name = _text(raw, where)
    if not _HEADER_NAME.match(name):
        raise UsageError(f"{where} is not a valid HTTP header name: {name!r}.")
    return name


def _profile(raw: Any, where: str) -> str:
    value = _text(raw, where).lower()
    if value not in _PROFILES:
        raise UsageError(f"{where} must be one of {', '.join(_PROFILES)}, not {raw!r}.")
    return value


def _color(raw: Any, where: str) -> str:
    value = _text(raw, where).lower()
    if value not in _COLORS:
        raise UsageError(f"{where} must be one of {', '.join(_COLORS)}, not {raw!r}.")
    return value


def _only(raw: Any, where: str) -> tuple[str, ...]:
    items: list[str] = []
    if isinstance(raw, str):
        items = [raw]
    elif isinstance(raw, (list, tuple)) and all(isinstance(item, str) for item in raw):
        items = list(raw)
    else:
        raise UsageError(f"{where} must be rule ids (a list of strings).")
    ids = [part.strip().upper() for item in items for part in re.split(r"[,\s]+", item) if part.strip()]
    if not ids:
        raise UsageError(f"{where} names no rule id.")
    return tuple(dict.fromkeys(ids))


def _path(raw: Any, where: str) -> Path:
    if isinstance(raw, Path):
        return raw
    return Path(_text(raw, where)).expanduser()


def _integer(minimum: int, what: str) -> Callable[[Any, str], int]:
    def parse(raw: Any, where: str) -> int:
        if isinstance(raw, bool):
            raise UsageError(f"{where} must be {what}, not {raw!r}.")
        try:
            value = int(raw) if not isinstance(raw, float) else math.nan
        except (TypeError, ValueError):
            value = math.nan
        if value != value or value < minimum:  # NaN check: not an integer at all
            raise UsageError(f"{where} must be {what}, not {raw!r}.")
        return int(value)

    return parse


def _seconds(raw: Any, where: str) -> float:
    try:
        value = float(raw) if not isinstance(raw, bool) else math.nan
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0 or value > 3600:
        raise UsageError(f"{where} must be a number of seconds above 0 (at most 3600), not {raw!r}.")
    return value


def _duration(raw: Any, where: str) -> float:
    """Seconds as a number, or a string such as "90", "90s", "5m", "1h" (at most a day)."""
    text = raw.strip().lower() if isinstance(raw, str) else raw
    scale = 1.0
    if isinstance(text, str) and text[-1:] in ("s", "m", "h"):
        scale = {"s": 1.0, "m": 60.0, "h": 3600.0}[text[-1]]
        text = text[:-1]
    try:
        value = float(text) * scale if not isinstance(text, bool) else math.nan
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0 or value > 86400:
        raise UsageError(
            f"{where} must be a duration above 0 such as 300, 90s or 5m (at most 24h), not {raw!r}."
        )
    return value


def _bounded(minimum: int, maximum: int, what: str) -> Callable[[Any, str], int]:
    parse_integer = _integer(minimum, what)

    def parse(raw: Any, where: str) -> int:
        value = parse_integer(raw, where)
        if value > maximum:
            raise UsageError(f"{where} must be {what}, not {raw!r}.")
        return value

    return parse


_PARSERS: Final[dict[str, Callable[[Any, str], Any]]] = {
    "base_url": _base_url,
    "api_key": _api_key,
    "api_key_header": _header,
    "profile": _profile,
    "only": _only,
    "report_dir": _path,
    "max_writes": _integer(0, "a whole number of requests (0 or more)"),
    "timeout": _seconds,
    "seed": _integer(0, "a whole number (0 or more)"),
    "concurrency": _bounded(1, 64, "a whole number from 1 to 64"),
    "max_time": _duration,
    "baseline": _path,
    "color": _color,
}
