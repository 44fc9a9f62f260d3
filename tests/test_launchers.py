"""Launchers through real `python exp/exp001/exp.py` processes: inline, `--jobs`/`--gpus` (forked
workers) and `--launcher slurm` (submitit; its `local` cluster runs the real submission, pickling
and result-collection code here; the Slurm parameters are checked on the sbatch script submitit
writes for them)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import depth_runs, executions, make_project, meta, out_dir, run_exp, snapshot_tree, subprocess_env

SLURM_LOCAL = ("--launcher", "slurm", "--slurm", "cluster=local")
LAUNCHERS = {"inline": (), "processes": ("--jobs", "2"), "slurm-local": SLURM_LOCAL}

FAILING_BODY = """\
with open(ROOT / "executions.txt", "a") as f:
    f.write(ctx.name + "\\n")
print("hello from", ctx.name)
if ctx.name == "run002":
    raise ValueError("depth two is cursed")
ctx.log({"cv": cfg.model.params.max_depth / 10, "pid": os.getpid()})
"""


@pytest.mark.parametrize("flags", list(LAUNCHERS.values()), ids=list(LAUNCHERS))
def test_every_launcher_runs_each_run_once_into_its_own_folder(tmp_path, flags):
    root = make_project(tmp_path, body=FAILING_BODY)
    done = run_exp(root, *flags)
    assert done.returncode == 1, done.stderr
    assert sorted(executions(root)) == ["run001", "run002", "run003"]
    for run, cv in (("run001", 0.1), ("run003", 0.3)):
        info = meta(root, run)
        assert info["status"] == "done" and info["attempt"] == 1
        metrics = json.loads((out_dir(root) / run / "metrics.json").read_text())
        assert metrics["cv"] == cv and metrics["pid"] == info["pid"]
        assert (out_dir(root) / run / "log.txt").read_text() == f"hello from {run}\n"
        assert json.loads((out_dir(root) / run / "summary.json").read_text())["status"] == "done"
        assert f"exp001/{run} done in" in done.stderr
    failed = meta(root, "run002")
    assert failed["status"] == "failed" and failed["error"] == "ValueError: depth two is cursed"
    assert_traceback_in_exp_py(root, "run002", 'raise ValueError("depth two is cursed")', "run")
    log = (out_dir(root) / "run002" / "log.txt").read_text()  # stdout and stderr, interleaved by the tee
    assert "hello from" in log and "ValueError: depth two is cursed" in log
    assert "exp001/run002 FAILED" in done.stderr and "1 failed" in done.stderr
    # the failed run, and only it, runs again next time (the default launcher: in this process)
    again = run_exp(root)
    assert again.returncode == 1 and sorted(executions(root)) == ["run001", "run002", "run002", "run003"]
    assert meta(root, "run002")["attempt"] == 2


def assert_traceback_in_exp_py(root: Path, run: str, source: str, function: str) -> None:
    """error.txt names exp.py by its path, the line of `source` in it and the function, then shows the line."""
    script = (root / "exp/exp001/exp.py").resolve()
    line = next(i for i, text in enumerate(script.read_text().splitlines(), 1) if source in text)
    expected = f'  File "{script}", line {line}, in {function}\n    {source}\n'
    error = (out_dir(root) / run / "error.txt").read_text()
    assert expected in error, error
    assert "<dynamic-code>" not in error


@pytest.mark.parametrize("flags", list(LAUNCHERS.values()), ids=list(LAUNCHERS))
def test_a_run_function_without_a_name_in_exp_py_keeps_exp_py_in_its_traceback(tmp_path, flags):
    """A lambda cannot be found in exp.py by its name: on Slurm it comes from the pickle, and its code
    (and that of `run`, which it calls) still names exp.py."""
    root = make_project(tmp_path, runs=depth_runs(1, 2), body=FAILING_BODY)
    script = root / "exp/exp001/exp.py"
    main = "kagexp.main(lambda c, x: run(c, x), RUNS)"
    script.write_text(script.read_text().replace("kagexp.main(run, RUNS)", main))
    done = run_exp(root, *flags)
    assert done.returncode == 1, done.stderr
    assert meta(root, "run001")["status"] == "done"
    assert meta(root, "run002")["error"] == "ValueError: depth two is cursed"
    assert_traceback_in_exp_py(root, "run002", main, "<lambda>")
    assert_traceback_in_exp_py(root, "run002", 'raise ValueError("depth two is cursed")', "run")


def test_a_slurm_job_imports_exp_py_without_running_its_main(tmp_path):
    """The job runs exp.py's top level (under another name than `__main__`) and the code on disk."""
    body = 'ctx.log({"cv": 1.0, "name": __name__, "top": TOP})\n'
    root = make_project(tmp_path, runs=depth_runs(1), body=body)
    script = root / "exp/exp001/exp.py"
    script.write_text(script.read_text().replace("RUNS = ", "TOP = __name__\nRUNS = "))
    done = run_exp(root, *SLURM_LOCAL)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out_dir(root) / "run001" / "metrics.json").read_text())
    assert metrics == {"cv": 1.0, "name": "__kagexp_exp__", "top": "__kagexp_exp__"}
    assert done.stderr.count("submitted to local") == 1, "the job ran exp.py's main again"


