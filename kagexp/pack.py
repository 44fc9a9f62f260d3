"""`kagexp pack`: done runs as a Kaggle dataset plus an offline inference kernel.

The pack is built in a temporary folder beside its destination and renamed into place at the end,
so a failure leaves nothing behind; each packed run then records a reference to the pack, so that
`kagexp gc` keeps its files. The folder's layout is `kagexp.packformat`'s. A blend is packed as
its members (each packed as a run, once however many blends name it) and its recipe, which the
kernel uses to combine the members' submissions.
"""

from __future__ import annotations

import csv
import fnmatch
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from kagexp import files, packformat, runfolder, wheels
from kagexp.combine import METHODS
from kagexp.diskuse import tree_size
from kagexp.errors import ConfigError, NotFoundError, RunStateError, TargetExistsError, UsageError
from kagexp.project import Project
from kagexp.records import RunRecord, find_run
from kagexp.settings import DATASET_ID

KERNEL_SCRIPT = '''"""Inference kernel for {run}, written by `kagexp pack`: the internet is off, everything comes
from the dataset {dataset}: its wheels are installed offline, then the run's own infer(cfg, ctx) runs."""

import os
import subprocess
import sys
from pathlib import Path

RUN = "{run}"
DATASET = "{slug}"
INPUT = Path(os.environ.get("KAGEXP_KAGGLE_INPUT") or "/kaggle/input")

places = (f"{{DATASET}}/{manifest}", f"*/*/{{DATASET}}/{manifest}", "*/{manifest}")  # where Kaggle mounts it
pack = next(path.parent for place in places for path in sorted(INPUT.glob(place)))
wheels = sorted(str(p) for p in (pack / "{wheels}").glob("*.whl"))
pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--force-reinstall"]
subprocess.check_call([*pip, *wheels])

import kagexp.kaggle  # noqa: E402  (installed just above)

kagexp.kaggle.infer(RUN)
'''


