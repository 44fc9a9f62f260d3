"""Disk use, the trash and retention on real projects, through the real `kagexp` command:
`du`, `rm`, `restore`, `gc`, `trash list` and `trash empty`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import (
    hand_over,
    make_project,
    out_dir,
    run_exp,
    set_runs,
    snapshot_tree,
    subprocess_env,
    unprivileged,
)

from kagexp.diskuse import human
from kagexp.runfolder import RunFolder

# each run saves a model of `max_depth` KB and a tiny submission
BODY = """\
ctx.log({"cv": cfg.model.params.max_depth / 10})
ctx.path("models/fold0.pkl").write_bytes(b"m" * 1024 * cfg.model.params.max_depth)
ctx.save_submission([{"id": 1, "target": cfg.model.params.max_depth}])
"""
WAITING_BODY = """\
ctx.log({"cv": 0.9})
(ROOT / f"{ctx.name}.started").write_text("")
while not (ROOT / "go").exists():
    time.sleep(0.02)
"""


def runs_of(*depths: int) -> list[str]:
    return [f"model:\n  params:\n    max_depth: {d}\n" for d in depths]


def kagexp(root: Path, *args: str, argv=None, **kwargs) -> subprocess.CompletedProcess:
    command = (argv or (lambda a: a))([sys.executable, "-m", "kagexp", *args])
    return subprocess.run(command, cwd=root, capture_output=True, text=True, env=subprocess_env(), timeout=60, **kwargs)


def ok(root: Path, *args: str) -> str:
    done = kagexp(root, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def listed(root: Path) -> list[str]:
    return [row["run"] for row in json.loads(ok(root, "runs", "--format", "json"))]


def trash_entries(root: Path) -> list[Path]:
    trash = root / "data/output/.trash"
    return sorted(p for p in trash.iterdir() if not p.name.startswith(".")) if trash.is_dir() else []


def manifest(entry: Path) -> dict:
    return json.loads((entry / "manifest.json").read_text())


def bytes_under(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir() or p.is_symlink())


@pytest.fixture
def project(tmp_path):
    """exp001 with four done runs (models of 1–4 KB); exp002 with one run of an 8 KB model."""
    root = make_project(tmp_path, runs=runs_of(1, 2, 3, 4), body=BODY)
    make_project(tmp_path, runs=runs_of(8), body=BODY, exp="exp002")
    assert run_exp(root).returncode == 0
    assert run_exp(root, exp="exp002").returncode == 0
    return root


# --- du -------------------------------------------------------------------------------------


def test_du_gives_each_experiment_and_each_run_biggest_first(project):
    rows = json.loads(ok(project, "du", "--format", "json"))
    assert [r["exp"] for r in rows] == ["exp001", "exp002"]
    assert rows == [
        {"exp": "exp001", "runs": 4, "size": bytes_under(out_dir(project, "exp001"))},
        {"exp": "exp002", "runs": 1, "size": bytes_under(out_dir(project, "exp002"))},
    ]
    runs = json.loads(ok(project, "du", "exp001", "--format", "json"))
    assert [r["run"] for r in runs[:4]] == ["exp001/run004", "exp001/run003", "exp001/run002", "exp001/run001"]
    assert [r["size"] for r in runs[:4]] == [bytes_under(out_dir(project) / f"run00{i}") for i in (4, 3, 2, 1)]
    assert sum(r["size"] for r in runs) == bytes_under(out_dir(project))  # the last row: what the runs share
    table = ok(project, "du").splitlines()
    assert table[0].split() == ["exp", "runs", "size"] and table[1].split()[:2] == ["exp001", "4"]
    assert table[-1].startswith("total ") and table[-1].endswith("; trash 0 B (kagexp trash list)")


# --- rm and restore ---------------------------------------------------------------------------


def test_rm_moves_runs_into_the_trash_and_restore_brings_them_back_unchanged(project):
    before = snapshot_tree(project)
    model = out_dir(project) / "run002/models/fold0.pkl"
    inode = model.stat().st_ino
    sizes = {run: human(bytes_under(out_dir(project) / run)) for run in ("run002", "run003")}
    done = kagexp(project, "rm", "exp001/run002", "1/3")
    assert done.returncode == 0, done.stderr
    [entry] = trash_entries(project)
    assert done.stdout.splitlines() == [
        f"moved exp001/run002 ({sizes['run002']}) to the trash",
        f"moved exp001/run003 ({sizes['run003']}) to the trash",
        f"trash entry {entry.name}; undo: kagexp restore {entry.name}",
    ]
    assert not (out_dir(project) / "run002").exists() and not (out_dir(project) / "run003").exists()
    assert [(i["path"], i["kind"]) for i in manifest(entry)["items"]] == [
        ("exp/exp001/run002", "run"),
        ("exp/exp001/run003", "run"),
    ]
    assert manifest(entry)["command"] == "rm exp001/run002 1/3"
    assert (entry / "exp/exp001/run002/models/fold0.pkl").stat().st_ino == inode  # renamed, not copied
    assert listed(project) == ["exp001/run001", "exp001/run004", "exp002/run001"]

    restored = ok(project, "restore", "exp001/run003")
    assert restored == f"restored exp001/run003\ntrash entry {entry.name} still holds 1 item(s)\n"
    assert listed(project) == ["exp001/run001", "exp001/run003", "exp001/run004", "exp002/run001"]
    assert ok(project, "restore").splitlines() == ["restored exp001/run002"]
    assert trash_entries(project) == []
    assert model.stat().st_ino == inode
    assert _without_trash(snapshot_tree(project)) == _without_trash(before)


def test_a_trashed_runs_number_is_never_given_again(project):
    """Even with `.runs.json` gone (or trashed with the experiment's outputs), a new run never takes
    the name of a run in the trash: its restore would be blocked."""
    ok(project, "rm", "exp001/run004")
    (out_dir(project) / ".runs.json").unlink()
    set_runs(project, runs_of(1, 2, 3, 9), body=BODY)
    assert run_exp(project).returncode == 0
    assert listed(project)[:4] == ["exp001/run001", "exp001/run002", "exp001/run003", "exp001/run005"]
    ok(project, "restore", "exp001/run004")
    assert "exp001/run004" in listed(project)

    ok(project, "rm", "exp002")
    assert run_exp(project, exp="exp002").returncode == 0
    assert [run for run in listed(project) if run.startswith("exp002/")] == ["exp002/run002"]


def test_rm_of_an_experiment_moves_its_outputs_and_keeps_its_code(project):
    code = snapshot_tree(project / "exp")
    assert ok(project, "rm", "exp002").splitlines()[0].startswith("moved exp002 (")
    assert not out_dir(project, "exp002").exists() and snapshot_tree(project / "exp") == code
    assert listed(project) == [f"exp001/run00{i}" for i in (1, 2, 3, 4)]
    partial = kagexp(project, "restore", "exp002/run001")
    assert partial.returncode == 2
    assert "exp002/run001 went to the trash with all of exp002" in partial.stderr
    assert ok(project, "restore", "2") == "restored exp002\n"
    assert listed(project)[-1] == "exp002/run001"


def test_restore_refuses_to_overwrite_and_moves_nothing(project):
    ok(project, "rm", "exp001/run002", "exp001/run001")
    assert run_exp(project, "--only", "run002").returncode == 0  # made again meanwhile
    [entry] = trash_entries(project)
    before = snapshot_tree(project)
    done = kagexp(project, "restore")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "kagexp: error: data/output/exp/exp001/run002 exists; kagexp never overwrites: "
        "move it away (or `kagexp rm` it) first; nothing was restored\n"
    )
    assert snapshot_tree(project) == before
    restored = ok(project, "restore", "exp001/run001")
    assert restored == f"restored exp001/run001\ntrash entry {entry.name} still holds 1 item(s)\n"


def test_mistakes_are_one_line_errors_and_move_nothing(project):
    before = snapshot_tree(project)
    for args, message in [
        (["rm", "exp001/run009"], "kagexp: error: no run exp001/run009"),
        (["rm", "exp007"], "kagexp: error: no experiment exp007 (experiments: exp001, exp002)"),
        (["rm", "exp001/run001", "exp001/run009"], "kagexp: error: no run exp001/run009"),
        (["restore"], "kagexp: error: the trash is empty (nothing under data/output/.trash)"),
        (["gc", "--keep", "best:two"], "kagexp: error: --keep: cannot read 'best:two'; use best:N, submitted and lb"),
        (["gc", "--larger-than", "big"], "kagexp: error: cannot read the size 'big'; write a number and a unit"),
        (["trash", "empty"], None),
    ]:
        done = kagexp(project, *args)
        if message is None:  # an empty trash: nothing to ask
            assert done.returncode == 0 and done.stderr == "the trash is empty\n"
            continue
        assert done.returncode == 2 and done.stderr.startswith(message), done.stderr
        assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert snapshot_tree(project) == before


def test_a_running_run_is_refused_by_rm_and_left_whole_by_gc(tmp_path):
    root = make_project(tmp_path, runs=runs_of(1, 2), body=BODY)
    assert run_exp(root, "--only", "run001").returncode == 0
    set_runs(root, runs_of(1, 2), body=WAITING_BODY)
    command = [sys.executable, "exp/exp001/exp.py", "--only", "run002"]
    runner = subprocess.Popen(command, cwd=root, env=subprocess_env(), stderr=subprocess.PIPE)
    try:
        _wait_for(root / "run002.started")
        before = snapshot_tree(out_dir(root))
        for args in (["rm", "exp001/run002"], ["rm", "exp001"], ["rm", "exp001/run001", "exp001/run002"]):
            done = kagexp(root, *args)
            assert done.returncode == 2, done.stderr
            assert done.stderr.startswith(f"kagexp: error: exp001/run002 is running in pid {runner.pid} on ")
            assert done.stderr.endswith("; wait until it ends, or stop it first\n")
        assert snapshot_tree(out_dir(root)) == before and trash_entries(root) == []
        planned = json.loads(ok(root, "gc", "--keep", "best:0", "--dry-run", "--format", "json"))
        assert {row["run"] for row in planned} == {"exp001/run001"}
    finally:
        (root / "go").write_text("")
        runner.communicate(timeout=30)
    assert runner.returncode == 0


# --- gc ---------------------------------------------------------------------------------------


def test_gc_dry_run_lists_exactly_what_gc_then_moves(tmp_path):
    root = make_project(tmp_path, runs=runs_of(1, 2, 3, 4, 5, 6), body=BODY)
    assert run_exp(root).returncode == 0
    ok(root, "lb", "exp001/run002", "0.5")  # lb, submitted
    out = out_dir(root)
    RunFolder(out / "run003").record_submission("submission.csv", "0" * 64, "sent, no score yet")  # submitted
    RunFolder(out / "run004").add_ref("blend/b001", "blend")  # used by a blend
    records = {run: (out / run / "metrics.json").read_text() for run in ("run001", "run005")}

    planned = kagexp(root, "gc", "--keep", "best:1,submitted", "--dry-run", "--format", "json")
    assert planned.returncode == 0, planned.stderr
    rows = json.loads(planned.stdout)
    assert planned.stderr == f"gc would move 4 file(s), {human(sum(r['size'] for r in rows))}; 4 run(s) kept whole\n"
    assert [(r["run"], r["file"]) for r in rows] == [
        ("exp001/run001", "models/fold0.pkl"),
        ("exp001/run001", "submission.csv"),
        ("exp001/run005", "models/fold0.pkl"),
        ("exp001/run005", "submission.csv"),
    ]
    assert (out / "run001/models/fold0.pkl").exists()  # a dry run moves nothing

    moved = kagexp(root, "gc", "--keep", "best:1,submitted", "--format", "json")
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout) == rows
    [entry] = trash_entries(root)
    items = manifest(entry)["items"]
    assert [(i["path"], i["size"]) for i in items] == [(f"exp/{r['run']}/{r['file']}", r["size"]) for r in rows]
    assert all((entry / i["path"]).is_file() and not (root / "data/output" / i["path"]).exists() for i in items)
    for run in ("run001", "run005"):  # its records stay: still listed, compared and re-run
        assert sorted(p.name for p in (out / run).iterdir() if p.is_file()) == [
            ".lock",
            "config.yml",
            "config_update.yml",
            "log.txt",
            "meta.json",
            "metrics.json",
            "metrics.jsonl",
            "summary.json",
        ]
        assert (out / run / "metrics.json").read_text() == records[run]
    assert len(listed(root)) == 6
    again = kagexp(root, "gc", "--keep", "best:1,submitted")
    assert again.returncode == 0 and again.stdout == ""
    assert again.stderr == "gc: nothing to move; 4 run(s) kept whole\n"


def test_gc_larger_than_and_earlier_attempts(tmp_path):
    root = make_project(tmp_path, runs=runs_of(1, 2, 3), body=BODY)
    assert run_exp(root).returncode == 0
    assert run_exp(root, "--only", "run001", "--force").returncode == 0  # attempt 1 moves to attempts/1/
    rows = json.loads(ok(root, "gc", "--keep", "best:1", "--larger-than", "1.5KB", "--dry-run", "--format", "json"))
    assert [(r["run"], r["file"], r["size"]) for r in rows] == [("exp001/run002", "models/fold0.pkl", 2048)]
    rows = json.loads(ok(root, "gc", "--keep", "lb", "--larger-than", "1000", "--format", "json"))
    assert [(r["run"], r["file"]) for r in rows] == [
        ("exp001/run001", "attempts/1/models/fold0.pkl"),
        ("exp001/run001", "models/fold0.pkl"),
        ("exp001/run002", "models/fold0.pkl"),
        ("exp001/run003", "models/fold0.pkl"),
    ]
    assert (out_dir(root) / "run001/attempts/1/meta.json").is_file()
    assert ok(root, "restore", "exp001/run001").splitlines() == [
        "restored exp001/run001/attempts/1/models/fold0.pkl",
        "restored exp001/run001/models/fold0.pkl",
        f"trash entry {trash_entries(root)[0].name} still holds 2 item(s)",
    ]


def test_best_needs_the_project_metric(tmp_path):
    root = make_project(tmp_path, runs=runs_of(1), body=BODY, settings="name: nometric\n")
    assert run_exp(root).returncode == 0
    done = kagexp(root, "gc", "--dry-run")
    assert done.returncode == 2
    assert done.stderr.startswith("kagexp: error: --keep best:N needs the project's metric")


# --- trash list and empty -----------------------------------------------------------------------


def test_trash_list_and_empty_after_asking(project):
    ok(project, "rm", "exp001/run001")
    ok(project, "gc", "exp002", "--keep", "lb")
    rows = json.loads(ok(project, "trash", "list", "--format", "json"))
    assert [(r["command"], r["items"]) for r in rows] == [("rm exp001/run001", 1), ("gc --keep lb", 2)]
    entries = trash_entries(project)
    assert [r["size"] for r in rows] == [bytes_under(e) - (e / "manifest.json").stat().st_size for e in entries]

    unasked = kagexp(project, "trash", "empty")  # no terminal, no --yes
    assert unasked.returncode == 2 and "takes --yes when no one is asked" in unasked.stderr
    assert len(trash_entries(project)) == 2
    declined = kagexp(project, "trash", "empty", input="n\n", argv=_with_a_terminal)
    assert declined.returncode == 1 and len(trash_entries(project)) == 2
    done = kagexp(project, "trash", "empty", "--yes")
    assert done.returncode == 0 and done.stdout.startswith("deleted 2 trash entries (")
    assert trash_entries(project) == [] and list((project / "data/output/.trash").iterdir()) == []
    assert kagexp(project, "trash", "list").stderr == "the trash is empty\n"


# --- all or nothing -------------------------------------------------------------------------------


def test_a_move_that_fails_part_way_puts_back_what_it_moved(unprivileged_tmp_path):
    root = make_project(unprivileged_tmp_path, runs=runs_of(1), body=BODY)
    make_project(unprivileged_tmp_path, runs=runs_of(2), body=BODY, exp="exp002")
    assert run_exp(root).returncode == 0 and run_exp(root, exp="exp002").returncode == 0
    out_dir(root, "exp002").chmod(0o555)  # its run cannot be moved out of it
    hand_over(root)
    before = snapshot_tree(root / "data")
    try:
        done = kagexp(root, "rm", "exp001/run001", "exp002/run001", argv=unprivileged)
    finally:
        out_dir(root, "exp002").chmod(0o755)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("kagexp: error: cannot move ") and done.stderr.endswith("; nothing was moved\n")
    assert "Permission denied" in done.stderr
    assert snapshot_tree(root / "data") == before and trash_entries(root) == []


def test_a_run_on_another_file_system_is_refused(project):
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == project.stat().st_dev:
        pytest.skip("needs /dev/shm on another file system than the test folder")
    elsewhere = Path(tempfile.mkdtemp(dir=shm)) / "exp002"
    try:
        shutil.move(out_dir(project, "exp002"), elsewhere)  # outputs on another disk, linked in
        out_dir(project, "exp002").symlink_to(elsewhere)
        before = snapshot_tree(project / "data") | snapshot_tree(elsewhere)
        done = kagexp(project, "rm", "exp001/run001", "exp002/run001")
        assert done.returncode == 2
        assert done.stderr == (
            "kagexp: error: data/output/exp/exp002/run001 is on another file system than data/output/.trash: "
            "kagexp moves to the trash by renaming, never by copying; nothing was moved\n"
        )
        assert snapshot_tree(project / "data") | snapshot_tree(elsewhere) == before and trash_entries(project) == []
    finally:
        shutil.rmtree(elsewhere.parent)


# --- helpers ------------------------------------------------------------------------------------


def _without_trash(tree: dict) -> dict:
    return {k: v for k, v in tree.items() if not k.startswith("data/output/.trash") and not k.endswith("index.json")}


def _wait_for(path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _with_a_terminal(argv: list[str]) -> list[str]:
    """`argv` under `script`, so that its stdin is a terminal (the confirmation is asked)."""
    import shlex

    return ["script", "-qec", shlex.join(argv), "/dev/null"]


def test_a_manifest_naming_paths_outside_the_output_folder_is_not_followed(project):
    entry = project / "data/output/.trash/20200101-000000"
    (entry / "x").mkdir(parents=True)
    items = [{"path": path, "kind": "run", "size": 1} for path in ("../../x", "/tmp/x", ".", "")]
    (entry / "manifest.json").write_text(json.dumps({"format": 1, "items": items}))
    before = snapshot_tree(project)
    done = kagexp(project, "restore")
    assert done.returncode == 2
    assert done.stderr.startswith("kagexp: error: trash entry 20200101-000000 has no readable manifest.json")
    assert snapshot_tree(project) == before
    assert json.loads(ok(project, "trash", "list", "--format", "json"))[0]["items"] == 0
