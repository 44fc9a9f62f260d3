"""The CV↔LB ledger (submit, lb, lb --fetch, lb --rm) and the pushes (pack --upload, push-kernel),
with a stand-in `kaggle` client on PATH: Kaggle's servers are out of reach, everything else is real."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import make_project, out_dir, run_exp

from kagexp.leaderboard import parse_submissions

BODY = """\
ctx.log({"auc": cfg.model.params.max_depth / 10})
ctx.save_submission([{"id": 1, "target": cfg.model.params.max_depth}])
"""
SETTINGS = "name: t\ncompetition: titanic\nmetric:\n  name: auc\n  direction: max\n"

STAND_IN = """\
#!{python}
import json, os, sys
from pathlib import Path

argv = sys.argv[1:]
entry = {{"argv": argv}}
if "-p" in argv:  # what the client would upload
    folder = Path(argv[argv.index("-p") + 1])
    entry["files"] = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
with open(os.environ["STAND_IN_LOG"], "a") as f:
    f.write(json.dumps(entry) + "\\n")
if argv[:2] == ["competitions", "submissions"]:
    print("Using competition: titanic")
    print(Path(os.environ["STAND_IN_CSV"]).read_text(), end="")
if argv[:2] == ["datasets", "status"]:
    sys.exit(0 if os.environ.get("STAND_IN_DATASET_EXISTS") else 1)
"""


@pytest.fixture
def project(tmp_path):
    root = make_project(tmp_path / "p", body=BODY, settings=SETTINGS)
    assert run_exp(root).returncode == 0
    return root


@pytest.fixture
def kaggle(tmp_path):
    """A `kaggle` on PATH that records its arguments; the environment to run kagexp with."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kaggle").write_text(STAND_IN.format(python=sys.executable))
    (bin_dir / "kaggle").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "KAGGLE_USERNAME": "alice",
        "KAGGLE_KEY": "k",
        "STAND_IN_LOG": str(tmp_path / "calls.jsonl"),
        "STAND_IN_CSV": str(tmp_path / "submissions.csv"),
    }
    return env


def kagexp(root: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kagexp", *args], cwd=root, env=env, capture_output=True, text=True, timeout=60
    )


