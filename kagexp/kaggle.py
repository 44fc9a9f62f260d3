"""What the offline Kaggle kernel calls: `kagexp.kaggle.infer("exp003/run002")`.

It finds the packed run under Kaggle's input folder, imports the snapshot of its exp.py (the main
line does not run) and calls its `infer(cfg, ctx)` with the recorded config; the submission goes
where Kaggle looks for it. Light to import: a Kaggle image has yaml, not kagexp's other needs.
`KAGEXP_KAGGLE_INPUT` and `KAGEXP_KAGGLE_WORKING` move both folders (`kagexp rehearse` sets them).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from kagexp import packformat

INPUT = "/kaggle/input"
WORKING = "/kaggle/working"


def input_root() -> Path:
    return Path(os.environ.get("KAGEXP_KAGGLE_INPUT") or INPUT)


def working_dir() -> Path:
    return Path(os.environ.get("KAGEXP_KAGGLE_WORKING") or WORKING)


def infer(run: str) -> Path:
    """Write the packed run's submission into Kaggle's working folder; returns its path."""
    from kagexp.inference import infer_run

    root = input_root()
    pack = packformat.find_pack(root, run)
    manifest = packformat.read_manifest(pack)
    competition = root / manifest.competition if manifest.competition else root
    code = packformat.code_dir(pack, run, manifest.code[run])
    done = infer_run(run, packformat.run_dir(pack, run), code, competition, working_dir())
    if done.submission is None:
        raise SystemExit(f"kagexp: {run}: infer(cfg, ctx) saved no submission.csv; call ctx.save_submission(...)")
    print(f"kagexp: {run} inferred in {done.seconds:.1f} s: {done.submission}", file=sys.stderr, flush=True)
    _tell_rehearsal(done.seconds)
    return done.submission


def _tell_rehearsal(seconds: float) -> None:
    """Under `kagexp rehearse`, the time of `infer` alone: what grows with the hidden test set."""
    events = os.environ.get("KAGEXP_REHEARSAL_EVENTS")
    if events:
        with open(events, "a", encoding="utf-8") as f:
            f.write(json.dumps({"kind": "infer", "seconds": seconds}) + "\n")
