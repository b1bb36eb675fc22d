"""The terminal of `enginy-conformance run` and `demo`: colour, the live progress, the end screen.

    decide(choice, is_tty, env) → Mode(color, live)       one place for "colour or not, live or not"
    Terminal (a runner.RunObserver)
      on a terminal: one rich.progress display for the whole run, a row per stage (the scripted checks,
                     then each Schemathesis phase): requests done of about how many, time left
      otherwise:     one plain line when a stage starts and one when it ends (CI logs), the progress
                     line every 10 s while the run lasts, and no ANSI escape at all (unless --color always)
    Terminal.show_outcome                                   the end screen:
      one table (failures, warnings, accepted, not judged; the passed rules as one "N rules passed" row
      unless --verbose), the counts and the verdict, the seed, then a block per failure and warning:
      the rule and its level, expected against received, the response (status, the first lines of its
      body) and the curl that replays it, the key read from $ENGINY_API_KEY.

Colour (`--color`, ENGINY_COLOR, `color` in the config file): `auto` colours only a terminal, and not
when NO_COLOR is set (https://no-color.org); `always` colours a pipe too (a CI log that renders ANSI)
and wins over NO_COLOR, as an explicit choice should; `never` never. The live display needs a real
terminal whatever the colour: a pipe or a file gets the plain lines.

Everything shown is text the run already redacted; the terminal redacts it once more with the key it
is given (a second line of defence, as the report writers' `scrub_settings` is), and never prints a
curl with the key in it: `curl_command` (conformance.report) reads it from $ENGINY_API_KEY.
"""

from __future__ import annotations

import http
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Final, get_args

from rich import box
from rich.console import Console
from rich.progress import BarColumn, ProgressColumn, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as LiveProgress
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from conformance.report import curl_command, group_of, key_header, ordered
from conformance.results import Evidence, Exchange, Result, RunReport
from conformance.runner import (
    MARKS,
    PROGRESS_EVERY_S,
    Progress,
    RunOutcome,
    Stage,
    counts_line,
    reason_of,
    verdict_line,
)
from conformance.settings import ColorChoice

__all__ = ["COLOR_CHOICES", "ColorChoice", "Mode", "Terminal", "decide", "open_terminal"]

COLOR_CHOICES: Final[tuple[str, ...]] = get_args(ColorChoice)

# Width of the end screen when the output is not a terminal and COLUMNS does not say: a CI log is wide.
PIPE_WIDTH: Final = 120
MAX_BLOCKS: Final = 10  # failure blocks on the end screen; report.html has every one
BODY_LINES: Final = 8  # lines of a response body in a failure block
MAX_LINE: Final = 200  # characters of one line of a body, of expected or of received

_STYLES: Final[Mapping[str, str]] = {
    "failed": "bold red",
    "warning": "yellow",
    "accepted": "cyan",
    "skipped": "dim",
    "passed": "green",
}
_VERDICT_STYLES: Final[Mapping[str, str]] = {
    "failed": "bold red",
    "incomplete": "bold yellow",
    "passed": "bold green",
}


@dataclass(frozen=True, slots=True)
class Mode:
    """How one run is shown: in colour or not, with a live display or as plain lines."""

    color: bool
    live: bool


def decide(choice: ColorChoice, *, is_tty: bool, env: Mapping[str, str]) -> Mode:
    """Colour and live display for `choice` on a stream that is (or is not) a terminal.

    TERM=dumb is a terminal that cannot move its cursor: no live display there, and no colour on auto.
    """
    terminal = is_tty and env.get("TERM", "") != "dumb"
    if choice == "always":
        color = True
    elif choice == "never":
        color = False
    else:
        color = terminal and not env.get("NO_COLOR", "")
    return Mode(color=color, live=terminal)


