"""Listing fixes on real runs: every status, CV beside LB, earlier attempts, warnings, `--list --only`."""

import json
import subprocess
import sys
from datetime import datetime

import pytest
from helpers import make_project, out_dir, run_exp, run_kagexp, subprocess_env

import kagexp
from kagexp import results
from kagexp.runfolder import RunFolder

BODY = """\
if cfg.model.params.max_depth == 2:
    raise KeyboardInterrupt
for epoch in range(3):
    ctx.log({"loss": 1.0 / (epoch + 1)}, step=epoch)
ctx.log({"cv": cfg.model.params.max_depth / 10 + float(os.environ.get("BONUS", "0"))})
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """exp001: run001 done twice (attempt 1 kept), run002 interrupted, run003 and run004 done."""
    root = make_project(tmp_path_factory.mktemp("listing"), runs=[*map(depth, (1, 2, 3, 4))], body=BODY)
    assert run_exp(root).returncode == 130
    assert run_exp(root, "--only", "3,4").returncode == 0
    again = [sys.executable, "exp/exp001/exp.py", "--only", "1", "--force"]
    assert subprocess.run(again, cwd=root, env={**subprocess_env(), "BONUS": "0.05"}, timeout=60).returncode == 0
    for run, score in (("1/1", "0.27"), ("1/3", "0.25"), ("1/4", "0.3"), ("1/4", "0.31")):
        assert run_kagexp(root, "lb", run, score, "--force").returncode == 0
    return root


def depth(d):
    return f"model:\n  params:\n    max_depth: {d}\n"


def test_ls_counts_interrupted_runs(project):
    done = run_kagexp(project, "ls")
    header, row = done.stdout.splitlines()
    assert header.split()[:6] == ["exp", "parent", "done", "failed", "interrupted", "running"]
    assert row.split()[:5] == ["exp001", "3", "0", "1", "0"]
    (listed,) = json.loads(run_kagexp(project, "ls", "--format", "json").stdout)
    assert (listed["done"], listed["interrupted"], listed["best cv"], listed["best run"]) == (3, 1, 0.4, "run004")
    assert datetime.fromisoformat(listed["last run"]).tzinfo is not None  # as recorded, with its zone


def test_status_takes_several_values(project):
    def statuses(*args):
        rows = json.loads(run_kagexp(project, "runs", "--format", "json", *args).stdout)
        return [(r["run"], r["status"]) for r in rows]

    assert statuses("--status", "interrupted") == [("exp001/run002", "interrupted")]
    both = [("exp001/run001", "done"), ("exp001/run002", "interrupted"), ("exp001/run003", "done")]
    assert statuses("--status", "done", "--status", "interrupted", "--limit", "3") == both
    assert statuses("--status", "interrupted,done", "--limit", "3") == both


def test_runs_put_the_metric_first_and_lb_beside_it(project):
    table = run_kagexp(project, "runs").stdout.splitlines()
    assert table[0].split() == ["run", "status", "model.params.max_depth", "cv", "lb", "loss", "duration"]
    assert table[4].split()[:6] == ["exp001/run004", "done", "4", "0.4", "0.31", "0.333333"]
    assert table[-1] == "CV (cv) against LB: 3 run(s) with both; Spearman rank correlation 0.500"


def test_rank_correlation_on_known_numbers():
    assert results.rank_correlation([("a", 1, 10), ("b", 2, 20), ("c", 3, 25)]) == pytest.approx(1.0)
    assert results.rank_correlation([("a", 1, 3), ("b", 2, 2), ("c", 3, 1)]) == pytest.approx(-1.0)
    assert results.rank_correlation([("a", 1, 1), ("b", 2, 3), ("c", 3, 2), ("d", 4, 4)]) == pytest.approx(0.8)
    assert results.rank_correlation([("a", 1, 1), ("b", 1, 2), ("c", 2, 2)]) == pytest.approx(0.5)
    assert results.rank_correlation([("a", 1, 1), ("b", 2, 2)]) is None
    assert results.rank_correlation([("a", 1, 1), ("b", 1, 2), ("c", 1, 3)]) is None


def test_show_prints_the_lb_scores(project):
    lines = run_kagexp(project, "show", "exp001/run004").stdout.splitlines()
    at = lines.index("leaderboard: cv 0.4 | LB 0.31 (latest of 2)")
    assert [line.split()[0] for line in lines[at + 1 : at + 3]] == ["0.3", "0.31"]
    assert not any(line.startswith("leaderboard") for line in run_kagexp(project, "show", "1/2").stdout.splitlines())


def test_diff_compares_an_earlier_attempt(project):
    done = run_kagexp(project, "diff", "exp001/run001@1", "exp001/run001", "--config")
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and lines[:3] == ["--- exp001/run001@1", "+++ exp001/run001", "config: same"]
    assert "  cv: 0.1 | 0.15  (delta +0.05)" in lines
    shown = run_kagexp(project, "show", "exp001/run001@1").stdout.splitlines()
    assert shown[0].startswith("exp001/run001@1  done") and "  cv = 0.1" in shown
    missing = run_kagexp(project, "diff", "exp001/run001@7", "exp001/run001")
    assert missing.returncode == 2
    assert (
        missing.stderr
        == "kagexp: error: no attempt '7' of exp001/run001 (its earlier attempts: 1); write e.g. exp001/run001@1\n"
    )
    none = run_kagexp(project, "show", "exp001/run003@1")
    assert none.returncode == 2
    assert none.stderr == "kagexp: error: no attempt '1' of exp001/run003: it has no earlier attempt\n"
    one_side = run_kagexp(project, "diff", "exp001/run001")
    assert one_side.returncode == 2 and "name both, e.g. kagexp diff exp001/run001 " in one_side.stderr


def test_list_honours_only(project):
    listed = run_exp(project, "--list", "--only", "2,run004")
    assert listed.returncode == 0
    assert [line.split()[:2] for line in listed.stdout.splitlines()[1:]] == [
        ["run002", "interrupted"],
        ["run004", "done"],
    ]
    wrong = run_exp(project, "--list", "--only", "9")
    assert wrong.returncode == 2 and "no run named '9' in RUNS" in wrong.stderr


def test_dry_run_reason_has_one_pair_of_brackets(project):
    (project / "exp/exp001/model.py").write_text("CHANGED = True\n")
    dry = run_exp(project, "--dry-run", "--only", "3")
    assert dry.stdout.splitlines()[0] == "exp001/run003: would skip: done (code changed since; --force to re-run)"


def test_metric_no_run_logs_is_a_warning(project, tmp_path):
    settings = (project / "kagexp.yml").read_text()
    (project / "kagexp.yml").write_text(settings.replace("name: cv", "name: auc"))
    try:
        warning = "warning: no run logs the project metric `auc` (metric.name in kagexp.yml); the runs log `loss`, `cv`"
        ls = run_kagexp(project, "ls")
        assert ls.returncode == 0 and ls.stderr.splitlines() == [warning]
        report = run_kagexp(project, "report", "exp001")
        assert report.returncode == 0 and report.stderr.splitlines() == [warning]
    finally:
        (project / "kagexp.yml").write_text(settings)
    assert run_kagexp(project, "ls").stderr == ""


def test_load_history_has_integer_steps_and_clean_times(project):
    history = kagexp.load_history("exp001/run003", root=project)
    assert str(history["step"].dtype) == "Int64"
    assert history["step"].iloc[:3].tolist() == [0, 1, 2] and history["step"].isna().tolist() == [False] * 3 + [True]
    assert all(t.microsecond % 1000 == 0 and t.nanosecond == 0 for t in history["time"])
    assert str(history["time"].dt.tz) == "UTC"
    times = [json.loads(line)["_time"] for line in (out_dir(project) / "run003/metrics.jsonl").read_text().splitlines()]
    assert [round(t.timestamp(), 3) for t in history["time"]] == times


def test_show_prints_the_private_score_kaggle_gave(project):
    RunFolder(out_dir(project) / "run003").append_lb(0.26, "fetched", private=0.255)
    lines = run_kagexp(project, "show", "exp001/run003").stdout.splitlines()
    at = lines.index("leaderboard: cv 0.3 | LB 0.26 (latest of 2)")
    assert lines[at + 2].startswith("  0.26 (private 0.255)  ") and lines[at + 2].endswith("  fetched")


def test_json_encoded_column_by_column_reads_as_one_object_per_row():
    import datetime

    from kagexp.tables import json_column, json_rows, render

    columns = ["run", "a, b", "100%", "cv", "folds", "when"]
    shared = [0, 1]
    rows = [
        ["x/1", "text, with comma", True, 0.5, shared, {datetime.date(2026, 1, 1): 1}],
        ["x/2", 'é "q"', None, float("nan"), shared, None],
        ["x/3", None, 3, 1, [2], "2026"],
    ]
    expected = [dict(zip(columns, row)) for row in rows]
    expected[0]["when"] = {"2026-01-01": 1}
    text = render(columns, rows, "json")
    assert text.count("\n") == len(rows) + 1
    assert json.dumps(json.loads(text)) == json.dumps(expected)  # NaN too
    assert json_rows(columns, [json_column(list(c)) for c in zip(*rows)]) == text
    twice = render(["run", "run"], [["x/1", "x/2"]], "json")
    assert json.loads(twice) == [{"run": "x/2"}] and render(columns, [], "json") == "[]"


def test_the_columns_stay_in_their_order_whatever_the_sort(tmp_path):
    """Keys first seen in exp001 come first, even when a sort puts exp002's runs on top."""
    body, base = "ctx.log({'cv': cfg.cv})\n", "alpha: 0\nbeta: 0\ncv: 0.5\n"
    root = make_project(tmp_path, runs=["alpha: 1\ncv: 0.1\n", "alpha: 2\ncv: 0.2\n"], body=body, config=base)
    exp002 = ["beta: 1\ncv: 0.9\n", "beta: 2\ncv: 0.8\n"]
    make_project(tmp_path, runs=exp002, body=body, config=base.replace("alpha: 0\n", ""), exp="exp002")
    assert run_exp(root).returncode == 0 and run_exp(root, exp="exp002").returncode == 0

    def header(*args):
        return run_kagexp(root, "runs", *args).stdout.splitlines()[0].split()

    plain = header()
    assert plain.index("alpha") < plain.index("beta")
    for args in (["--sort", "-cv"], ["--sort", "-cv", "--limit", "3"], ["--sort", "cv", "--where", "cv>0"]):
        assert header(*args) == plain, args


def test_a_failed_run_is_listed_with_its_error(tmp_path):
    """`kagexp runs --status failed` says why each run failed; a listing of done runs has no error column."""
    body = "if cfg.model.params.max_depth == 2:\n    raise ValueError('depth 2 is broken')\nctx.log({'cv': 0.5})\n"
    root = make_project(tmp_path, runs=[depth(1), depth(2)], body=body)
    assert run_exp(root).returncode == 1
    (failed,) = json.loads(run_kagexp(root, "runs", "--status", "failed", "--format", "json").stdout)
    assert failed["run"] == "exp001/run002" and failed["error"] == "ValueError: depth 2 is broken"
    assert run_kagexp(root, "runs").stdout.splitlines()[0].split()[-1] == "error"
    (done,) = json.loads(run_kagexp(root, "runs", "--status", "done", "--format", "json").stdout)
    assert "error" not in done
