"""The traffic model of `enginy-conformance load`, read from spec/traffic.yaml (shipped in enginy_spec).

    spec/traffic.yaml → load_model(profile) → TrafficModel (actions with weights and batch sizes)

The model says what Enginy sends and how often; `conformance.load_locust` turns each action into a
Locust task. Nothing here imports Locust or gevent: the CLI process reads the model to validate
`--profile` before it starts the Locust process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from conformance.errors import UsageError
from enginy_spec import TRAFFIC_PATH

__all__ = ["ACTIONS", "Action", "TrafficModel", "load_model", "profiles"]

# Every action the Locust user knows how to perform; the model may weigh each, or leave one out.
ACTIONS: Final = (
    "export_contacts",
    "export_companies",
    "sync_contacts",
    "sync_companies",
    "associate",
    "create_task",
    "read_tasks",
    "complete_tasks",
    "activity_burst",
    "health",
)


@dataclass(frozen=True, slots=True)
class Action:
    """One thing Enginy does: how often (`weight`) and how many items per request (`batch_min..max`)."""

    name: str
    weight: int
    batch_min: int = 1
    batch_max: int = 1
    source: str = ""
    proportion: str = ""


@dataclass(frozen=True, slots=True)
class TrafficModel:
    """A profile of the model: its actions and the wait between two of them (seconds)."""

    profile: str
    description: str
    actions: tuple[Action, ...]
    wait_min: float = 0.0
    wait_max: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "wait": [self.wait_min, self.wait_max],
            "actions": {
                a.name: {"weight": a.weight, "batch": [a.batch_min, a.batch_max]} for a in self.actions
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrafficModel:
        wait = data.get("wait", [0.0, 0.0])
        return cls(
            profile=str(data["profile"]),
            description="",
            wait_min=float(wait[0]),
            wait_max=float(wait[1]),
            actions=tuple(
                Action(
                    name=name,
                    weight=int(spec["weight"]),
                    batch_min=spec["batch"][0],
                    batch_max=spec["batch"][1],
                )
                for name, spec in data["actions"].items()
            ),
        )


def _document(path: Path) -> Mapping[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict):
        raise UsageError(f"The traffic model {path} has no 'profiles' mapping; reinstall the package.")
    return data


def profiles(path: Path = TRAFFIC_PATH) -> tuple[str, ...]:
    """The profiles the model file defines (for `--profile`)."""
    return tuple(_document(path)["profiles"])


def load_model(profile: str, path: Path = TRAFFIC_PATH) -> TrafficModel:
    """The profile of the traffic model; an unknown profile or action is a UsageError."""
    found = _document(path)["profiles"]
    if profile not in found:
        raise UsageError(f"--profile must be one of {', '.join(found)} for load, not {profile!r}.")
    raw = found[profile]
    actions: list[Action] = []
    for name, spec in (raw.get("actions") or {}).items():
        if name not in ACTIONS:
            raise UsageError(f"The traffic model {path} names an unknown action {name!r} in {profile}.")
        batch = spec.get("batch") or {}
        low, high = int(batch.get("min", 1)), int(batch.get("max", 1))
        weight = int(spec["weight"])
        if weight < 0 or not 1 <= low <= high:
            raise UsageError(f"The traffic model {path}: {profile}.{name} has a bad weight or batch range.")
        actions.append(
            Action(
                name=name,
                weight=weight,
                batch_min=low,
                batch_max=high,
                source=str(spec.get("source", "")),
                proportion=str(spec.get("proportion", "")),
            )
        )
    if not any(action.weight for action in actions):
        raise UsageError(f"The traffic model {path}: profile {profile} has no action with a weight.")
    wait = raw.get("wait") or {}
    return TrafficModel(
        profile=profile,
        description=" ".join(str(raw.get("description", "")).split()),
        actions=tuple(actions),
        wait_min=float(wait.get("min", 0.0)),
        wait_max=float(wait.get("max", 0.0)),
    )