def calls(env: dict) -> list[dict]:
    path = Path(env["STAND_IN_LOG"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def lb_entries(root: Path, run: str) -> list[dict]:
    path = out_dir(root) / run / "lb.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def kaggle_csv(env: dict, rows: list[tuple]) -> None:
    header = "ref,fileName,date,description,status,publicScore,privateScore\n"
    lines = "".join(",".join(f'"{v}"' if "," in str(v) else str(v) for v in row) + "\n" for row in rows)
    Path(env["STAND_IN_CSV"]).write_text(header + lines)


# --- submit and lb --fetch ------------------------------------------------------------------------


def test_fetch_matches_submissions_by_message_hash_and_run_and_lists_the_rest(project, kaggle):
    sent = kagexp(project, kaggle, "submit", "exp001/run002", "-m", "deeper; $(touch pwned)")
    assert sent.returncode == 0, sent.stderr
    assert calls(kaggle)[0]["argv"][-2:] == ["-m", "deeper; $(touch pwned)"]  # one argument, no shell
    assert not (project / "pwned").exists()
    recorded = json.loads((out_dir(project) / "run002/submissions.jsonl").read_text())
    digest = recorded["sha256"]
    kaggle_csv(
        kaggle,
        [
            (104, "submission.csv", "2026-12-01 10:04", "by hand", "complete", "0.71", ""),
            (103, "submission.csv", "2026-12-01 10:03", "exp001/run003 auc=0.3", "pending", "", ""),
            (102, "submission.csv", "2026-12-01 10:02", f"blend sha256:{digest[:12]}", "complete", "0.52", ""),
            (101, "submission.csv", "2026-12-01 10:01", "deeper; $(touch pwned)", "complete", "0.5", "0.48"),
            (100, "submission.csv", "2026-12-01 10:00", "exp001/run001 auc=0.1", "complete", "0.25", ""),
        ],
    )
    done = kagexp(project, kaggle, "lb", "--fetch")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "exp001/run001: LB 0.25 (2026-12-01 10:00, 'exp001/run001 auc=0.1')",
        "exp001/run002: LB 0.5, private 0.48 (2026-12-01 10:01, 'deeper; $(touch pwned)')",
        "exp001/run002: LB 0.52 (2026-12-01 10:02, 'blend sha256:" + digest[:12] + "')",
        "3 scores stored, 0 already there, 1 pending",
        "unmatched: 2026-12-01 10:04 submission.csv 'by hand' public 0.71",
    ]
    assert calls(kaggle)[-1]["argv"] == ["competitions", "submissions", "-c", "titanic", "--csv"]
    run2 = lb_entries(project, "run002")
    assert [(e["score"], e["private"], e["ref"]) for e in run2] == [(0.5, 0.48, "101"), (0.52, None, "102")]
    rows = json.loads(kagexp(project, kaggle, "runs", "--format", "json").stdout)
    assert [r["lb"] for r in rows] == [0.25, 0.52, None]

    again = kagexp(project, kaggle, "lb", "--fetch")
    assert again.stdout.splitlines()[0] == "0 scores stored, 3 already there, 1 pending"
    assert len(lb_entries(project, "run002")) == 2


def test_a_private_score_shown_later_is_stored_too(project, kaggle):
    kaggle_csv(kaggle, [(7, "submission.csv", "2026-12-01", "exp001/run001 auc=0.1", "complete", "0.25", "")])
    assert kagexp(project, kaggle, "lb", "--fetch").returncode == 0
    kaggle_csv(kaggle, [(7, "submission.csv", "2026-12-01", "exp001/run001 auc=0.1", "complete", "0.25", "0.27")])
    assert (
        kagexp(project, kaggle, "lb", "--fetch").stdout.splitlines()[-1]
        == "1 scores stored, 0 already there, 0 pending"
    )
    assert [(e["score"], e["private"]) for e in lb_entries(project, "run001")] == [(0.25, None), (0.25, 0.27)]


def test_the_clients_csv_is_parsed_as_it_prints_it():
    text = textwrap.dedent(
        """\
        Using competition: titanic
        ref,fileName,date,description,status,publicScore,privateScore
        5,sub.csv,2026-12-01 10:00:00,"a, b",SubmissionStatus.COMPLETE,0.77990,None
        """
    )
    [sub] = parse_submissions(text)
    assert (sub.ref, sub.description, sub.public, sub.private) == ("5", "a, b", 0.7799, None)
    assert parse_submissions("No submissions found\n") == []


def test_fetch_without_the_client_or_credentials_is_one_line(project, kaggle):
    missing = kagexp(project, {**kaggle, "PATH": "/usr/bin:/bin"}, "lb", "--fetch")
    assert missing.stderr == "kagexp: error: the kaggle command-line client is not installed: pip install kaggle\n"
    no_key = {k: v for k, v in kaggle.items() if not k.startswith("KAGGLE_")}
    done = kagexp(project, no_key, "lb", "--fetch")
    assert done.returncode == 2 and done.stderr.startswith("kagexp: error: no Kaggle API credentials: ")
    assert len(done.stderr.splitlines()) == 1 and calls(kaggle) == []


# --- lb by hand -----------------------------------------------------------------------------------


def test_lb_by_hand_is_checked(project, kaggle, tmp_path):
    assert kagexp(project, kaggle, "lb", "exp001/run001", "0.8").stdout == "exp001/run001: LB 0.8\n"
    bounded = kagexp(project, kaggle, "lb", "exp001/run001", "80")
    assert bounded.returncode == 2
    assert (
        bounded.stderr
        == "kagexp: error: auc lies in [0, 1], so 80 looks like a typo; pass --force to record it anyway\n"
    )
    assert kagexp(project, kaggle, "lb", "exp001/run001", "80", "--force").returncode == 0
    nan = kagexp(project, kaggle, "lb", "exp001/run001", "nan")
    assert nan.returncode == 2 and "LB score must be a finite number, not nan" in nan.stderr
    (out_dir(project) / "run003/submission.csv").unlink()
    none = kagexp(project, kaggle, "lb", "exp001/run003", "0.5")
    assert none.returncode == 2 and "exp001/run003 has no submission.csv" in none.stderr
    assert [e["score"] for e in lb_entries(project, "run001")] == [0.8, 80]


def test_lb_rm_removes_one_entry_and_the_summary_follows(project, kaggle):
    for score in ("0.1", "0.2", "0.3"):
        assert kagexp(project, kaggle, "lb", "exp001/run001", score).returncode == 0
    done = kagexp(project, kaggle, "lb", "--rm", "exp001/run001", "3")
    assert done.returncode == 0 and done.stdout.startswith("exp001/run001: removed LB 0.3 of ")
    assert [e["score"] for e in lb_entries(project, "run001")] == [0.1, 0.2]
    assert json.loads((out_dir(project) / "run001/summary.json").read_text())["lb"] == 0.2
    bad = kagexp(project, kaggle, "lb", "--rm", "exp001/run001", "5")
    assert bad.returncode == 2 and "exp001/run001 has 2 LB scores; there is no number 5" in bad.stderr
    assert kagexp(project, kaggle, "lb", "exp001/run001", "0.4").returncode == 0
    assert [e["score"] for e in lb_entries(project, "run001")] == [0.1, 0.2, 0.4]


# --- pack --upload and push-kernel ----------------------------------------------------------------


def test_upload_creates_then_versions_the_dataset_without_kernel_or_rehearsal(project, kaggle):
    done = kagexp(project, kaggle, "pack", "exp001/run001", "--dataset", "alice/small-models", "-o", "pk", "--upload")
    assert done.returncode == 0, done.stderr
    status, create = calls(kaggle)
    assert status["argv"] == ["datasets", "status", "alice/small-models"]
    assert create["argv"][:2] == ["datasets", "create"] and create["argv"][-2:] == ["-r", "zip"]
    assert "dataset-metadata.json" in create["files"] and "kagexp-pack.json" in create["files"]
    assert not any(f.startswith(("kernel/", "rehearsal/")) for f in create["files"])
    assert sorted(p.name for p in project.iterdir() if p.name.startswith(".")) == []  # the staging folder is gone

    (project / "pk/rehearsal/working").mkdir(parents=True)
    (project / "pk/rehearsal/working/submission.csv").write_text("id,target\n")
    exists = {**kaggle, "STAND_IN_DATASET_EXISTS": "1"}
    again = subprocess.run(
        [sys.executable, "-c", "from pathlib import Path; from kagexp.push import upload_dataset as u; u(Path('pk'))"],
        cwd=project,
        env=exists,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    version = calls(kaggle)[-1]
    assert version["argv"][:2] == ["datasets", "version"]
    assert version["argv"][-4:] == ["-m", "kagexp pack of exp001/run001", "-r", "zip"]
    assert not any(f.startswith("rehearsal/") for f in version["files"])


def test_push_kernel_pushes_the_kernel_folder(project, kaggle):
    assert (
        kagexp(project, kaggle, "pack", "exp001/run001", "--dataset", "alice/small-models", "-o", "pk").returncode == 0
    )
    done = kagexp(project, kaggle, "push-kernel", "pk")
    assert done.returncode == 0, done.stderr
    [push] = calls(kaggle)
    assert push["argv"] == ["kernels", "push", "-p", str(project / "pk/kernel")]
    assert push["files"] == ["infer.py", "kernel-metadata.json"]
    missing = kagexp(project, {**kaggle, "PATH": "/usr/bin:/bin"}, "push-kernel", "pk")
    assert missing.returncode == 2 and len(missing.stderr.splitlines()) == 1
    not_a_pack = kagexp(project, kaggle, "push-kernel", "exp")
    assert not_a_pack.returncode == 2 and "is not a kagexp pack" in not_a_pack.stderr
