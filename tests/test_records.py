"""Listing reads summaries and a per-experiment index; both must say exactly what the run folders say."""

import json
import os
import shutil
import time

import pytest
from helpers import make_project, out_dir, run_exp

from kagexp import listing, records, results, tables
from kagexp.errors import ConfigError
from kagexp.project import load_project
from kagexp.runfolder import RunFolder, index_path, load_index, save_index

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
    index_path(out_dir(root)).unlink(missing_ok=True)
    assert results.table(records.scan(project)) == before


def test_the_index_is_used_and_rebuilt_when_stale(tmp_path):
    root = make_project(tmp_path)
    assert run_exp(root).returncode == 0
    project = load_project(root)
    runs = out_dir(root)
    assert records.scan(project) and not index_path(runs).exists()  # fresh folders are not cached
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
    index_path(runs).write_text("{not json")
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
    head, mtimes, *bodies = index_path(runs).read_bytes().split(b"\n")
    columns = [tuple(column[:2]) for column in json.loads(head)["columns"]]
    assert bodies[columns.index(("config", "seed"))] == b'{"same": 7}'  # one value shared by all is kept once
    bodies[columns.index(("metrics", "cv"))] = b"[0.1, 0.2"
    index_path(runs).write_bytes(b"\n".join([head, mtimes, *bodies]))
    listed = records.scan(load_project(root))  # the header and the other columns are fine
    assert [r.config["seed"] for r in listed] == [7, 7, 7] and index_path(runs).exists()
    assert [r.value("cv") for r in listed] == [None, None, None] and not index_path(runs).exists()
    assert [r.value("cv") for r in records.scan(load_project(root))] == [0.1, 0.2, 0.3]


def test_running_runs_are_never_cached(tmp_path):
    root = make_project(tmp_path, runs=[""])
    run_dir = out_dir(root) / "run001"
    run_dir.mkdir(parents=True)
    (run_dir / "meta.json").write_text(json.dumps({"status": "running", "pid": 1, "host": "x"}))
    age(run_dir)
    (listed,) = records.scan(load_project(root))
    assert listed.status == "stale"
    assert not index_path(out_dir(root)).exists()


# --- freshness checked per experiment (projects of CHECK_EACH_RUN_BELOW runs or more) ------------


def finished(out, name, cv, status="done"):
    """A run folder as a finished run leaves it, written with runfolder's writers, settled (`cv`
    None: the run logs no cv)."""
    folder = RunFolder(out / name)
    folder.path.mkdir(parents=True)
    meta = {"status": status, "attempt": 1, "started": "2026-12-01T10:00:00", "ended": None, "duration": 1.0}
    meta.update(code_hash=None, seed=7, error=None)
    folder.write_override("")
    folder.write_meta(meta)
    folder.write_summary(meta, {"seed": 7}, {} if cv is None else {"cv": cv})
    age(folder.path)
    return folder


@pytest.fixture
def big(tmp_path, monkeypatch):
    """exp001 with three settled runs, listed as in a project too big to stat every run folder."""
    monkeypatch.setattr(records, "CHECK_EACH_RUN_BELOW", 0)
    root = make_project(tmp_path)
    out = out_dir(root)
    for i, cv in enumerate((0.1, 0.2, 0.3), 1):
        finished(out, f"run{i:03d}", cv)
    project = load_project(root)
    records.scan(project)  # makes `.listing/`, which moves the folder's time: vouched for once settled
    age(out)
    records.scan(project)
    return project


def listed(project, refresh=False):
    return {r.run: (r.status, r.value("cv"), r.lb) for r in records.scan(project, refresh=refresh)}


def test_an_unchanged_experiment_is_read_whole_from_its_index(big):
    (part,) = records.scan_parts(big)
    assert isinstance(part, records.Block)
    assert [r.id for r in part.records()] == ["exp001/run001", "exp001/run002", "exp001/run003"]
    assert listed(big)["run002"] == ("done", 0.2, None)


def test_an_lb_score_for_a_finished_run_shows_at_once(big):
    RunFolder(big.output_dir("exp001") / "run002").append_lb(0.25, None)
    assert listed(big)["run002"] == ("done", 0.2, 0.25)
    RunFolder(big.output_dir("exp001") / "run002").remove_lb(1)
    assert listed(big)["run002"] == ("done", 0.2, None)


def test_run_folders_made_or_deleted_by_hand_show(big):
    out = big.output_dir("exp001")
    shutil.rmtree(out / "run002")
    assert sorted(listed(big)) == ["run001", "run003"]
    (out / "run004").mkdir()
    (out / "run004" / "meta.json").write_text(json.dumps({"status": "failed"}))
    assert listed(big)["run004"] == ("failed", None, None)
    os.rename(out / "run004", out / "run005")
    assert sorted(listed(big)) == ["run001", "run003", "run005"]


def test_a_corrupt_index_is_rebuilt(big):
    path = index_path(big.output_dir("exp001"))
    path.write_text("{not json")
    assert listed(big)["run003"] == ("done", 0.3, None)
    assert load_index(big.output_dir("exp001")) is not None


