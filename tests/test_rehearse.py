"""kagexp rehearse: a pack's kernel run here as Kaggle runs it (network off, read-only input, fresh
venv, time limit), and the failures it must name."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import (
    IS_ROOT,
    build_tree,
    hand_over,
    make_project,
    out_dir,
    run_exp,
    run_kagexp,
    subprocess_env,
    unprivileged,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "example-exp-iris"
DATASET = "alice/iris-exp001-run002"
# Where `unshare -n` is not allowed (not root), the rehearsals below run with --allow-network: the
# audit hook still catches what the kernel tries; the guard's own refusal is tested below.
GUARD = [] if IS_ROOT else ["--allow-network"]


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    root = tmp_path_factory.mktemp("rehearse") / "iris"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("output", "__pycache__"))
    assert run_exp(root, timeout=120).returncode == 0
    done = run_kagexp(root, "pack", "exp001/run002", "--dataset", DATASET, "-o", "pack")
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture(scope="module")
def rehearsed(iris):
    done = run_kagexp(iris, "rehearse", "pack", "--scale", "10", *GUARD, timeout=300)
    return done


def test_iris_rehearses_offline_and_makes_the_training_submission(iris, rehearsed):
    assert rehearsed.returncode == 0, rehearsed.stdout + rehearsed.stderr
    working = (iris / "pack/rehearsal/working").resolve()
    lines = rehearsed.stdout.splitlines()
    guard = "network off, read-only input mount" if IS_ROOT else "NETWORK ON (--allow-network), read-only input copy"
    assert lines[0].startswith("rehearsal of exp001/run002: ok in ") and f"({guard}," in lines[0]
    assert lines[1] == "submission.csv: 45 rows, columns id,target; identical to the training run's"
    assert lines[2].startswith("projected for a test set 10x larger: ")
    assert lines[3] == f"working folder: {working}"
    assert (working / "submission.csv").read_bytes() == (out_dir(iris) / "run002/submission.csv").read_bytes()
    log = (iris / "pack/rehearsal/kernel.log").read_text()
    assert "kagexp: exp001/run002 inferred in " in log


def test_the_rehearsal_is_recorded_in_the_run(iris, rehearsed):
    lines = (out_dir(iris) / "run002/rehearsals.jsonl").read_text().splitlines()
    entry = json.loads(lines[-1])
    assert entry["pack"] == "pack" and entry["scale"] == 10 and entry["identical"] is True
    assert entry["network_off"] is IS_ROOT and entry["input_mounted_read_only"] is IS_ROOT
    assert entry["limit_seconds"] == 9 * 3600
    assert 0 < entry["infer_seconds"] < entry["seconds"] < 120
    assert entry["projected_seconds"] == pytest.approx(entry["seconds"] + 9 * entry["infer_seconds"], abs=0.01)


def test_the_pack_is_left_as_it_was_but_for_the_rehearsal_folder(iris, rehearsed):
    assert sorted(p.name for p in (iris / "pack").iterdir()) == [
        "dataset-metadata.json",
        "exp001",
        "kagexp-pack.json",
        "kernel",
        "rehearsal",
        "wheels",
    ]
    assert sorted(p.name for p in (iris / "pack/rehearsal").iterdir()) == ["kernel.log", "working"]


# --- kernels that Kaggle would refuse ------------------------------------------------------------

MISCHIEF_EXP = """\
import kagexp

RUNS = [""]


def run(cfg, ctx):
    ctx.save_submission([{{"id": 1, "target": 0}}, {{"id": 2, "target": 1}}])


def infer(cfg, ctx):
{infer}


if __name__ == "__main__":
    kagexp.main(run, RUNS)
