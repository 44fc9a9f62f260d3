"""Listing reads summaries and a per-experiment index; both must say exactly what the run folders say."""

import json
import os
import time

from helpers import make_project, out_dir, run_exp

from kagexp import records, results
from kagexp.project import load_project
from kagexp.runfolder import INDEX, RunFolder, load_index, save_index

FAILING = """\
if cfg.model.params.max_depth == 2:
    raise ValueError("no")
ctx.log({"cv": cfg.model.params.max_depth / 10})
"""


def age(path, seconds=60):
    """Make a run folder look settled, so the index may cache it."""
    past = time.time() - seconds
    os.utime(path, (past, past))


def slow_rows(project, exp="exp001"):
    run_dirs = sorted(p for p in project.output_dir(exp).iterdir() if RunFolder(p).is_run())
    return [records.read_record(exp, p) for p in run_dirs]


def test_summary_path_matches_the_slow_path(tmp_path):
    root = make_project(tmp_path, body=FAILING)
    assert run_exp(root).returncode == 1
    project = load_project(root)
    fast = records.scan(project)
    slow = slow_rows(project)
    assert [r.status for r in fast] == ["done", "failed", "done"]
    assert results.table(fast) == results.table(slow)
    assert results.table(fast, all_keys=True) == results.table(slow, all_keys=True)
    for a, b in zip(fast, slow, strict=True):
        assert (a.id, a.status, a.config, a.metrics, a.lb) == (b.id, b.status, b.config, b.metrics, b.lb)
        assert all(a.meta[k] == b.meta.get(k) for k in a.meta)
    assert fast[1].meta["error"] == "ValueError: no"


def test_a_run_without_summary_is_still_listed(tmp_path):
    root = make_project(tmp_path)
    assert run_exp(root).returncode == 0
    project = load_project(root)
    before = results.table(records.scan(project))
    for run in ("run001", "run003"):
        (out_dir(root) / run / "summary.json").unlink()
    (out_dir(root) / INDEX).unlink(missing_ok=True)
    assert results.table(records.scan(project)) == before


def test_the_index_is_used_and_rebuilt_when_stale(tmp_path):
    root = make_project(tmp_path)
    assert run_exp(root).returncode == 0
    project = load_project(root)
    runs = out_dir(root)
    assert records.scan(project) and not (runs / INDEX).exists()  # fresh folders are not cached
    for run in ("run001", "run002", "run003"):
        age(runs / run)
    assert [r.metrics["cv"] for r in records.scan(project)] == [0.1, 0.2, 0.3]
    index = indexed(runs)
    assert sorted(index) == ["run001", "run002", "run003"]
    # the index is what is read: a doctored entry shows ...
    index["run002"][1]["metrics"]["cv"] = 99.0
    save_index(runs, index)
    assert [r.metrics["cv"] for r in records.scan(project)] == [0.1, 99.0, 0.3]
    assert [r.value("cv") for r in records.scan(project)] == [0.1, 99.0, 0.3]
    # ... until the folder changes: then the entry is stale and read again
    os.utime(runs / "run002")
    assert [r.metrics["cv"] for r in records.scan(project)] == [0.1, 0.2, 0.3]
    # a corrupt index is rebuilt; a deleted run leaves it
    (runs / INDEX).write_text("{not json")
    age(runs / "run002")
    assert len(records.scan(project)) == 3
    assert sorted(indexed(runs)) == ["run001", "run002", "run003"]
    os.rename(runs / "run003", runs / ".trash-run003")
    assert [r.run for r in records.scan(project)] == ["run001", "run002"]
    assert sorted(indexed(runs)) == ["run001", "run002"]


def indexed(runs) -> dict:
    """The index as `save_index` takes it: name → [mtime, row]."""
    table = load_index(runs)
    assert table is not None
    rows = {}
    for i, name in enumerate(table.names):
        row = {s: table.section(s, i) for s in ("meta", "config", "metrics")}
        row.update(status=table.value("run", "status", i), lb=table.value("run", "lb", i))
        rows[name] = [table.mtimes[i], row]
    return rows


def test_the_index_reads_a_column_only_when_asked_and_drops_a_damaged_one(tmp_path):
    root = make_project(tmp_path)
    assert run_exp(root).returncode == 0
    runs = out_dir(root)
    for run in ("run001", "run002", "run003"):
        age(runs / run)
    records.scan(load_project(root))
    head, *bodies = (runs / INDEX).read_bytes().split(b"\n")
    columns = [tuple(column[:2]) for column in json.loads(head)["columns"]]
    assert bodies[columns.index(("config", "seed"))] == b'{"same": 7}'  # one value shared by all is kept once
    bodies[columns.index(("metrics", "cv"))] = b"[0.1, 0.2"
    (runs / INDEX).write_bytes(b"\n".join([head, *bodies]))
    listed = records.scan(load_project(root))  # the header and the other columns are fine
    assert [r.config["seed"] for r in listed] == [7, 7, 7] and (runs / INDEX).exists()
    assert [r.value("cv") for r in listed] == [None, None, None] and not (runs / INDEX).exists()
    assert [r.value("cv") for r in records.scan(load_project(root))] == [0.1, 0.2, 0.3]


def test_running_runs_are_never_cached(tmp_path):
    root = make_project(tmp_path, runs=[""])
    run_dir = out_dir(root) / "run001"
    run_dir.mkdir(parents=True)
    (run_dir / "meta.json").write_text(json.dumps({"status": "running", "pid": 1, "host": "x"}))
    age(run_dir)
    (listed,) = records.scan(load_project(root))
    assert listed.status == "stale"
    assert not (out_dir(root) / INDEX).exists()