@dataclass
class Packing:
    """One `kagexp pack` call: which runs, where, as which dataset, with which files."""

    project: Project
    run_ids: list[str]
    out: Path | None = None
    dataset: str | None = None
    artifacts: list[str] = field(default_factory=list)  # glob patterns; empty: every saved file
    requirements: list[str] = field(default_factory=list)  # for `pip download`

    @cached_property
    def records(self) -> list[RunRecord]:
        if not self.run_ids:
            raise UsageError("name at least one run to pack, e.g. kagexp pack exp003/run002")
        records = [find_run(self.project, run) for run in self.run_ids]
        for record in records:
            if record.status != "done":
                raise RunStateError(f"{record.id} is {record.status}, not done; only done runs can be packed")
        return records

    @cached_property
    def recipes(self) -> dict[str, packformat.Recipe]:
        """Each named blend's recipe, by its id."""
        return {r.id: blend_recipe(r) for r in self.records if r.exp == runfolder.BLENDS}

    @cached_property
    def packed(self) -> list[RunRecord]:
        """The named runs and each blend's members, once each, in the order they are named."""
        chosen: dict[str, RunRecord] = {}
        for record in self.records:
            members = self.recipes[record.id].members if record.id in self.recipes else []
            for one in [record, *(self._member(record, member) for member in members)]:
                chosen.setdefault(one.id, one)
        return list(chosen.values())

    def _member(self, blend: RunRecord, member: str) -> RunRecord:
        """A blend's member as it was blended: it must still be there, done, and not run since."""
        try:
            record = find_run(self.project, member)
        except NotFoundError as exc:
            raise NotFoundError(
                f"{blend.id}: its member {member} is gone: {exc}; restore it (kagexp restore) to pack the blend"
            ) from None
        if record.status != "done":
            raise RunStateError(
                f"{blend.id}: its member {record.id} is {record.status}, not done; only done runs can be packed"
            )
        if record.exp == runfolder.BLENDS:
            raise UsageError(f"{blend.id}: its member {record.id} is a blend; pack a blend of runs, not of blends")
        if _blended_start(blend, record.id) not in (None, record.meta.get("started")):
            raise RunStateError(
                f"{blend.id}: its member {record.id} ran again since it was blended; blend it again to pack it"
            )
        return record

    @cached_property
    def dataset_id(self) -> str:
        dataset = self.dataset or self.project.settings["kaggle"]["dataset"]
        if not dataset:
            raise ConfigError("no Kaggle dataset id: pass --dataset OWNER/SLUG or set kaggle.dataset in kagexp.yml")
        if not DATASET_ID.fullmatch(dataset):
            raise ConfigError(
                f"{dataset!r} is not a Kaggle dataset id: OWNER/SLUG, the slug 6 to 50 lowercase letters, digits or -"
            )
        return dataset

    @cached_property
    def destination(self) -> Path:
        out = self.out or self.project.inside(self.project.settings["output_dir"], "output_dir") / "packs"
        out = out if self.out else out / self.dataset_id.split("/")[1]
        if os.path.lexists(out):
            raise TargetExistsError(f"{out} exists; pack into another folder with -o DIR, or move it away")
        return out

    def build(self) -> Path:
        """Write the pack into a temporary folder, then rename it into place and mark the runs."""
        packed, out = self.packed, self.destination  # every run checked before anything is written
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.packing-{os.getpid()}")
        try:
            tmp.mkdir()
            code = {r.id: self._copy_run(r, tmp) for r in packed if r.id not in self.recipes}
            for blend in self.recipes:
                self._copy_blend(blend, tmp)
            self._write_wheels(tmp)
            self._write_metadata(tmp, code)
            os.rename(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for record in packed:
            record.run_folder.add_ref(f"pack:{_shown(out, self.project.root)}", "pack")
        return out

    def _copy_run(self, record: RunRecord, tmp: Path) -> str:
        """The run's recorded config and meta, its chosen artifacts, and its code snapshot."""
        _copy_files(record, [*runfolder.PACKED_RECORDS, *self._chosen(record)], tmp)
        code_hash = record.meta.get("code_hash")
        snapshot = runfolder.code_dir(self.project.output_dir(record.exp), code_hash)
        if snapshot is None:
            raise NotFoundError(f"{record.id}: its code snapshot is missing; run it again to pack it")
        destination = packformat.code_dir(tmp, record.id, code_hash)
        if not destination.exists():
            shutil.copytree(snapshot, destination)
        return code_hash

    def _copy_blend(self, blend: str, tmp: Path) -> None:
        """A blend's recorded config and meta, and the recipe the kernel combines its members with."""
        record = next(r for r in self.records if r.id == blend)
        _copy_files(record, runfolder.PACKED_RECORDS, tmp)
        files.write_json(packformat.run_dir(tmp, blend) / packformat.BLEND_RECIPE, self.recipes[blend].to_json())

    def _chosen(self, record: RunRecord) -> list[str]:
        saved = record.run_folder.saved_files()
        if not self.artifacts:
            return saved
        chosen = [name for name in saved if any(fnmatch.fnmatch(name, p) for p in self.artifacts)]
        if not chosen:
            raise NotFoundError(f"{record.id}: no saved file matches {', '.join(self.artifacts)} (saved: {saved})")
        return chosen

    def _write_wheels(self, tmp: Path) -> None:
        dest = tmp / packformat.WHEELS
        dest.mkdir()
        wheels.kagexp_wheel(dest)
        wheels.download(self.requirements, dest)

    def _write_metadata(self, tmp: Path, code: dict[str, str]) -> None:
        dataset, competition = self.dataset_id, self.project.settings.get("competition")
        slug = dataset.split("/")[1]
        kernel_run = self.records[0].id
        runs = [record.id for record in self.packed]
        manifest = packformat.Manifest(dataset, competition, runs, kernel_run, code)
        files.write_json(tmp / packformat.MANIFEST, manifest.to_json())
        license_name = self.project.settings["kaggle"]["license"]
        metadata = {"id": dataset, "title": slug, "licenses": [{"name": license_name}]}
        files.write_json(tmp / packformat.DATASET_METADATA, metadata)
        kernel = tmp / packformat.KERNEL
        kernel.mkdir()
        files.write_json(kernel / packformat.KERNEL_METADATA, self._kernel_metadata(slug, competition))
        script = KERNEL_SCRIPT.format(
            run=kernel_run, dataset=dataset, slug=slug, manifest=packformat.MANIFEST, wheels=packformat.WHEELS
        )
        files.write_text(kernel / packformat.KERNEL_SCRIPT, script)

    def _kernel_metadata(self, slug: str, competition: str | None) -> dict:
        owner = self.dataset_id.split("/")[0]
        return {
            "id": f"{owner}/{slug}-infer",
            "title": f"{slug} infer",
            "code_file": packformat.KERNEL_SCRIPT,
            "language": "python",
            "kernel_type": "script",
            "is_private": True,
            "enable_gpu": any(record.meta.get("gpus") for record in self.packed),
            "enable_tpu": False,
            "enable_internet": False,
            "dataset_sources": [self.dataset_id],
            "competition_sources": [competition] if competition else [],
            "kernel_sources": [],
        }


@dataclass(frozen=True)
class Packed:
    path: Path
    runs: list[str]
    size: int  # bytes, the dataset's files


def pack(
    project: Project,
    run_ids: list[str],
    out: Path | None = None,
    dataset: str | None = None,
    artifacts: list[str] | None = None,
    requirements: list[str] | None = None,
) -> Packed:
    """Pack done runs (see `Packing`); returns where, which runs and how large."""
    packing = Packing(project, run_ids, out, dataset, artifacts or [], requirements or [])
    path = packing.build()
    return Packed(path, [r.id for r in packing.packed], tree_size(path))


def _blended_start(blend: RunRecord, member: str) -> object:
    """When the member's attempt that the blend used started, as the blend's meta.json recorded it."""
    members = blend.meta.get("members")
    recorded = members.get(member) if isinstance(members, dict) else None
    return recorded.get("started") if isinstance(recorded, dict) else None


def _copy_files(record: RunRecord, names: Iterable[str], tmp: Path) -> None:
    """The run's files of these names that exist, into its folder in the pack."""
    target = packformat.run_dir(tmp, record.id)
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        if record.run_folder.file(name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(record.run_folder.file(name), target / name)


def blend_recipe(record: RunRecord) -> packformat.Recipe:
    """How the kernel combines a blend's members: the method and weights its meta.json records,
    the columns of its submission.csv."""
    blend, submission = record.meta.get("blend"), record.run_folder.submission()
    if submission is None:
        raise RunStateError(
            f"{record.id} has no submission.csv (a member saved no test predictions); blend runs that save them"
        )
    with open(submission, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), [])
    blend = blend if isinstance(blend, dict) else {}
    recipe = packformat.Recipe(blend.get("method"), blend.get("members"), blend.get("weights"), header)
    if recipe.method not in METHODS or not recipe.is_valid():
        raise RunStateError(f"{record.id}: its meta.json holds no blend recipe kagexp can pack; make the blend again")
    return recipe


def _shown(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