def test_a_slurm_job_runs_the_submitted_function_when_exp_py_no_longer_has_it(tmp_path):
    """exp.py edited while its jobs waited, `run` gone: the job runs the function that was submitted."""
    root = make_project(tmp_path, runs=depth_runs(3))
    script = root / "exp/exp001/exp.py"
    gone = 'if os.environ.get("SUBMITIT_EXECUTOR"):\n    run = None\n\n'
    script.write_text(script.read_text().replace('if __name__ == "__main__":', gone + 'if __name__ == "__main__":'))
    done = run_exp(root, *SLURM_LOCAL)
    assert done.returncode == 0, done.stderr
    assert meta(root, "run001")["status"] == "done" and executions(root) == ["run001"]
    assert json.loads((out_dir(root) / "run001" / "metrics.json").read_text()) == {"cv": 0.3}


def test_exp_py_failing_at_its_top_level_in_a_slurm_job_fails_the_run_with_the_traceback(tmp_path):
    """exp.py's top level runs again in the job; when it fails there, the run is failed, not lost."""
    root = make_project(tmp_path, runs=depth_runs(1))
    script = root / "exp/exp001/exp.py"
    failing = 'raise FileNotFoundError("no data on this node")'
    script.write_text(
        script.read_text().replace("RUNS = ", f'if os.environ.get("SUBMITIT_EXECUTOR"):\n    {failing}\nRUNS = ')
    )
    done = run_exp(root, *SLURM_LOCAL)
    assert done.returncode == 1, done.stderr
    assert meta(root, "run001")["error"] == "FileNotFoundError: no data on this node"
    assert "exp001/run001 FAILED in" in done.stderr and "1 failed" in done.stderr
    assert_traceback_in_exp_py(root, "run001", failing, "<module>")


def test_runs_in_parallel_workers_have_their_own_process(tmp_path):
    body = 'ctx.log({"pid": os.getpid(), "start": time.time()})\ntime.sleep(0.5)\nctx.log({"end": time.time()})\n'
    root = make_project(tmp_path, runs=depth_runs(1, 2), body=body)
    done = run_exp(root, "--jobs", "2")
    assert done.returncode == 0, done.stderr
    first, second = (json.loads((out_dir(root) / r / "metrics.json").read_text()) for r in ("run001", "run002"))
    assert first["pid"] != second["pid"] and os.getpid() not in (first["pid"], second["pid"])
    assert first["start"] < second["end"] and second["start"] < first["end"], "the two runs did not overlap"
    assert "[2/2 finished, 0 running," in done.stderr


