"""`kagexp ls`, `runs`, `show` and `diff` on real run folders, through the real console entry point."""

import csv
import io
import json
import shutil
import subprocess
import sys

import pytest
from helpers import make_project, run_exp, run_kagexp, subprocess_env


def kagexp(root, *args, check_code=None):
    done = run_kagexp(root, *args)
    if check_code is not None:
        assert done.returncode == check_code, done.stderr
    return done


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """exp001 with three done runs; exp002 copied from it with a deeper default and other code."""
    root = make_project(tmp_path_factory.mktemp("cli"))
    assert run_exp(root).returncode == 0
    shutil.copytree(root / "exp/exp001", root / "exp/exp002")
    (root / "exp/exp002/lineage.yml").write_text("parent: exp001\nnote: deeper trees\n")
    (root / "exp/exp002/model.py").write_text("DEPTH = 2\nWIDTH = 3\n")
    config = (root / "exp/exp002/config.yml").read_text().replace("max_depth: 1", "max_depth: 4")
    (root / "exp/exp002/config.yml").write_text(config.replace("lr: 1e-3", "lr: 0.01"))
    (root / "exp/exp002/extra.py").write_text("X = 1\n")
    assert run_exp(root, "--only", "run003", exp="exp002").returncode == 0
    return root


def parse_csv(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_runs_csv_has_every_key_in_full(project):
    rows = parse_csv(kagexp(project, "runs", "exp001", "--format", "csv", check_code=0).stdout)
    assert list(rows[0])[:3] == ["run", "status", "seed"] and list(rows[0])[-2:] == ["cv", "duration"]
    assert {"lr", "dataset.batch_size", "model.name", "model.params.max_depth"} <= set(rows[0])
    assert [(r["run"], r["status"], r["model.params.max_depth"], r["cv"], r["lr"]) for r in rows] == [
        ("exp001/run001", "done", "1", "0.1", "0.001"),
        ("exp001/run002", "done", "2", "0.2", "0.001"),
        ("exp001/run003", "done", "3", "0.3", "0.001"),
    ]
    duration = json.loads(kagexp(project, "runs", "exp001", "--format", "json").stdout)[0]["duration"]
    assert rows[0]["duration"] == repr(duration)  # not rounded to 6 digits, as in a table


def test_runs_over_all_experiments_json(project):
    rows = json.loads(kagexp(project, "runs", "--format", "json", check_code=0).stdout)
    assert [r["run"] for r in rows] == ["exp001/run001", "exp001/run002", "exp001/run003", "exp002/run003"]
    assert rows[-1]["lr"] == 0.01 and rows[0]["lr"] == 0.001
    assert rows[0]["seed"] == 7 and rows[0]["dataset.folds"] == [0, 1, 2]
    limited = json.loads(kagexp(project, "runs", "--format", "json", "--limit", "1", check_code=0).stdout)
    assert limited[0]["seed"] == 7 and limited[0]["model.params.max_depth"] == 1 and limited[0]["cv"] == 0.1


def test_runs_where_sort_limit_status(project):
    def ids(*args):
        return [r["run"] for r in json.loads(kagexp(project, "runs", "exp001", "--format", "json", *args).stdout)]

    assert ids("--where", "model.params.max_depth>=2") == ["exp001/run002", "exp001/run003"]
    assert ids("--where", "cv > 0.15 and model.params.max_depth < 3") == ["exp001/run002"]
    everything = ["exp001/run001", "exp001/run002", "exp001/run003"]
    assert ids("--where", "model.name == tree and status == done") == everything
    assert ids("--where", "model.name != 'tree'") == []
    assert ids("--where", 'model.name == "tree" and lr==1e-3') == everything
    assert ids("--sort", "-cv") == ["exp001/run003", "exp001/run002", "exp001/run001"]
    assert ids("--sort", "-cv", "--limit", "1") == ["exp001/run003"]
    assert ids("--status", "failed") == []
    assert ids("--status", "failed", "--status", "done") == everything
    assert ids("--status", "interrupted,done") == everything


def test_where_or_and_parentheses(project):
    def ids(where):
        done = kagexp(project, "runs", "exp001", "--format", "json", "--where", where)
        return [r["run"].split("/")[1] for r in json.loads(done.stdout)]

    assert ids("cv<0.15 or cv>0.25") == ["run001", "run003"]
    assert ids("model.params.max_depth==2 or model.params.max_depth==3 and cv<0.25") == ["run002"]
    assert ids("(model.params.max_depth==2 or model.params.max_depth==3) and cv>0.25") == ["run003"]
    assert ids("((cv>0.25)) or (status==done and model.params.max_depth<2)") == ["run001", "run003"]
    assert ids("model.name=='a (b)' or cv == 0.2") == ["run002"]


def test_where_key_no_run_has_is_a_warning(project):
    done = kagexp(project, "runs", "exp001", "--where", "model.params.max_dpeth>2 or cv>0.25")
    assert done.returncode == 0 and done.stdout.splitlines()[1].startswith("exp001/run003 ")
    assert (
        done.stderr
        == "warning: --where: no run has a key `model.params.max_dpeth`; did you mean `model.params.max_depth`?\n"
    )
    nothing = kagexp(project, "runs", "--where", "cvv>0.1")
    assert nothing.returncode == 0 and nothing.stdout == ""
    assert nothing.stderr.splitlines() == [
        "warning: --where: no run has a key `cvv`; did you mean `cv`?",
        "no runs match",
    ]


def test_runs_markdown_and_table(project):
    md = kagexp(project, "runs", "exp001", "--format", "md", check_code=0).stdout.splitlines()
    assert md[0] == "| run | status | model.params.max_depth | cv | duration |"
    assert md[1] == "|---|---|---|---|---|"
    assert md[2].startswith("| exp001/run001 | done | 1 | 0.1 | ")
    table = kagexp(project, "runs", "exp001", check_code=0).stdout.splitlines()
    assert table[0].split() == ["run", "status", "model.params.max_depth", "cv", "duration"]
    assert table[3].split()[:4] == ["exp001/run003", "done", "3", "0.3"]


@pytest.mark.parametrize(
    "expr, message",
    [
        ("depth >> 2", "--where: cannot parse 'depth >> 2'; write KEY OP VALUE"),
        ("(cv>0.1 or cv<0.3", "--where: a `(` is not closed in '(cv>0.1 or cv<0.3'"),
        ("cv>0.1 or", "--where: 'cv>0.1 or' ends too early"),
        ("cv>0.1) and (cv<2", "--where: unexpected ')' in 'cv>0.1) and (cv<2'"),
        ("(" * 400 + "cv>0.1" + ")" * 400, "--where: parentheses nested more than 32 deep"),
        ("model.name == two words", "--where: cannot parse"),
        ("__import__('os')", "--where: cannot parse"),
    ],
)
def test_where_errors(project, expr, message):
    done = kagexp(project, "runs", "--where", expr)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("kagexp: error: " + message) and len(done.stderr.splitlines()) == 1


def test_unknown_experiment_in_runs(project):
    done = kagexp(project, "runs", "exp00l")
    assert done.returncode == 2
    assert "did you mean `exp001`?" in done.stderr or "no experiment" in done.stderr


def test_legacy_and_corrupt_runs_are_listed(tmp_path):
    root = make_project(tmp_path)
    assert run_exp(root, "--only", "1").returncode == 0
    legacy = root / "data/output/exp/exp001/run009"
    legacy.mkdir()
    (legacy / "config_update.yml").write_text("model:\n  params:\n    max_depth: 9\n")
    (root / "data/output/exp/exp001/run001/meta.json").write_text('{"status": "do')
    (root / "data/output/exp/exp001/run001/summary.json").write_text("{")
    rows = parse_csv(kagexp(root, "runs", "--format", "csv", check_code=0).stdout)
    assert [(r["run"], r["status"]) for r in rows] == [("exp001/run001", "corrupt"), ("exp001/run009", "unknown")]
    assert rows[1]["model.params.max_depth"] == "9"


def test_ls(project):
    rows = parse_csv(kagexp(project, "ls", "--format", "csv", check_code=0).stdout)
    columns = ["exp", "parent", "done", "failed", "interrupted", "running", "stale", "not in RUNS", "best cv"]
    assert list(rows[0]) == [*columns, "best run", "last run", "code", "note"]
    first, second = rows
    assert (first["exp"], first["parent"], first["done"], first["best cv"], first["best run"], first["code"]) == (
        "exp001",
        "",
        "3",
        "0.3",
        "run003",
        "same",
    )
    assert (second["exp"], second["parent"], second["note"], second["done"], second["best cv"]) == (
        "exp002",
        "exp001",
        "deeper trees",
        "1",
        "0.3",
    )


def test_ls_json_is_typed(project):
    first, second = json.loads(kagexp(project, "ls", "--format", "json", check_code=0).stdout)
    assert first["parent"] is None and first["note"] is None and second["parent"] == "exp001"
    assert first["best cv"] == 0.3 and first["best run"] == "run003" and first["done"] == 3
    assert first["interrupted"] == 0 and first["code"] == "same"


def test_ls_marks_code_changed_after_the_runs(tmp_path):
    root = make_project(tmp_path)
    assert run_exp(root, "--only", "1").returncode == 0
    (root / "exp/exp001/model.py").write_text("DEPTH = 5\n")
    (root / "exp/exp001/lineage.yml").write_text("parent: null\nnote: edited notes do not count\n")
    rows = parse_csv(kagexp(root, "ls", "--format", "csv", check_code=0).stdout)
    assert rows[0]["code"] == "changed"


def test_show(project):
    out = kagexp(project, "show", "1/2", check_code=0).stdout
    assert out.startswith("exp001/run002  done  (attempt 1)\n")
    assert "override (config_update.yml):\n  model:\n    params:\n      max_depth: 2\n" in out
    assert "metrics:\n  cv = 0.2\n" in out
    assert "  log.txt  18 B\n" in out and "  metrics.json" in out
    missing = kagexp(project, "show", "exp001/run007")
    assert missing.returncode == 2
    assert missing.stderr.startswith("kagexp: error: no run exp001/run007; did you mean `run00")
    assert missing.stderr.strip().endswith("? (runs of exp001: run001, run002, run003)")


def test_diff_experiments(project):
    out = kagexp(project, "diff", "exp001", "exp002", check_code=0).stdout.splitlines()
    assert out[:5] == [
        "--- exp001",
        "+++ exp002",
        "config: 2 key(s) differ",
        "  ~ lr: 0.001 -> 0.01",
        "  ~ model.params.max_depth: 1 -> 4",
    ]
    assert "files: 3 differ" in out
    assert "  added    extra.py" in out and "  changed  model.py" in out and "  added    lineage.yml" not in out
    assert "+WIDTH = 3" in out and "-DEPTH = 1" in out and "+++ exp002/model.py" in out


def test_diff_with_parent_stat_and_parts(project):
    alone = kagexp(project, "diff", "exp002", "--stat", check_code=0).stdout
    assert alone.startswith("--- exp001\n+++ exp002\n")
    assert "@@" not in alone and "  changed  model.py" in alone
    config_only = kagexp(project, "diff", "exp001", "exp002", "--config", check_code=0).stdout
    assert "files:" not in config_only and "lr: 0.001 -> 0.01" in config_only
    code_only = kagexp(project, "diff", "1", "2", "--code", check_code=0).stdout
    assert "config:" not in code_only and "model.py" in code_only


def test_diff_exit_code(project):
    assert kagexp(project, "diff", "exp001", "exp002", "--exit-code").returncode == 1
    same = kagexp(project, "diff", "exp001", "exp001", "--exit-code")
    assert same.returncode == 0 and "config: same" in same.stdout and "files: same" in same.stdout


def test_diff_runs_shows_metrics_and_environment(project):
    out = kagexp(project, "diff", "exp001/run003", "exp002/run003", check_code=0).stdout
    assert "  ~ model.params.max_depth: 3 -> 3" not in out
    assert "  ~ lr: 0.001 -> 0.01" in out
    assert "  cv: 0.3 | 0.3  (delta +0)" in out
    assert "environment:\n  pid:" not in out and "  code_hash: " in out
    assert "+WIDTH = 3" in out


def test_diff_errors(project):
    done = kagexp(project, "diff", "exp001", "exp009")
    assert done.returncode == 2
    assert done.stderr.startswith("kagexp: error: no experiment, run or folder 'exp009'")
    orphan = kagexp(project, "diff", "exp001")
    assert orphan.returncode == 2 and "exp001 has no recorded parent" in orphan.stderr


def test_diff_tool_gets_the_folders_without_a_shell(project, tmp_path):
    record = tmp_path / "args.txt"
    tool = tmp_path / "my;tool$(touch pwned)"
    tool.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    tool.chmod(0o755)
    done = kagexp(project, "diff", "exp001", "exp002", "--tool", f"'{tool}' --flag")
    assert done.returncode == 0, done.stderr
    assert record.read_text().splitlines() == ["--flag", str(project / "exp/exp001"), str(project / "exp/exp002")]
    assert not (project / "pwned").exists() and not (tmp_path / "pwned").exists()


def test_every_command_has_help_with_an_example_and_is_in_the_readme():
    from pathlib import Path

    from kagexp.cli import cli

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name, command in cli.commands.items():
        assert "Example:" in (command.help or ""), name
        assert f"kagexp {name}" in readme, name
    top = kagexp(Path.cwd(), "--help", check_code=0).stdout
    assert "Example:" in top and all(name in top for name in cli.commands)


def test_debug_shows_the_traceback(project):
    plain = kagexp(project, "show", "exp001/run007")
    debug = kagexp(project, "--debug", "show", "exp001/run007")
    assert "Traceback" not in plain.stderr and "Traceback" in debug.stderr
    assert debug.returncode == 2


def test_init_new_and_run_through_the_cli(tmp_path):
    env = {**subprocess_env(), "HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "home/.config")}

    def cli(*args, cwd=tmp_path):
        return subprocess.run(
            [sys.executable, "-m", "kagexp", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
        )

    made = cli("init", "comp", "--data", "competition=titanic", "--data", "metric_name=auc")
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines() == [f"created {tmp_path / 'comp'}", "next: cd comp && python exp/exp001/exp.py"]
    root = tmp_path / "comp"
    settings = (root / "kagexp.yml").read_text()
    assert 'competition: "titanic"' in settings and 'name: "auc"' in settings
    again = cli("init", "comp")
    assert again.returncode == 2 and "is not empty; kagexp never overwrites" in again.stderr
    ran = cli("run", "1", "--only", "1", cwd=root)
    assert ran.returncode == 0, ran.stderr
    assert "auc" in json.loads((root / "data/output/exp/exp001/run001/metrics.json").read_text())
    new = cli("new", "-m", "hypothesis: more trees", cwd=root)
    assert new.returncode == 0, new.stderr
    assert new.stdout.splitlines()[0].startswith("created exp/exp002 from exp001 (")
    assert new.stdout.splitlines()[1] == "next: edit exp/exp002/, then python exp/exp002/exp.py"
    assert "note: 'hypothesis: more trees'" in (root / "exp/exp002/lineage.yml").read_text()
    clash = cli("new", "exp002", "--from", "1", cwd=root)
    assert clash.returncode == 2 and clash.stderr.startswith("kagexp: error: exp/exp002 already exists")
    missing = cli("new", "--from", "exp011", cwd=root)
    assert missing.returncode == 2 and "exp/exp011 does not exist" in missing.stderr
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").rglob("*replay*"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["runs", "--sort", "cvv"], "kagexp: error: --sort: no run has a key `cvv`; did you mean `cv`?"),
        (["runs", "--limit", "-1"], "kagexp: error: Invalid value for '--limit': -1 is not in the range x>=0; see"),
        (["ls", "--format", "xml"], "kagexp: error: Invalid value for '--format': 'xml' is not one of"),
        (["report", "exp001", "--diary"], "kagexp: error: one of them, not several: name an experiment"),
        (["runs", "--status", "done,bogus"], "kagexp: error: --status: unknown status 'bogus'; use one or more of"),
        (["diff", "exp099"], "kagexp: error: no experiment exp/exp099 (experiments: exp001, exp002)"),
        (["show", "exp077/run001"], "kagexp: error: no experiment exp077 (experiments: exp001, exp002)"),
    ],
)
def test_mistakes_are_one_line_errors(project, args, message):
    done = kagexp(project, *args)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr


def test_no_match_says_so(project):
    done = kagexp(project, "runs", "--where", "cv>5")
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "no runs match\n"


def test_a_run_named_like_a_number_is_found_by_its_name(tmp_path):
    root = make_project(tmp_path, runs={"1": "", "run001": "model:\n  params:\n    max_depth: 5\n"})
    assert run_exp(root).returncode == 0
    assert kagexp(root, "show", "exp001/1").stdout.startswith("exp001/1  done")
    assert kagexp(root, "show", "exp001/run001").stdout.startswith("exp001/run001  done")


def test_settings_take_no_plus_keys(tmp_path):
    root = make_project(tmp_path, settings="+metrc: 1\nseed: yes\n")
    done = kagexp(root, "runs")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"kagexp: error: {root / 'kagexp.yml'}:1: `+metrc`: this file takes no new keys; write `metrc`",
        f"kagexp: error: {root / 'kagexp.yml'}:2: `seed` must be an int, not a boolean (true)",
    ]


def test_four_digit_experiment_names(tmp_path):
    root = make_project(tmp_path, exp="exp0001")
    assert run_exp(root, "--only", "1", exp="exp0001").returncode == 0
    rows = parse_csv(kagexp(root, "ls", "--format", "csv", check_code=0).stdout)
    assert [(r["exp"], r["done"]) for r in rows] == [("exp0001", "1")]
    assert json.loads(kagexp(root, "runs", "1", "--format", "json", check_code=0).stdout)[0]["run"] == "exp0001/run001"
    assert kagexp(root, "show", "1/1", check_code=0).stdout.startswith("exp0001/run001  done")