"""


def rehearse_kernel(root: Path, infer: str, *args: str):
    make_project(root, runs=[""])
    body = "\n".join(f"    {line}" for line in infer.strip().splitlines())
    build_tree(root, {"exp/exp001/exp.py": MISCHIEF_EXP.format(infer=body)})
    assert run_exp(root).returncode == 0
    assert run_kagexp(root, "pack", "exp001/run001", "--dataset", DATASET, "-o", "pack").returncode == 0
    return run_kagexp(root, "rehearse", "pack", *GUARD, *args, timeout=300)


def test_a_kernel_that_opens_a_socket_fails_even_when_it_catches_the_error(tmp_path):
    done = rehearse_kernel(
        tmp_path,
        """
import socket
try:
    socket.create_connection(("192.0.2.1", 80), timeout=1)
except OSError:
    pass
ctx.save_submission([{"id": 1, "target": 0}, {"id": 2, "target": 1}])
""",
    )
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == (
        "rehearsal of exp001/run001 failed: the kernel used the network (connect to ('192.0.2.1', 80)); "
        "on Kaggle the internet is off"
    )
    assert not (out_dir(tmp_path) / "run001/rehearsals.jsonl").exists()


def test_a_kernel_that_writes_into_its_input_fails(tmp_path):
    done = rehearse_kernel(
        tmp_path,
        """
try:
    ctx.artifact("submission.csv").write_text("id,target\\n")
except OSError:
    pass
ctx.save_submission([{"id": 1, "target": 0}, {"id": 2, "target": 1}])
""",
    )
    assert done.returncode == 1
    line = done.stdout.splitlines()[0]
    assert line.startswith("rehearsal of exp001/run001 failed: the kernel wrote into its input (")
    assert line.endswith("iris-exp001-run002/exp001/run001/submission.csv); write under the working folder instead")


def test_a_kernel_past_its_limit_is_stopped(tmp_path):
    done = rehearse_kernel(tmp_path, "import time\ntime.sleep(60)", "--limit", "3s")
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == (
        "rehearsal of exp001/run001 failed: it ran past the time limit of 3 s and was stopped"
    )


def test_a_submission_of_other_rows_fails(tmp_path):
    done = rehearse_kernel(tmp_path, 'ctx.save_submission([{"id": 1, "target": 0}])')
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == (
        "rehearsal of exp001/run001 failed: submission.csv has 1 rows, the training run's 2"
    )


def test_a_kernel_without_a_submission_fails(tmp_path):
    done = rehearse_kernel(tmp_path, "pass")
    assert done.returncode == 1
    assert "infer(cfg, ctx) saved no submission.csv" in (tmp_path / "pack/rehearsal/kernel.log").read_text()
    assert "failed: the kernel failed with exit code 1: kagexp: exp001/run001: infer(cfg, ctx) saved no" in done.stdout


def test_a_bad_limit_is_a_usage_error(iris):
    done = run_kagexp(iris, "rehearse", "pack", "--limit", "soon", "--allow-network")
    assert done.returncode == 2
    assert done.stderr == "kagexp: error: --limit 'soon' is not a duration; write it like 9h, 30m, 90s or 1h30m\n"


def test_without_the_right_to_switch_the_network_off_it_says_so(unprivileged_tmp_path):
    root = unprivileged_tmp_path / "p"
    make_project(root, runs=[""])
    build_tree(root, {"exp/exp001/exp.py": MISCHIEF_EXP.format(infer="    pass")})
    assert run_exp(root).returncode == 0
    assert run_kagexp(root, "pack", "exp001/run001", "--dataset", DATASET, "-o", "pack").returncode == 0
    hand_over(unprivileged_tmp_path)
    command = unprivileged([sys.executable, "-m", "kagexp", "rehearse", "pack"])
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert done.returncode == 2
    assert done.stderr == (
        "kagexp: error: cannot switch the network off here: `unshare -n` needs root (or CAP_SYS_ADMIN); "
        "rehearse as root, or pass --allow-network to rehearse without this guard\n"
    )
    assert not (root / "pack/rehearsal").exists()