def test_a_run_not_finished_when_indexed_is_read_every_time(big):
    out = big.output_dir("exp001")
    running = out / "run004"
    running.mkdir()
    (running / "meta.json").write_text(json.dumps({"status": "running", "pid": 1, "host": "x"}))
    age(running)
    age(out)
    assert listed(big)["run004"][0] == "stale"
    (running / "meta.json").write_text(json.dumps({"status": "interrupted"}))  # by hand: no generation
    assert listed(big)["run004"][0] == "interrupted"


def test_a_hand_edit_in_a_finished_run_shows_after_refresh_or_in_a_small_project(big, monkeypatch):
    run_dir = big.output_dir("exp001") / "run002"
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "metrics": {"cv": 0.9}}))
    assert listed(big)["run002"][1] == 0.2  # the index still vouches for the experiment
    assert listed(big, refresh=True)["run002"][1] == 0.9
    (run_dir / "summary.json").write_text(json.dumps({**summary, "metrics": {"cv": 0.8}}))
    os.utime(run_dir)  # as an editor that saves by renaming does
    monkeypatch.setattr(records, "CHECK_EACH_RUN_BELOW", 5_000)
    assert listed(big)["run002"][1] == 0.8


def test_the_top_rows_picked_from_the_columns_are_those_a_full_sort_gives(big):
    out = big.output_dir("exp001")
    values = [0.5, 0.5, "n/a", None, float("nan"), 3, 0.2]
    for i, cv in enumerate(values, 4):
        finished(out, f"run{i:03d}", cv, "failed" if i % 3 == 0 else "done")
    other = out.parent / "exp002"
    for i, cv in enumerate((0.5, 0.7, -1.0), 1):
        finished(other, f"run{i:03d}", cv)
    (other / "run009").mkdir()  # running: exp002 is read folder by folder, exp001 from its index
    (other / "run009" / "meta.json").write_text(json.dumps({"status": "running"}))
    listing.list_runs(big, [])
    age(out)
    listing.list_runs(big, [])
    assert [type(p).__name__ for p in records.scan_parts(big)][:1] == ["Block"]
    for key in ("cv", "-cv", "run", "-status", "lb", "-seed"):
        for statuses in ((), ("done",), ("failed", "running")):
            everything = [r.id for r in listing.list_runs(big, [], statuses, None, key).records]
            for limit in (0, 1, 3, 20):
                picked = [r.id for r in listing.list_runs(big, [], statuses, None, key, limit).records]
                assert picked == everything[:limit], (key, statuses, limit)


def test_sorting_the_top_rows_by_a_key_no_run_has_is_an_error(big):
    with pytest.raises(ConfigError, match="no run has a key `cvv`; did you mean `cv`"):
        listing.list_runs(big, [], sort_key="-cvv", limit=3)


def test_json_cut_from_the_index_is_the_json_of_its_values(tmp_path, monkeypatch):
    """`runs --format json` takes the index's columns of numbers (and of one shared value) as the
    file spells them; it must print what encoding the parsed values prints, for every kind of value."""
    monkeypatch.setattr(records, "CHECK_EACH_RUN_BELOW", 0)
    root = make_project(tmp_path)
    out = out_dir(root)
    shared = {"name": "a, b", "nested": {"k": [1, 2]}, "flag": True, "big": 2**70, "note": "é"}
    rows = [
        ({"lr": 1e-3, "depth": 3, "tag": "x, y", "folds": [0, 1]}, {"cv": 0.25, "loss": float("nan")}),
        ({"lr": 0.5, "depth": 4, "tag": 'q"', "folds": [2]}, {"cv": 1e-20, "loss": float("inf")}),
        ({"lr": 2.0, "tag": None, "folds": []}, {"cv": -3, "extra": False}),
    ]
    for i, (config, metrics) in enumerate(rows, 1):
        folder = finished(out, f"run{i:03d}", None)
        meta = folder.meta()
        folder.write_summary(meta, {**shared, **config}, metrics)
        age(folder.path)
    project = load_project(root)
    records.scan(project)
    age(out)
    records.scan(project)
    listed = listing.list_runs(project, [], all_keys=True)
    assert all(isinstance(part, records.Block) for part in listed.parts)  # served from the index
    encoded = tables.json_rows(listed.columns, [tables.json_column(values) for values in listed.data])
    assert listed.json() == encoded
    parsed = json.loads(encoded)
    assert [row["cv"] for row in parsed] == [0.25, 1e-20, -3] and parsed[2]["depth"] is None
    assert parsed[0]["tag"] == "x, y" and parsed[1]["big"] == 2**70 and parsed[0]["nested.k"] == [1, 2]
    head, mtimes, *bodies = index_path(out).read_bytes().split(b"\n")
    columns = [tuple(column[:2]) for column in json.loads(head)["columns"]]
    bodies[columns.index(("metrics", "cv"))] = b"[0.25, 1e-20, -3, 4]"  # one value too many: rubbish
    bodies[columns.index(("config", "lr"))] = b"[0.001, 0.5, nul]"
    index_path(out).write_bytes(b"\n".join([head, mtimes, *bodies]))
    damaged = json.loads(listing.list_runs(project, [], all_keys=True).json())
    assert [row["cv"] for row in damaged] == [None, None, None] == [row["lr"] for row in damaged]
