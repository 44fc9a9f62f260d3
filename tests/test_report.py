"""Reports, leaderboard scores, submissions and DataFrames, on real runs."""

import hashlib
import json
import struct
import subprocess
import sys

import pandas as pd
import pytest
from helpers import make_project, out_dir, run_exp, subprocess_env

import kagexp
from kagexp import leaderboard, report
from kagexp.errors import KagexpError
from kagexp.project import load_project
from kagexp.runfolder import RunFolder

HISTORY_BODY = """\
for epoch in range(3):
    ctx.log({"loss": 1.0 / (epoch + cfg.model.params.max_depth)}, step=epoch)
ctx.log({"cv": cfg.model.params.max_depth / 10})
"""


def cli(root, *args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "kagexp", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env={**subprocess_env(), **(env or {})},
        timeout=120,
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("report"), body=HISTORY_BODY)
    assert run_exp(root).returncode == 0
    (root / "exp/exp002").mkdir()
    for name in ("exp.py", "model.py"):
        (root / "exp/exp002" / name).write_text((root / "exp/exp001" / name).read_text())
    config = (root / "exp/exp001/config.yml").read_text().replace("name: tree", "name: forest")
    (root / "exp/exp002/config.yml").write_text(config)
    (root / "exp/exp002/lineage.yml").write_text("parent: exp001\nnote: a forest instead of a tree\n")
    assert run_exp(root, "--only", "2", exp="exp002").returncode == 0
    return root


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_lb_scores_are_kept_with_their_history(project):
    done = cli(project, "lb", "exp001/run001", "0.11", "-m", "first", "--force")  # runs without submission.csv
    assert done.returncode == 0 and done.stdout == "exp001/run001: LB 0.11\n"
    assert cli(project, "lb", "1/1", "0.12", "--force").stdout == "exp001/run001: LB 0.12 (before: 0.11)\n"
    assert cli(project, "lb", "1/2", "0.19", "--force").returncode == 0
    assert cli(project, "lb", "1/3", "0.33", "--force").returncode == 0
    lines = [json.loads(line) for line in (out_dir(project) / "run001/lb.jsonl").read_text().splitlines()]
    assert [(e["score"], e["note"]) for e in lines] == [(0.11, "first"), (0.12, None)]
    assert all(e["time"] for e in lines)
    rows = json.loads(cli(project, "runs", "exp001", "--format", "json").stdout)
    assert [r["lb"] for r in rows] == [0.12, 0.19, 0.33]
    bad = cli(project, "lb", "exp001/run009", "0.5")
    assert bad.returncode == 2 and "no run exp001/run009" in bad.stderr


def test_correlation_on_known_numbers():
    assert leaderboard.correlation([(1, 2), (2, 4), (3, 6)]) == pytest.approx(1.0)
    assert leaderboard.correlation([(1, 3), (2, 2), (3, 1)]) == pytest.approx(-1.0)
    assert leaderboard.correlation([(0.1, 0.12), (0.2, 0.19), (0.3, 0.33)]) == pytest.approx(0.98198, abs=1e-5)
    assert leaderboard.correlation([(1, 1), (2, 2)]) is None
    assert leaderboard.correlation([(1, 1), (1, 2), (1, 3)]) is None


def test_experiment_report(project):
    for run, score in (("1/1", "0.12"), ("1/2", "0.19"), ("1/3", "0.33")):
        cli(project, "lb", run, score, "--force")  # the runs saved no submission.csv
    done = cli(project, "report", "exp001")
    assert done.returncode == 0 and done.stdout == "wrote exp/exp001/RESULTS.md\n"
    text = (project / "exp/exp001/RESULTS.md").read_text()
    assert text.startswith("# exp001 — results\n")
    assert "| run | status | model.params.max_depth | cv | lb | loss | duration |" in text
    assert "| exp001/run002 | done | 2 | 0.2 | 0.19 | 0.25 |" in text
    assert "**Best run:** `exp001/run003` with cv = 0.3 (max is better)." in text
    assert "3 run(s) with both; Spearman rank correlation 1.000 (Pearson 0.982)." in text
    assert "| exp001/run003 | 0.3 | 0.33 |" in text
    plots = sorted(p.name for p in (project / "exp/exp001/results").iterdir())
    assert plots == ["cv_per_run.png", "cv_vs_lb.png", "cv_vs_model.params.max_depth.png", "history_loss.png"]
    for name in plots:
        assert f"](results/{name})" in text
        width, height = png_size(project / "exp/exp001/results" / name)
        assert width > 100 and height > 100


def test_reports_are_deterministic(project):
    report.report_experiment(load_project(project), "exp001")
    first = {p.name: p.read_bytes() for p in (project / "exp/exp001").rglob("*") if p.is_file()}
    report.report_experiment(load_project(project), "exp001")
    second = {p.name: p.read_bytes() for p in (project / "exp/exp001").rglob("*") if p.is_file()}
    assert first == second


def test_report_shows_the_parent_and_its_config_changes(project):
    report.report_experiment(load_project(project), "2")
    text = (project / "exp/exp002/RESULTS.md").read_text()
    assert "**Hypothesis / note:** a forest instead of a tree" in text
    assert "Parent: `exp001`" in text
    assert "## Config changes from exp001\n\n- `~ model.name: tree -> forest`\n" in text


