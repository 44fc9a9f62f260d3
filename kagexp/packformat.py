"""THE pack folder format: what `kagexp pack` writes and what the Kaggle kernel and `kagexp rehearse` read.

```
PACK/                          # a Kaggle dataset: `kaggle datasets create -p PACK --dir-mode zip`
├── dataset-metadata.json      # id, title, licenses
├── kagexp-pack.json           # the manifest: format, dataset, competition, runs, the kernel's run
├── wheels/                    # kagexp's own wheel and those of --wheels
├── exp003/run002/             # the run's recorded config and meta, and the artifacts chosen
├── exp003/code/<hash>/        # the snapshot of the code the run ran (its exp.py, model.py …)
├── blend/blend001/            # a packed blend: its config and meta, and blend.json, its recipe
├── kernel/                    # `kaggle kernels push -p PACK/kernel`: kernel-metadata.json, infer.py
└── rehearsal/                 # `kagexp rehearse`: the kernel's working folder and its report
```

The run folders inside keep the run-folder format (`kagexp.runfolder`), so the same code reads a
packed run and a project's run. The manifest carries `format`; reading checks its shape. This
module stays light (stdlib only): the offline kernel imports it before anything else.

A blend is packed with its members (each a run as above) and its recipe, `blend.json`: the
method, each member's weight and the submission's columns, all the kernel needs to combine the
members' submissions as `kagexp blend` combined their test predictions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kagexp.errors import NotFoundError

FORMAT = 1
MANIFEST = "kagexp-pack.json"
DATASET_METADATA = "dataset-metadata.json"
WHEELS = "wheels"
CODE = "code"
KERNEL = "kernel"
KERNEL_METADATA = "kernel-metadata.json"
KERNEL_SCRIPT = "infer.py"
REHEARSAL = "rehearsal"
BLEND_RECIPE = "blend.json"  # in a packed blend's folder
REHEARSAL_LOG = "kernel.log"  # in REHEARSAL, beside the working folder
NOT_UPLOADED = (KERNEL, REHEARSAL)  # beside the dataset's files, never part of it


@dataclass(frozen=True)
class Manifest:
    """What a pack holds: its dataset id, the competition, the runs and the one the kernel infers."""

    dataset: str
    competition: str | None
    runs: list[str]
    kernel_run: str
    code: dict[str, str]  # run → its code hash

    def to_json(self) -> dict:
        return {"format": FORMAT, **self.__dict__}


@dataclass(frozen=True)
class Recipe:
    """How a packed blend combines its members' submissions into its own."""

    method: str
    members: list[str]
    weights: list[float]  # one per member: those the blend used on the test rows
    columns: list[str]  # the blend's submission header: the id column, then the predictions

    def to_json(self) -> dict:
        return {"format": FORMAT, **self.__dict__}

    def is_valid(self) -> bool:
        """The shape the kernel relies on: names, one number per member, an id and a prediction column."""
        lists = (self.members, self.weights, self.columns)
        if not isinstance(self.method, str) or not all(isinstance(x, list) for x in lists):
            return False
        numbers = all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in self.weights)
        names = all(isinstance(x, str) for x in [*self.members, *self.columns])
        return numbers and names and len(self.members) == len(self.weights) > 0 and len(self.columns) >= 2


def read_recipe(pack: Path, run: str) -> Recipe | None:
    """The recipe of a packed blend; None for a packed run that is not a blend."""
    path = run_dir(pack, run) / BLEND_RECIPE
    if not path.is_file():
        return None
    damaged = NotFoundError(f"{path} is damaged; pack {run} again")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        recipe = Recipe(**{k: data[k] for k in Recipe.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        raise damaged from None
    if not recipe.is_valid():
        raise damaged
    return recipe


def read_manifest(pack: Path) -> Manifest:
    """The manifest of a pack folder; a NotFoundError when `pack` is not one, or is damaged."""
    try:
        data = json.loads((pack / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise NotFoundError(
            f"{pack} is not a kagexp pack (no readable {MANIFEST}); make one with `kagexp pack`"
        ) from None
    try:
        manifest = Manifest(**{k: data[k] for k in Manifest.__dataclass_fields__})
    except (KeyError, TypeError):
        raise NotFoundError(f"{pack / MANIFEST} is damaged; pack the run again") from None
    if not isinstance(manifest.runs, list) or not isinstance(manifest.code, dict):
        raise NotFoundError(f"{pack / MANIFEST} is damaged; pack the run again")
    return manifest


def run_dir(pack: Path, run: str) -> Path:
    """Where a run (`exp003/run002`) lies in a pack."""
    exp, name = run.split("/")
    return pack / exp / name


def code_dir(pack: Path, run: str, code_hash: str) -> Path:
    return pack / run.split("/")[0] / CODE / code_hash


def find_pack(input_root: Path, run: str) -> Path:
    """The pack under Kaggle's input folder that holds `run`: a dataset is mounted at
    `/kaggle/input/<slug>/` (or deeper, `/kaggle/input/datasets/<owner>/<slug>/`)."""
    candidates = [input_root, *sorted(input_root.glob("*")), *sorted(input_root.glob("*/*/*"))]
    for folder in candidates:
        if (folder / MANIFEST).is_file() and run in read_manifest(folder).runs:
            return folder
    raise NotFoundError(
        f"no pack holding {run} under {input_root}; add the dataset made by `kagexp pack {run}` to the notebook"
    )