def test_gpus_one_run_per_gpu_at_a_time(tmp_path):
    body = """\
start = time.time()
time.sleep(0.3)
ctx.log({"gpu": os.environ["CUDA_VISIBLE_DEVICES"], "start": start, "end": time.time()})
"""
    root = make_project(tmp_path, runs=depth_runs(*range(1, 7)), body=body)
    done = run_exp(root, "--gpus", "0,1")
    assert done.returncode == 0, done.stderr
    runs = [f"run{i:03d}" for i in range(1, 7)]
    seen = {run: json.loads((out_dir(root) / run / "metrics.json").read_text()) for run in runs}
    assert {m["gpu"] for m in seen.values()} == {"0", "1"}
    assert all(meta(root, run)["gpu"] == seen[run]["gpu"] for run in runs)
    for gpu in ("0", "1"):
        spans = sorted((m["start"], m["end"]) for m in seen.values() if m["gpu"] == gpu)
        assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:])), f"GPU {gpu} shared"
    spans = sorted((m["start"], m["end"]) for m in seen.values())
    assert any(a[1] > b[0] for a, b in zip(spans, spans[1:])), "no two runs ran at once"


def test_ctrl_c_interrupts_the_running_runs_and_stops(tmp_path):
    body = 'ctx.log({"cv": 0.5, "pid": os.getpid()})\nprint("sleeping", flush=True)\ntime.sleep(30)\n'
    root = make_project(tmp_path, runs=depth_runs(1, 2, 3, 4), body=body)
    proc = subprocess.Popen(
        [sys.executable, "exp/exp001/exp.py", "--jobs", "2"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    assert [proc.stdout.readline(), proc.stdout.readline()] == ["sleeping\n", "sleeping\n"]
    proc.send_signal(signal.SIGINT)  # to the parent only: it stops its workers itself
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    for run in ("run001", "run002"):
        info = meta(root, run)
        assert info["status"] == "interrupted" and info["ended"]
        metrics = json.loads((out_dir(root) / run / "metrics.json").read_text())
        assert metrics["cv"] == 0.5 and not _alive(metrics["pid"])
    assert not (out_dir(root) / "run003").exists() and not (out_dir(root) / "run004").exists()
    assert "exp001: 2 interrupted, 2 not run" in stderr and stderr.strip().endswith("kagexp: interrupted")
    assert "Traceback" not in stderr


def test_a_worker_that_dies_leaves_a_failed_run_and_the_others_go_on(tmp_path):
    body = 'if ctx.name == "run002":\n    os.kill(os.getpid(), 9)\nctx.log({"cv": 1.0})\n'
    root = make_project(tmp_path, body=body)
    done = run_exp(root, "--jobs", "2")
    assert done.returncode == 1
    killed = meta(root, "run002")
    assert killed["status"] == "failed" and killed["error"] == "its worker process died (killed by SIGKILL)"
    assert "exp001/run002 FAILED: its worker process died (killed by SIGKILL)" in done.stderr
    assert meta(root, "run001")["status"] == "done" and meta(root, "run003")["status"] == "done"


def test_fail_fast_stops_the_runs_in_flight(tmp_path):
    body = """\
if ctx.name == "run001":
    while not (ROOT / "run002-started").exists():  # fail once run002 is under way
        time.sleep(0.01)
    raise RuntimeError("boom")
(ROOT / "run002-started").touch()
time.sleep(30)
"""
    root = make_project(tmp_path, body=body)
    start = time.monotonic()
    done = run_exp(root, "--jobs", "2", "--fail-fast")
    assert done.returncode == 1 and time.monotonic() - start < 20
    assert meta(root, "run001")["status"] == "failed"
    assert meta(root, "run002")["status"] == "interrupted"
    assert not (out_dir(root) / "run003").exists()
    assert "1 failed, 1 interrupted, 1 not run" in done.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--jobs", "0"), "--jobs must be 1 or more, not 0"),
        (("--jobs", "3", "--gpus", "0,1"), "--jobs 3 with 2 GPU(s) would put two runs on one GPU"),
        (("--launcher", "inline", "--jobs", "2"), "--launcher inline runs one run at a time"),
        (("--slurm", "partition=gpu"), "--slurm settings go with --launcher slurm"),
        ((*SLURM_LOCAL, "--slurm", "time_mn=5"), "--slurm: unknown key `time_mn`; did you mean `time_min`?"),
        (("--launcher", "slurm", "--slurm", "cluster=moon"), "slurm.cluster must be one of slurm, local"),
        (("--launcher", "slurm", "--gpus", "0"), "--gpus is for --jobs on this machine"),
    ],
)
def test_launcher_flag_mistakes_are_errors_before_anything_runs(tmp_path, flags, message):
    root = make_project(tmp_path)
    done = run_exp(root, *flags)
    assert done.returncode == 2
    assert done.stderr.startswith(f"kagexp: error: {message}")
    assert not (root / "data").exists()