def test_project_report(project):
    done = cli(project, "report", "--all")
    assert done.returncode == 0, done.stderr
    text = (project / "RESULTS.md").read_text()
    header = "| exp | parent | done | failed | interrupted | running | stale | not in RUNS | best cv | best run |"
    assert header + " last run | code | note |" in text
    assert "| exp001 |  | 3 | 0 | 0 | 0 | 0 | 0 | 0.3 | run003 |" in text
    assert "| exp002 | exp001 | 1 | 0 | 0 | 0 | 0 | 0 | 0.2 | run002 |" in text
    assert "![best cv by experiment](results/best_cv_by_experiment.png)" in text
    png_size(project / "results/best_cv_by_experiment.png")


def test_project_template_override(project):
    (project / "report.md.j2").write_text("{{ exp }} best={{ best.id }} runs={{ runs | length }}\n")
    try:
        report.report_experiment(load_project(project), "exp001")
        assert (project / "exp/exp001/RESULTS.md").read_text() == "exp001 best=exp001/run003 runs=3\n"
    finally:
        (project / "report.md.j2").unlink()


def test_report_does_not_change_the_code_hash(project):
    report.report_experiment(load_project(project), "exp001")
    rows = json.loads(cli(project, "ls", "--format", "json").stdout)
    assert rows[0]["code"] == "same"


def test_load_runs(project):
    frame = kagexp.load_runs(root=project)
    assert list(frame.columns[:3]) == ["exp", "run", "status"]
    assert list(frame.columns[-3:]) == ["lb", "duration", "started"]
    assert {"model.params.max_depth", "model.name", "lr", "cv", "loss"} <= set(frame.columns)
    assert len(frame) == 4 and list(frame["run"]) == ["run001", "run002", "run003", "run002"]
    assert frame["cv"].dtype == "float64" and frame["lb"].dtype == "float64"
    assert frame["model.params.max_depth"].dtype == "int64"
    assert str(frame["started"].dtype).startswith("datetime64") and frame["started"].notna().all()
    selected = kagexp.load_runs("exp001", root=project, where="cv>=0.2")
    assert list(selected["run"]) == ["run002", "run003"]


def test_load_history(project):
    history = kagexp.load_history("exp001/run002", root=project)
    assert list(history.columns) == ["step", "time", "loss", "cv"]
    assert history["loss"].iloc[:3].tolist() == pytest.approx([1 / 2, 1 / 3, 1 / 4])
    assert history["step"].iloc[:3].tolist() == [0, 1, 2]
    assert str(history["time"].dtype).startswith("datetime64")


def test_submit_dry_run_and_errors(project, tmp_path):
    (out_dir(project) / "run002" / "submission.csv").write_text("id,target\n1,0\n")
    settings = (project / "kagexp.yml").read_text()
    no_comp = cli(project, "submit", "exp001/run002", "--dry-run")
    assert no_comp.returncode == 2 and "no competition in kagexp.yml" in no_comp.stderr
    (project / "kagexp.yml").write_text(settings + "competition: titanic\n")
    try:
        dry = cli(project, "submit", "exp001/run002", "--dry-run")
        path = out_dir(project) / "run002" / "submission.csv"
        assert dry.stdout.strip() == f"kaggle competitions submit -c titanic -f {path} -m 'exp001/run002 cv=0.2'"
        evil = cli(project, "submit", "exp001/run002", "--dry-run", "-m", "x; rm -rf / $(touch pwned)")
        assert evil.stdout.strip().endswith("-m 'x; rm -rf / $(touch pwned)'")
        no_file = cli(project, "submit", "exp001/run001", "--dry-run")
        assert no_file.returncode == 2 and "exp001/run001 has no submission.csv" in no_file.stderr
        bare_path = "/usr/bin:/bin"  # not the venv's bin: the kaggle package (a dev extra) puts its client there
        missing = cli(project, "submit", "exp001/run002", env={"PATH": bare_path})
        assert missing.returncode == 2
        assert (
            missing.stderr.strip()
            == "kagexp: error: the kaggle command-line client is not installed: pip install kaggle"
        )
        fake = tmp_path / "bin"
        fake.mkdir()
        (fake / "kaggle").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path / "args"}\n')
        (fake / "kaggle").chmod(0o755)
        home = {"HOME": str(tmp_path / "home"), "PATH": f"{fake}:{bare_path}"}
        no_key = cli(project, "submit", "exp001/run002", env=home)
        assert no_key.returncode == 2 and "no Kaggle API credentials" in no_key.stderr
        sent = cli(
            project, "submit", "exp001/run002", "-m", "a $(b)", env={**home, "KAGGLE_USERNAME": "u", "KAGGLE_KEY": "k"}
        )
        assert sent.returncode == 0, sent.stderr
        args = (tmp_path / "args").read_text().splitlines()
        assert args == ["competitions", "submit", "-c", "titanic", "-f", str(path), "-m", "a $(b)"]
        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        recorded = [(e["file"], e["sha256"], e["message"]) for e in RunFolder(path.parent).submissions()]
        assert recorded == [("submission.csv", sha256, "a $(b)")]
        (fake / "kaggle").write_text("#!/bin/sh\nexit 1\n")
        refused = cli(project, "submit", "exp001/run002", env={**home, "KAGGLE_USERNAME": "u", "KAGGLE_KEY": "k"})
        assert refused.returncode == 1 and len(RunFolder(path.parent).submissions()) == 1
    finally:
        (project / "kagexp.yml").write_text(settings)


def test_missing_pandas_is_a_clear_error(project, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(KagexpError, match=r"this needs pandas: pip install 'kagexp\[pandas\]'"):
        kagexp.load_runs(root=project)


def test_frame_of_nothing(tmp_path):
    root = make_project(tmp_path)
    frame = kagexp.load_runs(root=root)
    assert len(frame) == 0 and list(frame.columns) == ["exp", "run", "status", "lb", "duration", "started"]
    assert isinstance(frame, pd.DataFrame)
