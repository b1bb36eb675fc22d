"""Baselines: the failures a team has accepted for now, by rule id, so that CI fails only on new ones.

Everything about them is decided here: the file's format, reading it, what an entry does to a run's
results, the words reports use for it, and rewriting the file (`--baseline-update`).

The file is JSON, written by `--baseline-update` and edited by people:

    {
      "version": 1,
      "accepted": [
        {"rule": "TASK-GET", "reason": "off-by-one lookup, fixed in CRM-812", "expires": "2027-03-31"}
      ]
    }

`rule` is a rule id of the catalogue, `reason` says why the failure is accepted (never empty), and
`expires` (optional, YYYY-MM-DD) is the last day the entry accepts anything: on the day after, in
UTC, the failure counts again. Anything else in the file is refused with one line naming the entry,
because a misspelt key (an `expiry` that is silently ignored) would accept a failure for ever.

What an entry does to the rule it names, decided in `apply_baseline` only:

    the rule                   status        effect
    failed, or warned          accepted      left out of the verdict (a run with nothing else wrong
                                             exits 0); the reports show it accepted, with the reason,
                                             the expiry and all of its evidence
    failed, or warned, but     expired       counts as if there were no entry (a MUST failure fails the
    past `expires`                           run); the reports say the entry expired on that date
    passed                     stale         the rule holds now: the entry can be removed (a note,
                                             never an error)
    not judged (skipped)       not_judged    stays not judged: an entry accepts a failure that was
                                             seen, it does not stand in for a judgement, so a MUST rule
                                             not judged still makes the run INCOMPLETE (exit 3)
    not selected (--only, -k)  -             ignored quietly (listed in report.json, nowhere else)

`--baseline-update` (`updated_baseline`, `write_baseline`) runs as usual, then rewrites the file:

    kept     entries whose rule failed or warned, with their reason and expiry as they are (an expired
             one too: an expiry is a deadline, and the update does not move it), and entries whose
             rule was not judged or not selected (nothing says they are wrong)
    dropped  stale entries: their rule holds now
    added    every MUST failure without an entry, with a reason that starts "TODO:" for a person to
             replace; runs say so until they do. SHOULD warnings are not added: they never fail a run.

So the run exits 0 after the update when the written file accepts every MUST failure; an expired entry
does not, and the run exits 1. The file is written whole to a temporary file beside it, then renamed
over it, so a crash never leaves half a baseline.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any, Final

from conformance.errors import UsageError
from conformance.results import BaselineMark, BaselineStatus, BaselineUse, Result, RunReport
from enginy_spec import Catalogue, load_catalogue

__all__ = [
    "PLACEHOLDER_PREFIX",
    "VERSION",
    "Baseline",
    "BaselineUpdate",
    "Entry",
    "accepted_summary",
    "apply_baseline",
    "baseline_notes",
    "describe_mark",
    "is_placeholder",
    "load_baseline",
    "to_document",
    "updated_baseline",
    "write_baseline",
]

VERSION: Final = 1
# The reason --baseline-update gives a new entry; a reason that still starts so is one nobody wrote.
PLACEHOLDER_PREFIX: Final = "TODO:"
_TOP_KEYS: Final = ("version", "accepted")
_ENTRY_KEYS: Final = ("rule", "reason", "expires")
# date.fromisoformat also takes 20270331 and 2027-W13-3; a baseline is read by people, so one spelling.
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True)
class Entry:
    """One accepted failure: the rule, why it is accepted, and the last day it is (None: no end)."""

    rule: str
    reason: str
    expires: date | None = None


@dataclass(frozen=True, slots=True)
class Baseline:
    """A baseline file's entries, one per rule, in catalogue order."""

    path: Path
    entries: tuple[Entry, ...] = ()

    def get(self, rule_id: str) -> Entry | None:
        return next((entry for entry in self.entries if entry.rule == rule_id), None)


