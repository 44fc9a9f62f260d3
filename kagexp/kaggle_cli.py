"""The official `kaggle` command-line client, run as an argument list (never through a shell, so
no text of the user's is interpreted), with one-line errors when it or its credentials are missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from kagexp.errors import KagexpError


def executable() -> str:
    """The client's path; an error saying what to install or set when it cannot be used."""
    found = shutil.which("kaggle")
    if found is None:
        raise KagexpError("the kaggle command-line client is not installed: pip install kaggle")
    if not has_credentials():
        raise KagexpError(
            "no Kaggle API credentials: put kaggle.json (from kaggle.com > Settings > API) in ~/.kaggle/, "
            "or set KAGGLE_USERNAME and KAGGLE_KEY"
        )
    return found


def has_credentials() -> bool:
    if (os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY")) or os.environ.get("KAGGLE_API_TOKEN"):
        return True
    folders = [os.environ.get("KAGGLE_CONFIG_DIR"), "~/.kaggle", "~/.config/kaggle"]
    return any(
        (Path(folder).expanduser() / name).is_file()
        for folder in folders
        if folder
        for name in ("kaggle.json", "access_token")
    )


def call(args: list[str]) -> int:
    """Run `kaggle ARGS` with the terminal as its output; its exit code."""
    return subprocess.call([executable(), *args])


def output(args: list[str]) -> str:
    """Run `kaggle ARGS` and return what it printed; an error with its last line when it fails."""
    done = subprocess.run([executable(), *args], capture_output=True, text=True)
    if done.returncode != 0:
        last = ((done.stderr or done.stdout).strip().splitlines() or ["no output"])[-1]
        raise KagexpError(f"kaggle {' '.join(args[:2])} failed: {last}")
    return done.stdout


def succeeds(args: list[str]) -> bool:
    """Whether `kaggle ARGS` exits 0 (e.g. `datasets status ID`: the dataset exists)."""
    return subprocess.run([executable(), *args], capture_output=True).returncode == 0
