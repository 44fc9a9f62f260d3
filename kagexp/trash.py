"""The trash: `kagexp rm` and `kagexp gc` move things here instead of deleting them; `kagexp restore`
brings them back, and only `kagexp trash empty` deletes, after asking.

```
data/output/.trash/
└── 20261201-142305/              # one entry per rm or gc call, named by when it was made
    ├── manifest.json             # the command, and each item: where it came from, its kind and size
    └── exp/exp001/run002/        # the items, at their place relative to data/output
```

Moves are renames inside the output folder's file system: each item is either where it was or in
the trash, never half of each (copying then deleting could leave both halves), and a call that
fails part-way puts back what it had moved. Runs are claimed while they move, so a running run
is refused and none starts meanwhile. The trash sits beside `data/output/exp/`, not in it, and
listings skip it. This module alone spells the trash's names.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from kagexp import files
from kagexp.diskuse import tree_size
from kagexp.errors import NotFoundError, RunStateError, TargetExistsError, UsageError
from kagexp.project import Project, natural, run_name, unknown
from kagexp.runfolder import Claim, RunFolder, holder_of, now_iso, require_locks, run_folders

TRASH = ".trash"
MANIFEST = "manifest.json"
FORMAT = 1
KINDS = ("experiment", "run", "file")
_DELETING = ".deleting-"


@dataclass(frozen=True)
class Item:
    """One thing in the trash: an experiment's outputs, a run folder or one file of a run.

    `path` is where it was, relative to the output folder (`exp/exp001/run002`); a file's `run` is
    the run folder it belongs to, which must be there to take it back.
    """

    path: str
    kind: str
    size: int
    run: str | None = None


@dataclass
class Entry:
    """One call's worth of trash: a folder named by its time, and its manifest."""

    id: str
    folder: Path
    created: str = ""
    command: str = ""
    items: list[Item] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(item.size for item in self.items) if self.items else tree_size(self.folder)

    def write_manifest(self) -> None:
        items = [asdict(item) for item in self.items]
        data = {"format": FORMAT, "created": self.created, "command": self.command, "items": items}
        files.write_json(self.folder / MANIFEST, data)


# --- where things are --------------------------------------------------------------------


def output_base(project: Project) -> Path:
    """The output folder (`data/output`): the trash and the experiments' outputs are inside it."""
    return project.output_root.parent


def trash_root(project: Project) -> Path:
    return output_base(project) / TRASH


def relative(project: Project, path: Path) -> str:
    """A path inside the output folder as the manifest keeps it."""
    return path.relative_to(output_base(project)).as_posix()


def label(project: Project, item: Item) -> str:
    """An item as the user names it: `exp001/run002`, `exp001/run002/models/fold0.pkl`."""
    path = output_base(project) / item.path
    root = project.output_root
    return (path.relative_to(root) if path.is_relative_to(root) else Path(item.path)).as_posix()


# --- reading the trash -------------------------------------------------------------------