@dataclass(frozen=True, slots=True)
class BaselineUpdate:
    """What `--baseline-update` makes of a baseline after a run: the new file and what changed."""

    baseline: Baseline
    added: tuple[str, ...]
    dropped: tuple[str, ...]
    kept: tuple[str, ...]

    @property
    def note(self) -> str:
        """One line for the terminal saying what was written."""
        parts = [f"{len(self.kept)} kept"] if self.kept else []
        if self.added:
            parts.append(f"{len(self.added)} added ({', '.join(self.added)})")
        if self.dropped:
            parts.append(f"{len(self.dropped)} dropped as their rules hold now ({', '.join(self.dropped)})")
        count = len(self.baseline.entries)
        changes = f" ({'; '.join(parts)})" if parts else ""
        return (
            f"Wrote the baseline {self.baseline.path}: {count} entr{'y' if count == 1 else 'ies'}{changes}."
        )


# --- reading ----------------------------------------------------------------------------------------


def load_baseline(path: Path, *, catalogue: Catalogue | None = None, missing_ok: bool = False) -> Baseline:
    """Read and check a baseline file; `missing_ok` (for --baseline-update) makes a missing one empty.

    Raises UsageError, in one sentence naming the file and the entry at fault, for a file that is
    missing or unreadable, not JSON, of another version, or with an entry that names an unknown rule
    (the closest id suggested), gives no reason, or has a bad date.
    """
    catalogue = catalogue if catalogue is not None else load_catalogue()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return Baseline(path=path)
        raise UsageError(
            f"The baseline file {path} does not exist; check the path, or write it with --baseline-update."
        ) from None
    except IsADirectoryError:
        raise UsageError(f"The baseline {path} is a directory; give the path of a JSON file.") from None
    except OSError as ex:
        raise UsageError(f"The baseline file {path} cannot be read ({ex.strerror or ex}).") from None
    except UnicodeDecodeError:
        raise UsageError(f"The baseline file {path} is not UTF-8 text; it must be JSON.") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as ex:
        raise UsageError(
            f"The baseline file {path} is not valid JSON ({ex.msg} at line {ex.lineno}, column {ex.colno}); "
            "fix it, or delete it and write it again with --baseline-update."
        ) from None
    return Baseline(path=path, entries=_entries(document, path, catalogue))


def _entries(document: Any, path: Path, catalogue: Catalogue) -> tuple[Entry, ...]:
    if not isinstance(document, dict):
        raise UsageError(
            f"The baseline file {path} must hold a JSON object with version and accepted, not "
            f"{_json_kind(document)}."
        )
    _refuse_unknown_keys(document, _TOP_KEYS, f"The baseline file {path}")
    if document.get("version") != VERSION:
        found = "no version" if "version" not in document else f"version {document['version']!r}"
        raise UsageError(
            f"The baseline file {path} has {found}; this enginy-conformance reads version {VERSION}."
        )
    accepted = document.get("accepted", [])
    if not isinstance(accepted, list):
        raise UsageError(
            f"The baseline file {path}: accepted must be a list of entries, not {_json_kind(accepted)}."
        )
    entries: dict[str, tuple[int, Entry]] = {}
    for index, item in enumerate(accepted):
        entry = _entry(item, f"The baseline file {path}: accepted[{index}]", catalogue)
        if entry.rule in entries:
            raise UsageError(
                f"The baseline file {path} lists {entry.rule} twice (accepted[{entries[entry.rule][0]}] and "
                f"accepted[{index}]); keep one entry per rule."
            )
        entries[entry.rule] = (index, entry)
    return _in_catalogue_order((entry for _, entry in entries.values()), catalogue)


