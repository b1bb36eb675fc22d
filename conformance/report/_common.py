"""What every report format shares: ordering, families, curl commands and the settings scrubber.

Writers read only `RunReport`/`Result`/`Evidence`; nothing here touches the network.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Final

from conformance.results import RecordedRequest, Result, RunReport

__all__ = [
    "ENV_KEY",
    "GROUP_ORDER",
    "REDACTED",
    "SECRET_PLACEHOLDERS",
    "curl_command",
    "family",
    "group_of",
    "key_header",
    "markup_safe",
    "not_judged_reason",
    "ordered",
    "scrub_settings",
    "unicode_safe",
]

# The curl commands reference the key through this environment variable; the report never holds it.
ENV_KEY: Final = "ENGINY_API_KEY"
REDACTED: Final = "[REDACTED]"
# What recorders write in place of the key: ours, and Schemathesis' own marker.
SECRET_PLACEHOLDERS: Final = frozenset({REDACTED, "[Filtered]"})
DEFAULT_KEY_HEADER: Final = "X-API-Key"

# Reading order in the HTML and the summary, by group (`group_of`): what needs action first. Failures
# the baseline accepts come after the warnings: known, and with a reason, but not fixed.
GROUP_ORDER: Final[Mapping[str, int]] = {"failed": 0, "warning": 1, "accepted": 2, "skipped": 3, "passed": 4}

# The JUnit classname (`enginy.<family>`) and the JSON `family` of a rule, by the first word of its id.
_FAMILIES: Final[Mapping[str, str]] = {
    "HEALTH": "health",
    "AUTH": "auth",
    "TASK": "tasks",
    "TIMESTAMPS": "tasks",
    "ACTIVITY": "activities",
    "CONTACT": "contacts",
    "COMPANY": "companies",
    "ASSOC": "associations",
    "USERS": "users",
    "INPUT": "inputs",
    "SERVER": "responses",
    "RESPONSE": "responses",
    "ERROR": "responses",
}

# Setting names that may hold a secret; header *names* are not secrets (and curl needs the key's).
_SENSITIVE = re.compile(r"key|token|secret|passw|credential|auth", re.IGNORECASE)
_NOT_SECRET_SUFFIXES: Final = ("_header", "_header_name")

# Headers curl computes itself, or that would make a replay differ for no reason.
_CURL_SKIPPED: Final = frozenset(
    {"content-length", "host", "connection", "accept-encoding", "transfer-encoding"}
)
_PLAIN_HEADER_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
# engine_recording cuts long bodies with this marker; such a body cannot be replayed as it was sent.
_TRUNCATED_MARKER: Final = "… [truncated:"


# C0 controls other than tab, newline and carriage return are not allowed in XML 1.0 (nor sensible in
# HTML); fuzzed requests and odd servers produce them.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def unicode_safe(text: str) -> str:
    """`text` with lone surrogates (which no UTF-8 file can hold) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def markup_safe(text: str) -> str:
    """`text` fit for XML and HTML: no lone surrogates, and forbidden control characters as U+FFFD."""
    return _CONTROL.sub("\ufffd", unicode_safe(text))


def family(rule_id: str) -> str:
    """The rule's family: tasks, auth, contacts ... (the first word of the id, lower-cased, if unknown)."""
    first = rule_id.split("-", 1)[0]
    return _FAMILIES.get(first, first.lower())


def not_judged_reason(result: Result) -> str:
    """Why a rule was not judged, in one sentence (the first reason its evidence gives)."""
    messages = [" ".join(item.message.split()) for item in result.evidence if item.message]
    return messages[0] if messages else "Nothing in this run judged it."


def group_of(result: Result) -> str:
    """The group a report shows a rule in: its outcome, or "accepted" when the baseline accepts it."""
    return "accepted" if result.accepted else result.outcome


def ordered(results: Iterable[Result]) -> list[Result]:
    """Failures first, then warnings, accepted, skipped and passed; catalogue order within each group."""
    return sorted(results, key=lambda result: GROUP_ORDER[group_of(result)])  # sorted() is stable


def _is_sensitive(name: str) -> bool:
    lowered = name.lower()
    return bool(_SENSITIVE.search(lowered)) and not lowered.endswith(_NOT_SECRET_SUFFIXES)


def scrub_settings(settings: Mapping[str, object]) -> dict[str, object]:
    """A copy of the run settings with any value whose name smells of a secret replaced.

    `RunReport.settings` is built without the key; this is the second line of defence, so a setting
    added later under a name like `api_key` or `token` cannot reach a report file.
    """
    clean: dict[str, object] = {}
    for name, value in settings.items():
        if isinstance(value, Mapping):
            clean[name] = scrub_settings({str(k): v for k, v in value.items()})
        elif _is_sensitive(name) and value not in (None, ""):
            clean[name] = REDACTED
        else:
            clean[name] = value
    return clean


def key_header(report: RunReport) -> str:
    """The header the key travels in for this run (settings["api_key_header"], default X-API-Key)."""
    value = report.settings.get("api_key_header")
    return value if isinstance(value, str) and value else DEFAULT_KEY_HEADER


def curl_command(request: RecordedRequest, *, key_header: str) -> str:
    """A shell command that replays the request, the key read from $ENGINY_API_KEY.

    Only a header that carried the key (recorded as a placeholder) gets the variable; a request sent
    without the key, or with a deliberately wrong one, is replayed exactly so, since that is the point.
    """
    parts = [f"curl -sS -i -X {request.method.upper()} {shlex.quote(request.url)}"]
    for name, value in request.headers.items():
        if name.lower() in _CURL_SKIPPED:
            continue
        if value in SECRET_PLACEHOLDERS:
            if name.lower() == key_header.lower():
                # Double quotes so the shell expands the variable; a name with other characters is
                # single-quoted on its own so nothing in it is expanded.
                if _PLAIN_HEADER_NAME.match(name):
                    parts.append(f'-H "{name}: ${ENV_KEY}"')
                else:
                    parts.append(f'-H {shlex.quote(f"{name}: ")}"${ENV_KEY}"')
            # Any other masked header cannot be replayed faithfully; it is left out rather than invented.
            continue
        parts.append(f"-H {shlex.quote(f'{name}: {value}')}")
    note = ""
    if request.body is not None and request.body != "":
        parts.append(f"--data-raw {shlex.quote(request.body)}")
        if _TRUNCATED_MARKER in request.body:
            note = "# The body was cut for the report, so this replays a shortened request.\n"
    return note + " \\\n  ".join(parts)
