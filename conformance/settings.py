"""The settings of one run, resolved once from flags, environment variables and a config file.

Precedence is flag > environment > config file > default, resolved in `resolve_settings` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["DEFAULT_API_KEY_HEADER", "Profile", "RunSettings"]

Profile = Literal["quick", "full"]
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
    timeout: float = 10.0
    seed: int = 0
    dry_run: bool = False
    workers: int = 2  # an upper bound: the engine runs 1 on Python 3.11, where 2+ crash Hypothesis
    tag: str = "enginy-conformance"  # prefix of every record the run creates, so it can be cleaned up