def _entry(item: Any, where: str, catalogue: Catalogue) -> Entry:
    if not isinstance(item, dict):
        raise UsageError(f"{where} must be an object with rule and reason, not {_json_kind(item)}.")
    raw_rule = item.get("rule")
    if not isinstance(raw_rule, str) or not raw_rule.strip():
        raise UsageError(f"{where} has no rule: give the rule id whose failure it accepts.")
    rule = raw_rule.strip().upper()
    where = f"{where} ({rule})"
    if rule not in catalogue:
        close = difflib.get_close_matches(rule, catalogue.ids, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UsageError(
            f"{where} names a rule the catalogue does not have{hint}; 'enginy-conformance rules' lists them."
        )
    _refuse_unknown_keys(item, _ENTRY_KEYS, where)
    reason = item.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise UsageError(f"{where} has no reason: say in a sentence why its failure is accepted.")
    return Entry(rule=rule, reason=" ".join(reason.split()), expires=_expires(item.get("expires"), where))


def _expires(raw: Any, where: str) -> date | None:
    if raw is None:
        return None
    if isinstance(raw, str) and _ISO_DATE.match(raw.strip()):
        try:
            return date.fromisoformat(raw.strip())
        except ValueError:
            pass  # 2027-02-30: the right shape, but no such day
    raise UsageError(
        f"{where} has expires {raw!r}; give a date as YYYY-MM-DD (e.g. 2027-03-31), or leave it out."
    )


def _refuse_unknown_keys(found: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in found:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UsageError(f"{where} has an unknown key {key!r}{hint}; the keys are {', '.join(known)}.")


def _json_kind(value: Any) -> str:
    kinds = (
        (bool, "a boolean"),
        (str, "a string"),
        (int | float, "a number"),
        (list, "a list"),
        (dict, "an object"),
    )
    return next((name for kind, name in kinds if isinstance(value, kind)), "null")


def _in_catalogue_order(entries: Iterable[Entry], catalogue: Catalogue) -> tuple[Entry, ...]:
    order = {rule_id: index for index, rule_id in enumerate(catalogue.ids)}
    return tuple(sorted(entries, key=lambda entry: order[entry.rule]))


def is_placeholder(reason: str) -> bool:
    """Whether a reason is still the one --baseline-update wrote (nobody has said why yet)."""
    return reason.startswith(PLACEHOLDER_PREFIX)


# --- applying -------------------------------------------------------------------------------------


def apply_baseline(report: RunReport, baseline: Baseline, *, today: date) -> RunReport:
    """The report with every result's baseline mark set from `baseline` (see the table above).

    Outcomes and evidence are left as the run found them; only the marks (and so the verdict) change.
    Applying again replaces the marks, so the same report can be judged against an updated file.
    """
    selected = {result.rule.id for result in report.results}
    results = tuple(
        replace(result, baseline=_mark(result, baseline.get(result.rule.id), today))
        for result in report.results
    )
    use = BaselineUse(
        path=str(baseline.path),
        not_selected=tuple(entry.rule for entry in baseline.entries if entry.rule not in selected),
    )
    return replace(report, results=results, baseline=use)


def _mark(result: Result, entry: Entry | None, today: date) -> BaselineMark | None:
    if entry is None:
        return None
    status: BaselineStatus
    if result.outcome == "passed":
        status = "stale"
    elif result.outcome == "skipped":
        status = "not_judged"
    elif entry.expires is not None and today > entry.expires:
        status = "expired"
    else:
        status = "accepted"
    return BaselineMark(status=status, reason=entry.reason, expires=entry.expires)


def describe_mark(mark: BaselineMark) -> str:
    """What a baseline entry did to its rule, in one phrase (no closing period), the same everywhere."""
    if mark.status == "accepted":
        until = f" until {mark.expires.isoformat()}" if mark.expires is not None else " (no expiry)"
        return f"Accepted by the baseline{until}: {mark.reason}"
    if mark.status == "expired":
        assert mark.expires is not None
        return (
            f"The baseline entry for it expired on {mark.expires.isoformat()}, so this failure counts again "
            f"(its reason was: {mark.reason})"
        )
    if mark.status == "stale":
        return "The rule holds now: its baseline entry can be removed (--baseline-update drops it)"
    return (
        "Not judged in this run, so its baseline entry accepts nothing: an entry accepts a failure that was "
        "seen, it does not stand in for a judgement"
    )


def accepted_summary(report: RunReport) -> str:
    """One sentence naming the failures and warnings the baseline accepts in this run ("" for none)."""
    parts = []
    for outcome, what in (("failed", "MUST failure"), ("warning", "SHOULD warning")):
        ids = [result.rule.id for result in report.accepted if result.outcome == outcome]
        if ids:
            parts.append(f"{len(ids)} {what}{'' if len(ids) == 1 else 's'} ({', '.join(ids)})")
    return f"The baseline accepts {' and '.join(parts)}." if parts else ""


def baseline_notes(report: RunReport) -> list[str]:
    """Lines for the terminal about the baseline: expired and stale entries, reasons still to write."""
    if report.baseline is None:
        return []
    path = report.baseline.path
    marked = [result for result in report.results if result.baseline is not None]
    notes: list[str] = []
    for result in marked:
        mark = result.baseline
        assert mark is not None
        if mark.status == "expired":
            assert mark.expires is not None
            notes.append(
                f"The baseline entry for {result.rule.id} expired on {mark.expires.isoformat()}, so its "
                f"failure counts again; fix the rule, or move the date in {path} if the acceptance is "
                "renewed (--baseline-update never moves it)."
            )
        elif mark.status == "stale":
            notes.append(
                f"{result.rule.id} holds now: its entry in the baseline {path} can be removed "
                "(--baseline-update drops it)."
            )
        elif mark.status == "not_judged":
            notes.append(
                f"The baseline accepts failures of {result.rule.id}, but this run did not judge it: an entry "
                "never stands in for a judgement."
            )
    todo = [result.rule.id for result in marked if result.baseline and is_placeholder(result.baseline.reason)]
    if todo:
        notes.append(
            f"The baseline {path} gives no reason yet for {', '.join(todo)}: replace the TODO with why the "
            "failure is accepted."
        )
    return notes


# --- rewriting ------------------------------------------------------------------------------------


def updated_baseline(
    baseline: Baseline, report: RunReport, *, today: date, catalogue: Catalogue | None = None
) -> BaselineUpdate:
    """The baseline `--baseline-update` writes after this run (the rules are in the module docstring).

    `report` is the run's report, with or without marks: only outcomes count here.
    """
    catalogue = catalogue if catalogue is not None else load_catalogue()
    outcomes = {result.rule.id: result.outcome for result in report.results}
    kept = [entry for entry in baseline.entries if outcomes.get(entry.rule) != "passed"]
    dropped = tuple(entry.rule for entry in baseline.entries if outcomes.get(entry.rule) == "passed")
    run_id = report.settings.get("run_id") or "?"
    reason = (
        f"{PLACEHOLDER_PREFIX} say why this failure is accepted (added by --baseline-update on "
        f"{today.isoformat()} from run {run_id})"
    )
    added = [
        Entry(rule=result.rule.id, reason=reason)
        for result in report.results
        if result.outcome == "failed" and baseline.get(result.rule.id) is None
    ]
    return BaselineUpdate(
        baseline=Baseline(path=baseline.path, entries=_in_catalogue_order([*kept, *added], catalogue)),
        added=tuple(entry.rule for entry in added),
        dropped=dropped,
        kept=tuple(entry.rule for entry in kept),
    )


def to_document(baseline: Baseline) -> dict[str, Any]:
    """The file's JSON, `expires` left out where there is none."""
    accepted: list[dict[str, str]] = []
    for entry in baseline.entries:
        item = {"rule": entry.rule, "reason": entry.reason}
        if entry.expires is not None:
            item["expires"] = entry.expires.isoformat()
        accepted.append(item)
    return {"version": VERSION, "accepted": accepted}


def write_baseline(baseline: Baseline) -> Path:
    """Write the file atomically: whole into a temporary file beside it, then renamed over it.

    An existing file keeps its permissions. Raises UsageError when the directory is not writable.
    """
    path = baseline.path
    text = json.dumps(to_document(baseline), indent=2, ensure_ascii=False) + "\n"
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        # A plain exclusive open, not mkstemp: the file gets the umask's permissions, as an editor's would.
        with temporary.open("x", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            temporary.chmod(path.stat().st_mode & 0o7777)
        os.replace(temporary, path)
    except OSError as ex:
        temporary.unlink(missing_ok=True)
        raise UsageError(
            f"Could not write the baseline {path} ({ex.strerror or ex}); check that its directory exists and "
            "is writable."
        ) from None
    return path
