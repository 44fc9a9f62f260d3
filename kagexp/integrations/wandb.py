"""Weights & Biases: one W&B run per kagexp run.

`project` from `kagexp.yml` (default: the project's name), `group` the experiment, `name`
`exp/run`, `config` the merged config, `notes` the experiment's note, `tags` and `job_type` from
the settings. Files go to the run folder (`runNNN/wandb/`) unless `WANDB_DIR` is set; offline
runs (`mode: offline` or `WANDB_MODE=offline`) are uploaded later with `wandb sync <dir>`.

Never two W&B runs at once by accident: each run is created with `reinit="finish_previous"` (a
plain `init` with a run still open would return that run; one left open by a run that broke is
finished first) and finished when the kagexp run ends.
"""

from __future__ import annotations

import os
from typing import Any

EXIT_CODES = {"done": 0, "partial": 0, "interrupted": 130}  # partial: it ran as asked (some folds)


class WandbTracker:
    def __init__(self, run: Any) -> None:
        self.run = run
        self.last_step = -1
        settings = run.settings
        self.info = {
            "id": run.id,
            "url": run.url,
            "project": run.project,
            "mode": getattr(settings, "mode", None),
            "dir": str(getattr(settings, "sync_dir", "") or run.dir),
        }

    @classmethod
    def start(cls, *, spec) -> WandbTracker:
        import wandb

        s = spec.tracking
        options = dict(
            project=s["project"],
            entity=s["entity"],
            group=spec.exp,
            name=f"{spec.exp}/{spec.name}",
            job_type=s["job_type"],
            config=spec.config,
            notes=s["notes"],
            tags=s["tags"] or None,
            reinit="finish_previous",
        )
        if s["mode"]:
            options["mode"] = s["mode"]
        if not os.environ.get("WANDB_DIR"):
            options["dir"] = str(spec.out_dir)
        return cls(wandb.init(**options))

    def log(self, *, metrics: dict[str, Any], step: int | None) -> None:
        """W&B steps only go up: a step lower than the last one (a new fold restarting at 0) is
        logged at W&B's own next step, with kagexp's step kept as the metric `step`."""
        if step is None:
            self.run.log(metrics)
        elif isinstance(step, int) and step >= self.last_step:
            self.last_step = step
            self.run.log(metrics, step=step)
        else:
            self.run.log({**metrics, "step": step})

    def finish(self, *, status: str) -> None:
        self.run.finish(exit_code=EXIT_CODES.get(status, 1))