SLURM_SETTINGS = """\
name: test
slurm:
  partition: gpu
  time_min: 30
  gpus_per_node: 1
  cpus_per_task: 4
  mem_gb: 16
  setup: [module load cuda/12.1]
  additional: {account: my-lab, qos: high}
"""


def test_the_sbatch_script_carries_the_slurm_settings(tmp_path):
    root = make_project(tmp_path, settings=SLURM_SETTINGS)
    before = snapshot_tree(root)
    dry = run_exp(root, "--dry-run", "--launcher", "slurm", "--jobs", "2", "--slurm", "time_min=120")
    assert dry.returncode == 0, dry.stderr
    assert snapshot_tree(root) == before and not (root / "data").exists()
    script = dry.stdout.split("# the sbatch script of the job array of 3 runs:\n", 1)[1]
    flags = {line for line in script.splitlines() if line.startswith("#SBATCH")}
    jobs = out_dir(root) / ".submitit"
    assert {
        "#SBATCH --job-name=kagexp-exp001",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=120",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=16GB",
        "#SBATCH --array=0-2%2",
        "#SBATCH --account=my-lab",
        "#SBATCH --qos=high",
        f"#SBATCH --output={jobs}/%A_%a/%A_%a_0_log.out",
    } <= flags
    assert "# setup\nmodule load cuda/12.1\n" in script
    assert f"{sys.executable} -u -m submitit.core._submit {jobs}/%j" in script


@pytest.mark.skipif(shutil.which("sbatch") is not None, reason="this machine has Slurm")
def test_submitting_to_slurm_without_sbatch_says_what_to_do(tmp_path):
    root = make_project(tmp_path)
    done = run_exp(root, "--launcher", "slurm")
    assert done.returncode == 2 and not (root / "data").exists()
    assert "no `sbatch` on this machine; submit from the cluster's login node" in done.stderr


def test_slurm_local_jobs_record_their_runs_and_submitit_logs(tmp_path):
    body = 'print("hello from", ctx.name)\nctx.log({"cv": 1.0, "job": os.environ.get("SUBMITIT_EXECUTOR")})\n'
    root = make_project(tmp_path, runs=depth_runs(1, 2), body=body)
    done = run_exp(root, *SLURM_LOCAL)
    assert done.returncode == 0, done.stderr
    assert "exp001: 2 run(s) submitted to local as job" in done.stderr
    for run in ("run001", "run002"):
        info = meta(root, run)
        assert info["status"] == "done" and info["command"][1:] == ["exp/exp001/exp.py", *SLURM_LOCAL]
        assert json.loads((out_dir(root) / run / "metrics.json").read_text()) == {"cv": 1.0, "job": "local"}
        assert (out_dir(root) / run / "log.txt").read_text() == f"hello from {run}\n"
    logs = "".join(p.read_text() for p in (out_dir(root) / ".submitit").glob("*_log.out"))
    assert "hello from run001" in logs and "hello from run002" in logs


IRIS = Path(__file__).resolve().parents[1] / "example-exp-iris"


@pytest.mark.parametrize(
    ("flags", "runs"),
    [(("--jobs", "2"), ("run001", "run002")), (SLURM_LOCAL, ("run002",))],  # a job imports scikit-learn anew
    ids=["jobs", "slurm-local"],
)
def test_the_iris_example_runs_with_launchers(tmp_path, flags, runs):
    shutil.copytree(IRIS, tmp_path / "iris", ignore=shutil.ignore_patterns("output"))
    root = tmp_path / "iris"
    done = run_exp(root, *flags, "--only", ",".join(runs))
    assert done.returncode == 0, done.stderr
    for run in runs:
        assert meta(root, run)["status"] == "done"
        assert (out_dir(root) / run / "submission.csv").exists()
        assert 0 < json.loads((out_dir(root) / run / "metrics.json").read_text())["cv"] <= 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
