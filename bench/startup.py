"""Start-up time: whole-process wall time of `python -c pass`, `import kagexp` and `kagexp --help`.

Each command runs once to warm the caches, then the commands take turns for `--reps` rounds
(15 by default); the table shows the median, min and max per command. The target is that
`import kagexp` costs at most 40 ms over a bare interpreter (median against median). It also
lists which heavy optional modules (wandb, copier, pandas, …) `import kagexp` pulled in.

The child processes keep their bytecode in a temporary PYTHONPYCACHEPREFIX, so the figures are
those of a normal install (bytecode cached) even where PYTHONDONTWRITEBYTECODE is set, and the
checkout stays untouched.

The interpreter is the one running this script (`sys.executable`), so run it with the
project's virtualenv: `python bench/startup.py [--reps 15]` (`make bench` runs
bench/bookkeeping.py, then this).
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_IMPORT_MS = 40.0
HEAVY = ("wandb", "copier", "cookiecutter", "rich", "pandas", "matplotlib", "submitit", "numpy", "click")
REPORTED_ONLY = ("numpy", "click")
HEAVY_PROBE = f"import kagexp, sys; print(sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r}))"


def commands() -> dict[str, list[str]]:
    """The three commands by label; `kagexp --help` via the console script beside the interpreter."""
    python = sys.executable
    script = Path(python).with_name("kagexp")
    if script.is_file():
        help_label, help_command = "kagexp --help", [str(script), "--help"]
    else:
        help_label, help_command = "python -m kagexp --help", [python, "-m", "kagexp", "--help"]
    return {
        "python -c pass": [python, "-c", "pass"],
        'python -c "import kagexp"': [python, "-c", "import kagexp"],
        'python -c "from kagexp import main"': [python, "-c", "from kagexp import main"],
        help_label: help_command,
    }


def cached_bytecode_env(cache: str) -> dict[str, str]:
    """Bytecode is written to and read from `cache`, even where PYTHONDONTWRITEBYTECODE is set."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": cache}


def wall_time(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def measure(named: dict[str, list[str]], reps: int, env: dict[str, str]) -> dict[str, list[float]]:
    """Seconds per run of each command, the commands interleaved so that drift hits them alike."""
    for command in named.values():
        wall_time(command, env)
    samples: dict[str, list[float]] = {name: [] for name in named}
    for _ in range(reps):
        for name, command in named.items():
            samples[name].append(wall_time(command, env))
    return samples


def heavy_modules(env: dict[str, str]) -> list[str]:
    probe = [sys.executable, "-c", HEAVY_PROBE]
    return ast.literal_eval(subprocess.run(probe, check=True, capture_output=True, text=True, env=env).stdout)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def times_table(samples: dict[str, list[float]]) -> str:
    rows = [
        [f"`{name}`", f"{statistics.median(s) * 1000:.1f}", f"{min(s) * 1000:.1f}", f"{max(s) * 1000:.1f}"]
        for name, s in samples.items()
    ]
    return table(["command", "median ms", "min ms", "max ms"], rows)


def checks_table(bare: list[float], with_import: list[float], heavy: list[str]) -> str:
    cost = (statistics.median(with_import) - statistics.median(bare)) * 1000
    unwanted = sorted({name.split(".")[0] for name in heavy} - set(REPORTED_ONLY))
    shown = ", ".join(heavy) if len(heavy) <= 6 else f"{', '.join(heavy[:6])}, … ({len(heavy)} modules)"
    rows = [
        [
            "`import kagexp` − `python -c pass` (medians)",
            f"{cost:.1f} ms",
            f"≤ {TARGET_IMPORT_MS:g} ms",
            "yes" if cost <= TARGET_IMPORT_MS else "NO",
        ],
        [
            "heavy modules imported by `import kagexp`",
            shown or "none",
            f"none but {' or '.join(REPORTED_ONLY)}",
            "yes" if not unwanted else f"NO ({', '.join(unwanted)})",
        ],
    ]
    return table(["check", "value", "target", "met"], rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=15, help="rounds of timing (default: 15)")
    reps = p.parse_args().reps
    with tempfile.TemporaryDirectory(prefix="kagexp-pycache-") as cache:
        env = cached_bytecode_env(cache)
        samples = measure(commands(), reps, env)
        heavy = heavy_modules(env)
    bare, with_import = list(samples.values())[:2]
    print(times_table(samples))
    print()
    print(checks_table(bare, with_import, heavy))


if __name__ == "__main__":
    main()
