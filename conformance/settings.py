"""The settings of one run, resolved once from flags, environment variables and a config file.

Precedence is flag > environment > config file > default, resolved in `resolve_settings` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["DEFAULT_API_KEY_HEADER", "ColorChoice", "Profile", "RunSettings"]

Profile = Literal["quick", "full"]
ColorChoice = Literal["auto", "always", "never"]
DEFAULT_API_KEY_HEADER = "X-API-Key"


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Everything a run needs to know; immutable once resolved."""

    base_url: str
    api_key: str = field(repr=False)  # a secret: never in repr, logs or reports
    api_key_header: str = DEFAULT_API_KEY_HEADER
    profile: Profile = "quick"
    only: tuple[str, ...] = ()
    report_dir: Path = Path("reports")
    max_writes: int | None = None
    timeout: float = 10.0  # seconds for one request, whole answer included
    seed: int = 0
    # Requests in flight at most: scripted checks at once, and generated testing's worker processes.
    # 16, not 8: at 200 ms an answer, quick's ~1,200 requests need 30 s at 8 in flight before any
    # other cost, and a staging server takes 16 connections in its stride (a 429 slows the run down).
    concurrency: int = 16
    max_time: float | None = None  # seconds for the whole run; past it, what is left is not judged
    # The file of accepted failures (conformance.baseline), and whether to rewrite it after the run.
    baseline: Path | None = None
    update_baseline: bool = False
    dry_run: bool = False
    workers: int = 1  # Schemathesis threads in one process (the partitioned pass uses processes instead)
    # How the terminal shows the run (conformance.terminal); the runner and the reports do not read it.
    color: ColorChoice = "auto"
    tag: str = "enginy-conformance"  # prefix of every record the run creates, so it can be cleaned up
