"""Nothing is written outside the project and the system temp folder: not even into the home folder."""

import os
import subprocess
import sys

from helpers import snapshot_tree


def test_a_whole_session_writes_nothing_into_home(tmp_path):
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    (home / ".config" / "keep.txt").write_text("mine\n")
    before = snapshot_tree(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "WANDB_"))}
    env.update(HOME=str(home))

    def run(*args, cwd):
        done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, (args, done.stderr)
        return done

    kagexp = [sys.executable, "-m", "kagexp"]
    run(*kagexp, "init", "comp", "--data", "competition=titanic", cwd=tmp_path)
    root = tmp_path / "comp"
    run(sys.executable, "exp/exp001/exp.py", cwd=root)
    run(*kagexp, "new", "-m", "more", cwd=root)
    run(sys.executable, "exp/exp002/exp.py", "--jobs", "2", cwd=root)
    run(*kagexp, "ls", cwd=root)
    run(*kagexp, "runs", "--format", "json", cwd=root)
    run(*kagexp, "diff", "exp001", "exp002", cwd=root)
    run(*kagexp, "lb", "exp001/run001", "0.5", cwd=root)
    run(*kagexp, "report", "exp001", cwd=root)
    run(*kagexp, "submit", "exp001/run001", "--dry-run", cwd=root)
    assert snapshot_tree(home) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comp", "home"]