def open_terminal(
    choice: ColorChoice,
    *,
    verbose: bool = False,
    redact: Callable[[str], str] = lambda text: text,
    file: IO[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Terminal:
    """The Terminal for stdout (or `file`), decided from `choice`, the stream and the environment."""
    stream = file if file is not None else sys.stdout
    env = os.environ if env is None else env
    isatty = getattr(stream, "isatty", None)
    mode = decide(choice, is_tty=bool(isatty and isatty()), env=env)
    width = None
    if not mode.live and not env.get("COLUMNS", "").isdigit():
        width = PIPE_WIDTH
    console = Console(
        file=stream,
        # rich decides "terminal or not" from the stream unless told; told here, so that colour follows
        # `decide` alone (FORCE_COLOR, TTY_COMPATIBLE and the like do not second-guess --color).
        force_terminal=mode.live or mode.color,
        force_interactive=mode.live,
        color_system="auto" if mode.color else None,
        no_color=not mode.color,
        width=width,
        markup=False,
        emoji=False,
        highlight=False,
    )
    if mode.color and console.color_system is None:  # a terminal rich cannot tell the colours of
        console = Console(
            file=stream,
            force_terminal=True,
            force_interactive=mode.live,
            color_system="standard",
            no_color=False,
            width=width,
            markup=False,
            emoji=False,
            highlight=False,
        )
    return Terminal(console, mode, verbose=verbose, redact=redact)


class _MarkColumn(ProgressColumn):
    """A spinner while a stage runs; ✓ once done, - when skipped, · while it waits."""

    def __init__(self) -> None:
        super().__init__()
        self._spinner = Spinner("dots", style="cyan")

    def render(self, task: Task) -> Text:
        state = task.fields.get("state", "waiting")
        if state == "running":
            rendered = self._spinner.render(task.get_time())
            return rendered if isinstance(rendered, Text) else Text("…")
        return Text({"done": "✓", "skipped": "-"}.get(state, "·"), style=_STYLES.get(state, "dim"))


class _LeftColumn(ProgressColumn):
    """About how long a running stage has left, at its pace so far (its plan is an estimate)."""

    def render(self, task: Task) -> Text:
        if task.fields.get("state") != "running" or not task.completed or not task.elapsed:
            return Text("")
        left = max(0.0, (task.total or 0) - task.completed) * task.elapsed / task.completed
        return Text(f"about {left:.0f} s left" if left >= 1 else "finishing", style="cyan")


class Terminal:
    """One run on the terminal: the header, the stages while it lasts, the end screen.

    It is the run's `RunObserver` (conformance.runner): stage calls come from the run's threads, and
    `close` stops the live display, Ctrl-C included, before anything else is printed.
    """

    def __init__(
        self, console: Console, mode: Mode, *, verbose: bool = False, redact: Callable[[str], str]
    ) -> None:
        self.console = console
        self.mode = mode
        self._verbose = verbose
        self._redact = redact
        self._lock = threading.RLock()
        self._live: LiveProgress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._last_line: float | None = None

    # --- plain output -------------------------------------------------------------------------------

    def say(self, text: str, style: str | None = None) -> None:
        """One line, printed as it is (no wrapping, no markup), above the live display if one runs."""
        with self._lock:
            self.console.print(Text(_printable(self._redact(text)), style=style or ""), soft_wrap=True)

    # --- RunObserver ----------------------------------------------------------------------------------

    def stage_planned(self, stage: Stage) -> None:
        if not self.mode.live:
            return
        with self._lock:
            if self._live is None:
                self._live = LiveProgress(
                    _MarkColumn(),
                    TextColumn("{task.description}", markup=False),
                    BarColumn(bar_width=24),
                    TextColumn("{task.fields[counts]}"),
                    TimeElapsedColumn(),
                    _LeftColumn(),
                    console=self.console,
                    refresh_per_second=8,
                )
                self._live.start()
            self._tasks[stage.key] = self._live.add_task(
                self._description(stage),
                total=max(stage.planned, 1),
                start=False,
                state="waiting",
                counts=self._counts(stage),
            )

    def stage_started(self, stage: Stage) -> None:
        if self._live is not None:
            with self._lock:
                self._live.start_task(self._tasks[stage.key])
                self._update(stage)
            return
        what = (
            f"{stage.rules} rules, about {stage.planned:,} requests"
            if stage.rules
            else (f"about {stage.planned:,} requests")
        )
        self.say(f"▸ {stage.title}: {what}")

    def stage_finished(self, stage: Stage) -> None:
        if self._live is not None:
            with self._lock:
                self._update(stage)
                self._live.stop_task(self._tasks[stage.key])
            return
        if stage.state == "skipped":
            self.say(f"- {stage.title}: not run ({stage.note})", "dim")
            return
        style = "red" if stage.failed else "green"
        self.say(
            f"✓ {stage.title}: {stage.done:,} requests in {stage.seconds(time.monotonic()):.1f} s"
            + (f"; {self._tally(stage)}" if stage.rules else ""),
            style if self.mode.color else None,
        )

    def tick(self, progress: Progress) -> None:
        if self._live is not None:
            with self._lock:
                for stage in progress.stages:
                    if stage.key in self._tasks and stage.state == "running":
                        self._update(stage)
            return
        now = time.monotonic()
        if self._last_line is None:
            self._last_line = now
        elif now - self._last_line >= PROGRESS_EVERY_S:
            self._last_line = now
            self.say(progress.line(now), "dim")

    def judged(self, item: Evidence) -> None:
        # Rules are shown once, in the end screen's table; the live display counts them meanwhile.
        if self._verbose and not self.mode.live:
            self.say(f"{MARKS[item.outcome]} {item.rule_id}", _STYLES.get(item.outcome))

    def detail(self, text: str) -> None:
        if self._verbose:
            self.say(text, "dim")

    def close(self) -> None:
        with self._lock:
            if self._live is not None:
                self._live.stop()
                self._live = None

    def _update(self, stage: Stage) -> None:
        assert self._live is not None
        finished = stage.state in ("done", "skipped")
        self._live.update(
            self._tasks[stage.key],
            description=self._description(stage),
            total=max(stage.done if finished else stage.planned, stage.done, 1),
            completed=stage.done if stage.state != "skipped" else 0,
            state=stage.state,
            counts=self._counts(stage),
        )

    def _description(self, stage: Stage) -> str:
        text = f"{stage.title:<20}"
        if stage.rules:
            text += f" {stage.judged}/{stage.rules} rules"
            if stage.failed or stage.warnings:
                text += f" ({self._tally(stage).split(', ', 1)[1]})"
        if stage.state == "skipped":
            text += f" not run: {_clip(stage.note, 60)}"
        return _printable(self._redact(text))

    @staticmethod
    def _counts(stage: Stage) -> str:
        if stage.state in ("done", "skipped"):
            return f"{stage.done:,} requests"
        return f"{stage.done:,}/~{max(stage.planned, stage.done):,} requests"

    @staticmethod
    def _tally(stage: Stage) -> str:
        parts = [f"{stage.judged} rules judged"]
        if stage.failed:
            parts.append(f"{stage.failed} failed")
        if stage.warnings:
            parts.append(f"{stage.warnings} warning{'s' if stage.warnings > 1 else ''}")
        return ", ".join(parts)

    # --- the end screen --------------------------------------------------------------------------------

    def show_outcome(self, outcome: RunOutcome) -> None:
        """The table, the counts and verdict, the seed, a block per failure; then notes and reports."""
        self.close()
        report = outcome.report
        with self._lock:
            self.console.print()
            self.console.print(self._table(report))
            self.console.print()
            style = _VERDICT_STYLES[report.verdict]
            self.say(counts_line(report) + " " + verdict_line(report), style)
            seed = report.settings.get("seed", 0)
            self.say(f"Seed: {seed} (--seed {seed} sends the same generated requests again).", "dim")
            flagged = [r for r in ordered(report.results) if r.outcome in ("failed", "warning")]
            for result in flagged[:MAX_BLOCKS]:
                self.console.print()
                self._block(result, header=key_header(report))
            if len(flagged) > MAX_BLOCKS:
                self.console.print()
                self.say(f"{len(flagged) - MAX_BLOCKS} more failures and warnings are in report.html.")
            self.console.print()
            self._footer(outcome)

    def _table(self, report: RunReport) -> Table:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False)
        table.add_column("Rule", no_wrap=True)
        table.add_column("Level", no_wrap=True)
        table.add_column("Outcome", no_wrap=True)
        table.add_column("Reason", overflow="fold")
        passed = 0
        for result in ordered(report.results):
            group = group_of(result)
            if group == "passed" and not self._verbose:
                passed += 1
                continue
            cell = f"~ {result.outcome}, accepted" if result.accepted else f"{MARKS[result.outcome]} {group}"
            style = _STYLES[group]
            table.add_row(
                Text(result.rule.id, style=style if group != "skipped" else ""),
                result.rule.level,
                Text(cell, style=style),
                Text(_printable(self._redact(reason_of(result)))),
            )
        if passed:
            table.add_row(
                Text(f"{passed} {'rule' if passed == 1 else 'rules'} passed", style=_STYLES["passed"]),
                "",
                Text(f"{MARKS['passed']} passed", style=_STYLES["passed"]),
                Text("-v lists them", style="dim"),
            )
        return table

    def _block(self, result: Result, *, header: str) -> None:
        item = result.failures[0]
        group = group_of(result)
        accepted = ", accepted by the baseline" if result.accepted else ""
        title = Text(f"{MARKS[result.outcome]} {result.rule.id}", style=_STYLES[group])
        title.append(f" ({result.rule.level}, {result.outcome}{accepted})")
        self.console.print(title, soft_wrap=True)
        self.say(f"  {_clip(item.message)}")
        if item.expected or item.actual:
            self.say(f"  Expected: {_clip(item.expected or '(not stated)')}")
            self.say(f"  Received: {_clip(item.actual or '(not stated)')}")
        if not item.exchanges:
            return
        exchange = item.exchanges[-1]
        for line in _response_lines(exchange):
            self.say(line)
        self.say("  Reproduce (the key is read from $ENGINY_API_KEY):")
        for line in curl_command(exchange.request, key_header=header).splitlines():
            self.say(f"    {line}", "cyan")

    def _footer(self, outcome: RunOutcome) -> None:
        for note in outcome.notes:
            self.say(f"Note: {note}")
        report = outcome.report
        if report.created:
            tag = report.settings.get("tag", "enginy-conformance")
            tagged = (
                f"all tagged '{tag}'"
                if not report.untagged
                else f"tagged '{tag}' but for {report.untagged} that generated testing made from bodies it "
                "could not tag"
            )
            self.say(
                f"The run created {len(report.created)} records on the server, {tagged}; the report lists "
                "them for cleanup."
            )
        if outcome.report_paths:
            self.say("Reports:")
            for name, path in outcome.report_paths.items():
                self.say(f"  {name}: {path}")


def _clip(text: str, limit: int = MAX_LINE) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _cut(line: str, limit: int = MAX_LINE) -> str:
    # A body line keeps its indentation (pretty-printed JSON); only its length is bounded.
    line = line.rstrip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


# C0 and C1 controls (ESC among them): a server's text must not move the cursor or colour the terminal.
_CONTROLS: Final = {code: "\ufffd" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))}


def _printable(text: str) -> str:
    return text.translate(_CONTROLS)


def _response_lines(exchange: Exchange) -> list[str]:
    """The response in a few lines: status, type and time, then the first lines of the body."""
    response = exchange.response
    if response is None:
        return [f"  Response: none ({exchange.error or 'no answer'})"]
    try:
        phrase = http.HTTPStatus(response.status).phrase
    except ValueError:
        phrase = ""
    media = next((v for k, v in response.headers.items() if k.lower() == "content-type"), "")
    about = ", ".join(part for part in (media, f"{response.elapsed_ms:.0f} ms") if part)
    lines = [f"  Response: {response.status} {phrase}".rstrip() + f" ({about})"]
    body = response.body
    try:
        shown = json.dumps(json.loads(body), indent=2, ensure_ascii=False) if body.strip() else ""
    except ValueError:
        shown = body
    body_lines = [line for line in shown.splitlines() if line.strip()] or ["(empty body)"]
    lines += [f"    {_cut(line)}" for line in body_lines[:BODY_LINES]]
    if len(body_lines) > BODY_LINES:
        lines.append(f"    … {len(body_lines) - BODY_LINES} more lines (report.html has the whole answer)")
    return lines
