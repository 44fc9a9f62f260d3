"""What the offline Kaggle kernel calls: `kagexp.kaggle.infer("exp003/run002")`.

It finds the packed run under Kaggle's input folder, imports the snapshot of its exp.py (the main
line does not run) and calls its `infer(cfg, ctx)` with the recorded config; the submission goes
where Kaggle looks for it. Light to import: a Kaggle image has yaml, not kagexp's other needs.
`KAGEXP_KAGGLE_INPUT` and `KAGEXP_KAGGLE_WORKING` move both folders (`kagexp rehearse` sets them).

A packed blend (`kagexp.kaggle.infer("blend/blend001")`) runs each member's `infer` in a scratch
folder of its own, then combines their submissions as the blend recorded (`kagexp.packblend`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from kagexp import packformat
from kagexp.errors import KagexpError
from kagexp.runfolder import SUBMISSION

INPUT = "/kaggle/input"
WORKING = "/kaggle/working"


def input_root() -> Path:
    return Path(os.environ.get("KAGEXP_KAGGLE_INPUT") or INPUT)


def working_dir() -> Path:
    return Path(os.environ.get("KAGEXP_KAGGLE_WORKING") or WORKING)


def infer(run: str) -> Path:
    """Write the packed run's (or blend's) submission into Kaggle's working folder; returns its path."""
    pack = packformat.find_pack(input_root(), run)
    manifest = packformat.read_manifest(pack)
    recipe = packformat.read_recipe(pack, run)
    if recipe is None:
        submission, seconds = _infer_packed(pack, manifest, run, working_dir(), run)
    else:
        submission, seconds = _infer_blend(pack, manifest, run, recipe)
    print(f"kagexp: {run} inferred in {seconds:.1f} s: {submission}", file=sys.stderr, flush=True)
    _tell_rehearsal(seconds)
    return submission


def _infer_packed(pack: Path, manifest: packformat.Manifest, run: str, working: Path, label: str) -> tuple[Path, float]:
    """One packed run's `infer` into `working`: its submission and the seconds it took."""
    from kagexp.inference import infer_run

    root = input_root()
    competition = root / manifest.competition if manifest.competition else root
    code = packformat.code_dir(pack, run, manifest.code[run])
    done = infer_run(run, packformat.run_dir(pack, run), code, competition, working)
    if done.submission is None:
        raise SystemExit(f"kagexp: {label}: infer(cfg, ctx) saved no submission.csv; call ctx.save_submission(...)")
    return done.submission, done.seconds


def _infer_blend(pack: Path, manifest: packformat.Manifest, run: str, recipe: packformat.Recipe) -> tuple[Path, float]:
    """Each member inferred in its own scratch folder, their submissions combined; a member's error
    (no `infer`, a missing artifact, other rows) is one line naming the blend and the member."""
    from kagexp.packblend import combine_submissions, read_submission

    working = working_dir()
    working.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".kagexp-blend-", dir=working))
    submissions, seconds = [], 0.0
    try:
        for member in recipe.members:
            label = f"{run}: member {member}"
            path, took = _infer_packed(pack, manifest, member, scratch / member.replace("/", "-"), label)
            submissions.append(read_submission(path, member, recipe.columns))
            seconds += took
        submission = combine_submissions(recipe, submissions, working / SUBMISSION)
    except KagexpError as exc:
        raise SystemExit(f"kagexp: error: {run}: member {exc}") from None
    shutil.rmtree(scratch)
    return submission, seconds


def _tell_rehearsal(seconds: float) -> None:
    """Under `kagexp rehearse`, the time of `infer` alone: what grows with the hidden test set."""
    events = os.environ.get("KAGEXP_REHEARSAL_EVENTS")
    if events:
        with open(events, "a", encoding="utf-8") as f:
            f.write(json.dumps({"kind": "infer", "seconds": seconds}) + "\n")
