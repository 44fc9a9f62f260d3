"""Trackers: services a run's metrics are forwarded to, besides its own files (wandb for now).

A tracker has two keyword-only methods and one attribute; `kagexp.run` drives it:
`start` (in the tracker's module) before the run function is called, `log` at every `ctx.log`,
`finish` with the run's status, and `info` goes into `meta.json` under the tracker's name.

A tracker that cannot start fails the run (its files say why); one that breaks later is
switched off for the rest of the run with one line on stderr, and the run and its own files
go on: metrics in `metrics.json` never depend on a service.

Nothing here imports wandb: it is imported by `kagexp.integrations.wandb`, only when enabled.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

from kagexp.errors import ConfigError
from kagexp.provenance import importable

WANDB_KEYS = ("enabled", "project", "entity", "mode", "tags", "job_type")
WANDB_MODES = (None, "online", "offline", "disabled", "shared")


class Tracker(Protocol):
    info: dict

    def log(self, *, metrics: dict[str, Any], step: int | None) -> None: ...

    def finish(self, *, status: str) -> None: ...


def wandb_settings(settings: dict, merged: dict, project: str, note: str | None) -> dict | None:
    """What one run tells W&B, or None when wandb is off for it.

    `settings` is kagexp.yml's `wandb:`; a run's config may override it with a top-level `wandb:`
    (`wandb: false` for a quick debugging run, or a mapping of the same keys).
    """
    chosen = dict(settings)
    own = merged.get("wandb")
    if isinstance(own, bool):
        chosen["enabled"] = own
    elif isinstance(own, dict):
        unknown = sorted(set(own) - set(WANDB_KEYS))
        if unknown:
            known = ", ".join(WANDB_KEYS)
            raise ConfigError(f"config key `wandb.{unknown[0]}` is not a wandb setting; the settings are: {known}")
        chosen.update(own)
    if not chosen["enabled"]:
        return None
    if chosen["mode"] not in WANDB_MODES:
        raise ConfigError(f"wandb.mode must be online, offline or disabled, not {chosen['mode']!r}")
    if not importable("wandb"):
        raise ConfigError("wandb is enabled (`wandb.enabled`) but not installed: pip install 'kagexp[wandb]'")
    tags = chosen["tags"] or []
    return {
        "project": chosen["project"] or project,
        "entity": chosen["entity"],
        "mode": chosen["mode"],
        "tags": [str(tag) for tag in (tags if isinstance(tags, list) else [tags])],
        "job_type": chosen["job_type"],
        "notes": note,
    }


def open_tracker(spec) -> Guarded | None:
    """The run's tracker, started; None when the run has none. Raises when it cannot start."""
    if not getattr(spec, "tracking", None):
        return None
    from kagexp.integrations.wandb import WandbTracker

    return Guarded("wandb", WandbTracker.start(spec=spec))


class Guarded:
    """A started tracker whose failures switch it off instead of failing the run."""

    def __init__(self, name: str, tracker: Tracker) -> None:
        self.name = name
        self.tracker: Tracker | None = tracker
        self.info = dict(tracker.info)

    def log(self, *, metrics: dict[str, Any], step: int | None) -> None:
        if self.tracker is not None:
            try:
                self.tracker.log(metrics=metrics, step=step)
            except Exception as exc:
                self._switch_off(exc)

    def finish(self, *, status: str) -> None:
        if self.tracker is not None:
            tracker, self.tracker = self.tracker, None
            try:
                tracker.finish(status=status)
            except Exception as exc:
                self._switch_off(exc)

    def _switch_off(self, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        self.info["error"] = message
        print(
            f"kagexp: {self.name} failed ({message}); switched off for this run, whose own files go on",
            file=sys.stderr,
            flush=True,
        )
        tracker, self.tracker = self.tracker, None
        if tracker is not None:
            try:
                tracker.finish(status="failed")
            except Exception:
                pass