def entries(project: Project) -> list[Entry]:
    """Every entry of the trash, oldest first."""
    root = trash_root(project)
    if not root.is_dir():
        return []
    found = [_read_entry(path) for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")]
    return sorted(found, key=lambda entry: natural(entry.id))


def run_names(project: Project, exp: str) -> list[str]:
    """The run folders of `exp` in the trash, moved alone or with their experiment's outputs."""
    prefix = relative(project, project.output_dir(exp))
    names: list[str] = []
    for entry in entries(project):
        for item in entry.items:
            if item.kind == "run" and item.path.rpartition("/")[0] == prefix:
                names.append(item.path.rpartition("/")[2])
            elif item.kind == "experiment" and item.path == prefix and (entry.folder / item.path).is_dir():
                names += [found.name for found in run_folders(entry.folder / item.path)]
    return names


def _read_entry(folder: Path) -> Entry:
    """An entry from its manifest; one without a readable manifest lists with its size, nothing to restore."""
    entry = Entry(folder.name, folder)
    try:
        data = files.read_json(folder / MANIFEST)
    except (OSError, ValueError):
        return entry
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        return entry
    entry.created, entry.command = str(data.get("created") or ""), str(data.get("command") or "")
    entry.items = [item for item in map(_item, data["items"]) if item is not None]
    return entry


def _item(data: object) -> Item | None:
    """An item of a manifest, or None when it has the wrong shape or would lead out of the output folder."""
    if not isinstance(data, dict):
        return None
    path, kind, size, run = data.get("path"), data.get("kind"), data.get("size"), data.get("run")
    if not (_inside(path) and kind in KINDS and isinstance(size, int) and (run is None or _inside(run))):
        return None
    return Item(path, kind, size, run)


def _inside(path: object) -> bool:
    if not isinstance(path, str) or not path or "\\" in path:
        return False
    pure = PurePosixPath(path)
    return bool(pure.parts) and not pure.is_absolute() and ".." not in pure.parts


def size(project: Project) -> int:
    return sum(entry.size for entry in entries(project))


# --- moving in ---------------------------------------------------------------------------


def move_in(project: Project, items: list[Item], command: str, runs: list[RunFolder]) -> Entry:
    """Move `items` into a new entry, holding the claims of `runs` (the runs they are or belong to).

    Everything is checked first; a move that still fails puts back the ones before it.
    """
    base = output_base(project)
    with claimed(runs):
        for item in items:
            _check_movable(project, base / item.path)
        entry = _new_entry(project, command, items)
        try:
            _move_all([(base / item.path, entry.folder / item.path) for item in items], "moved")
        except BaseException:
            (entry.folder / MANIFEST).unlink(missing_ok=True)
            _prune(entry.folder)
            raise
    return entry


@contextmanager
def claimed(folders: list[RunFolder]) -> Iterator[None]:
    """Hold every run's claim meanwhile: a running run is refused, and none can start."""
    require_locks()
    _room_for_files(len(folders))
    with ExitStack() as stack:
        for folder in folders:
            claim = Claim(folder)
            if not claim.acquire():
                name = f"{folder.path.parent.name}/{folder.name}"
                raise RunStateError(f"{name} is {holder_of(folder.meta())}; wait until it ends, or stop it first")
            stack.callback(claim.release)
        yield


def _room_for_files(count: int) -> None:
    """A held claim is an open file: allow `count` of them (macOS allows 256 open files by default)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + 64
    if soft != resource.RLIM_INFINITY and soft < wanted:
        allowed = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (allowed, hard))


def _check_movable(project: Project, source: Path) -> None:
    """It is there, and on the trash's file system (a rename cannot cross file systems)."""
    try:
        device = os.lstat(source).st_dev
    except FileNotFoundError:
        raise NotFoundError(f"{_shown(project, source)} is gone; nothing was moved") from None
    if device != os.stat(output_base(project)).st_dev:
        raise RunStateError(
            f"{_shown(project, source)} is on another file system than {_shown(project, trash_root(project))}: "
            "kagexp moves to the trash by renaming, never by copying; nothing was moved"
        )


def _new_entry(project: Project, command: str, items: list[Item]) -> Entry:
    """A new, empty entry named by the time (`-2`, `-3`… when two calls share a second), with its manifest."""
    root = trash_root(project)
    root.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for number in range(1, 1000):
        name = stamp if number == 1 else f"{stamp}-{number}"
        try:
            (root / name).mkdir()
        except FileExistsError:
            continue
        entry = Entry(name, root / name, now_iso(), command, list(items))
        entry.write_manifest()
        return entry
    raise TargetExistsError(f"{root}: too many trash entries made at {stamp}")


def _move_all(moves: list[tuple[Path, Path]], done: str) -> None:
    """Rename each source to its target; when one fails, those before it go back: all or nothing.

    A rename would replace a file (or an empty folder) at the target: each target is checked first.
    """
    moved: list[tuple[Path, Path]] = []
    try:
        for source, target in moves:
            if os.path.lexists(target):
                raise TargetExistsError(f"{target} exists; kagexp never overwrites; nothing was {done}")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(source, target)
            moved.append((source, target))
    except BaseException as exc:
        for source, target in reversed(moved):
            os.rename(target, source)
        if isinstance(exc, OSError):
            reason = exc.strerror or exc
            raise RunStateError(f"cannot move {source} to {target} ({reason}); nothing was {done}") from None
        raise


def _prune(folder: Path) -> None:
    """Remove the empty folders under `folder` and `folder` itself if it ends up empty; never a file."""
    for path, _, _ in os.walk(folder, topdown=False):
        try:
            os.rmdir(path)
        except OSError:  # not empty
            continue


# --- kagexp rm ---------------------------------------------------------------------------


def remove(project: Project, targets: list[str]) -> Entry:
    """`kagexp rm EXP EXP/RUN …`: runs, or all of an experiment's outputs, into one new entry.

    `rm EXP` moves the experiment's outputs only (`data/output/exp/EXP`: its runs, code snapshots
    and diffs), never its code folder `exp/EXP`: that is the user's source, small, usually in git,
    the parent of later experiments, and maybe on another disk than the outputs.
    """
    if not targets:
        raise UsageError("name what to remove: an experiment (exp003) or runs (exp003/run002)")
    items: dict[str, Item] = {}
    runs: dict[Path, RunFolder] = {}
    for target in targets:
        item, folders = _target(project, target)
        items[item.path] = item
        runs.update((folder.path, folder) for folder in folders)
    kept = [i for i in items.values() if not any(i.path.startswith(o.path + "/") for o in items.values())]
    return move_in(project, kept, "rm " + " ".join(targets), list(runs.values()))


def _target(project: Project, text: str) -> tuple[Item, list[RunFolder]]:
    """What `rm` moves for one argument, and the runs it moves."""
    from kagexp.records import find_run

    if "/" in text.strip().rstrip("/"):
        record = find_run(project, text)
        return Item(relative(project, record.path), "run", tree_size(record.path)), [record.run_folder]
    exp = project.find_exp(text)
    out = project.output_dir(exp)
    if not out.is_dir():
        if not project.exp_dir(exp).is_dir():
            raise NotFoundError(f"no experiment {exp}{unknown(exp, project.experiments())}")
        raise NotFoundError(f"{exp} has no outputs to remove (nothing under {_shown(project, out)})")
    folders = [RunFolder(Path(entry.path)) for entry in run_folders(out)]
    return Item(relative(project, out), "experiment", tree_size(out)), [f for f in folders if f.is_run()]


# --- kagexp restore ----------------------------------------------------------------------


@dataclass(frozen=True)
class Restored:
    entry: Entry
    items: list[Item]
    left: int  # items still in the entry


def restore(project: Project, what: str | None = None) -> Restored:
    """`kagexp restore [ID|EXP|EXP/RUN]`: bring back a whole entry (by default the newest), or the
    newest trashed copy of an experiment or a run. Refuses to overwrite anything; all or nothing."""
    entry, items = _select(project, what)
    base = output_base(project)
    runs = {item.run: RunFolder(base / item.run) for item in items if item.run}
    with claimed([folder for folder in runs.values() if folder.path.is_dir()]):
        for item in items:
            _check_restorable(project, entry, item)
        _move_all([(entry.folder / item.path, base / item.path) for item in items], "restored")
    entry.items = [item for item in entry.items if item not in items]
    if entry.items:
        entry.write_manifest()
    else:
        (entry.folder / MANIFEST).unlink(missing_ok=True)
    _prune(entry.folder)
    return Restored(entry, items, len(entry.items))


def _select(project: Project, what: str | None) -> tuple[Entry, list[Item]]:
    """The entry and the items that `what` names."""
    found = entries(project)
    if not found:
        raise NotFoundError(f"the trash is empty (nothing under {_shown(project, trash_root(project))})")
    by_id = {entry.id: entry for entry in found}
    if what is None or what in by_id:
        entry = by_id[what] if what else found[-1]
        if not entry.items:
            raise NotFoundError(f"trash entry {entry.id} has no readable {MANIFEST}; its files are in {entry.folder}")
        return entry, list(entry.items)
    wanted = _named(project, what)
    for entry in reversed(found):
        items = [item for item in entry.items if any(_within(item.path, name) for name in wanted)]
        if items:
            return entry, items
        whole = next((item for item in entry.items if any(_within(name, item.path) for name in wanted)), None)
        if whole is not None:
            exp = PurePosixPath(whole.path).name
            raise NotFoundError(
                f"{what} went to the trash with all of {exp} (entry {entry.id}): "
                f"bring it all back with `kagexp restore {exp}`"
            )
    ids = ", ".join(entry.id for entry in found[-5:])
    raise NotFoundError(f"nothing of {what} in the trash (newest entries: {ids}; see `kagexp trash list`)")


def _named(project: Project, text: str) -> tuple[str, ...]:
    """`exp003` or `exp003/run002` (`3/2` too; a run named `2` in a RUNS dict is `2`) as manifests keep it."""
    exp_text, _, run_text = text.strip().rstrip("/").partition("/")
    exp_out = project.output_dir(project.find_exp(exp_text))
    if not run_text:
        return (relative(project, exp_out),)
    return tuple(dict.fromkeys(relative(project, exp_out / name) for name in (run_text, run_name(run_text))))


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/")


def _check_restorable(project: Project, entry: Entry, item: Item) -> None:
    base = output_base(project)
    if not os.path.lexists(entry.folder / item.path):
        raise NotFoundError(f"{item.path} is not in trash entry {entry.id} any more; nothing was restored")
    if os.path.lexists(base / item.path):
        raise TargetExistsError(
            f"{_shown(project, base / item.path)} exists; kagexp never overwrites: "
            "move it away (or `kagexp rm` it) first; nothing was restored"
        )
    if item.run and not (base / item.run).is_dir():
        raise NotFoundError(
            f"{_shown(project, base / item.run)} is not there to take its files back: restore it first; "
            "nothing was restored"
        )


def _shown(project: Project, path: Path) -> str:
    """A path as the user finds it from the project root."""
    return path.relative_to(project.root).as_posix()


# --- kagexp trash empty ------------------------------------------------------------------


@dataclass(frozen=True)
class Emptied:
    entries: int
    size: int


def empty(project: Project, ids: list[str]) -> Emptied:
    """Delete the entries `ids` (those the user was shown) for good.

    Each is first renamed to a hidden name, so that one half deleted (a crash) is never listed or
    restored; hidden leftovers of an earlier crash go too.
    """
    root = trash_root(project)
    chosen = [entry for entry in entries(project) if entry.id in set(ids)]
    for entry in chosen:
        os.rename(entry.folder, root / f"{_DELETING}{entry.id}")
    for leftover in root.glob(f"{_DELETING}*"):
        shutil.rmtree(leftover)
    return Emptied(len(chosen), sum(entry.size for entry in chosen))
