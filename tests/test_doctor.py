"""kagexp doctor: one line per check, exit 1 when one fails, nothing written."""

from __future__ import annotations

from helpers import BASE_CONFIG, git, make_project, run_kagexp, snapshot_tree


def doctor(root, *args):
    return run_kagexp(root, "doctor", *args, timeout=600)


def lines(done) -> dict[str, tuple[str, str]]:
    """check name → (level, detail)."""
    found = {}
    for line in done.stdout.splitlines():
        level, name, detail = line.split(None, 2)
        found[name] = (level, detail)
    return found


def test_a_healthy_experiment_passes_and_nothing_is_written(tmp_path):
    root = make_project(tmp_path)
    before = snapshot_tree(tmp_path)
    done = doctor(root, "exp001")
    assert done.returncode == 0, done.stdout + done.stderr
    checks = lines(done)
    assert list(checks) == ["imports", "config", "inputs", "output", "gpu", "git"]
    assert all(level == "ok" for level, _ in checks.values()), checks
    assert checks["config"][1] == "config.yml and 3 override(s) are valid"
    assert snapshot_tree(tmp_path) == before


def test_a_failing_import_is_named(tmp_path):
    root = make_project(tmp_path)
    exp_py = root / "exp/exp001/exp.py"
    exp_py.write_text("import not_installed_here_xyz\n" + exp_py.read_text())
    done = doctor(root)
    assert done.returncode == 1
    level, detail = lines(done)["imports"]
    assert level == "fail"
    assert detail == "exp/exp001/exp.py: ModuleNotFoundError: No module named 'not_installed_here_xyz'"


def test_a_bad_override_fails_the_config_check(tmp_path):
    root = make_project(tmp_path, runs=["model:\n  params:\n    max_dpeth: 3\n", "model: {name: 2}"])
    done = doctor(root)
    assert done.returncode == 1
    level, detail = lines(done)["config"]
    assert level == "fail" and "unknown key `model.params.max_dpeth`" in detail and detail.endswith("(and 1 more)")


def test_missing_input_files_are_named(tmp_path):
    config = BASE_CONFIG + "data:\n  train: train.csv\n  test: data/input/test.parquet\n  note: not a file\n"
    root = make_project(tmp_path, config=config)
    done = doctor(root)
    assert done.returncode == 1
    assert lines(done)["inputs"] == (
        "fail",
        "not found (in data/input/ or the project): train.csv, data/input/test.parquet",
    )
    (root / "data/input").mkdir(parents=True)
    (root / "data/input/train.csv").write_text("id\n1\n")
    (root / "data/input/test.parquet").write_bytes(b"PAR1")
    assert lines(doctor(root))["inputs"] == ("ok", "2 input file(s) named by the configs exist")


def test_asking_for_a_gpu_without_one_fails(tmp_path):
    root = make_project(tmp_path, config=BASE_CONFIG + "device: cuda\n")
    checks = lines(doctor(root))
    if checks["gpu"][0] == "ok":  # a machine with a GPU: the check names it
        assert checks["gpu"][1] and checks["gpu"][1] != "not asked for by the configs"
    else:
        assert checks["gpu"] == ("fail", "the configs ask for a GPU (cuda), but nvidia-smi sees none")


def test_the_git_guards_are_previewed_without_committing(tmp_path):
    settings = "name: test\nmetric:\n  name: cv\n  direction: max\ngit:\n  branch: main\n  auto_commit: true\n"
    root = make_project(tmp_path, settings=settings)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")
    (root / "exp/exp001/model.py").write_text("DEPTH = 9\n")
    assert lines(doctor(root))["git"] == ("ok", "the guards pass")
    git(root, "switch", "-q", "-c", "side")
    done = doctor(root)
    assert done.returncode == 1
    assert lines(done)["git"] == ("fail", "git: on side, but kagexp.yml asks for branch main; git switch main first")
    assert git(root, "log", "--format=%s").split("\n")[0] == "start", "doctor never commits"
