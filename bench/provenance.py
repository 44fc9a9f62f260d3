"""Provenance in a big environment: what listing the installed distributions costs a process.

A Kaggle image holds about 1,200 distributions, and every `python exp.py` records their versions
in each run's meta.json. This makes a folder of `--dists` generated distributions (1,000 by
default), each a `name-version.dist-info` folder with a METADATA file like a real one, puts it on
`sys.path` of a fresh interpreter, and times in that process:

- `installed_packages()`: kagexp's way, the names of the dist-info folders (target ≤ 30 ms);
- a run's whole environment record (`Provenance.environment`: host, python, platform, GPUs,
  packages, the code hash of an empty experiment), outside git (git adds its own commands);
- `importlib.metadata`: parsing every METADATA file, as kagexp did before (for comparison);

each with and without the generated folder, as the median of `--reps` fresh processes (7).
Run it with the project's virtualenv: `python bench/provenance.py [--dists 1000] [--reps 7]`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TARGET_MS = 30.0

METADATA = """\
Metadata-Version: 2.1
Name: {name}
Version: {version}
Summary: A generated distribution for kagexp's provenance benchmark
Home-page: https://example.org/{name}
Author: nobody
License: MIT
Classifier: Programming Language :: Python :: 3
Requires-Python: >=3.8
Requires-Dist: numpy>=1.20
Description-Content-Type: text/markdown

# {name}

{body}
"""

KAGEXP_WAY = """\
import sys, time
sys.path.append({folder!r})
from kagexp.provenance import installed_packages
start = time.perf_counter()
packages = installed_packages()
print((time.perf_counter() - start) * 1000, len(packages))
"""

ENVIRONMENT = """\
import sys, time
from pathlib import Path
sys.path.append({folder!r})
from kagexp.provenance import Provenance
start = time.perf_counter()
environment = Provenance(Path.cwd(), Path.cwd()).environment
print((time.perf_counter() - start) * 1000, len(environment["packages"]))
"""

METADATA_WAY = """\
import sys, time
sys.path.append({folder!r})
start = time.perf_counter()
from importlib.metadata import distributions
packages = {{d.metadata["Name"]: d.version for d in distributions()}}
print((time.perf_counter() - start) * 1000, len(packages))
"""


def make_distributions(folder: Path, count: int) -> None:
    """`count` dist-info folders as pip leaves them: METADATA, RECORD, WHEEL, INSTALLER."""
    for i in range(count):
        name, version = f"Generated_Pkg{i:04d}", f"1.{i % 17}.{i}"
        info = folder / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(METADATA.format(name=name, version=version, body="Lorem ipsum. " * 200))
        (info / "RECORD").write_text(f"{name.lower()}/__init__.py,,\n")
        (info / "WHEEL").write_text("Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        (info / "INSTALLER").write_text("pip\n")


def timed(code: str, reps: int, cwd: Path) -> tuple[float, int]:
    """Median milliseconds over `reps` fresh interpreters (after one to warm the caches), and the count.

    They run in an empty folder: `python -c` puts the current folder on `sys.path`, and a checkout
    of kagexp holds `kagexp.egg-info`, which a user's project does not."""
    samples, count = [], 0
    for _ in range(reps + 1):
        command = [sys.executable, "-c", code]
        done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=cwd)
        ms, count = done.stdout.split()
        samples.append(float(ms))
    return statistics.median(samples[1:]), int(count)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dists", type=int, default=1000, help="generated distributions (default: 1000)")
    p.add_argument("--reps", type=int, default=7, help="fresh processes per figure (default: 7)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="kagexp-dists-") as tmp:
        empty, generated = Path(tmp) / "empty", Path(tmp) / "generated"
        empty.mkdir()
        make_distributions(generated, args.dists)
        rows = []
        for label, folder in (("this environment", empty), (f"+ {args.dists} generated", generated)):
            ours, count = timed(KAGEXP_WAY.format(folder=str(folder)), args.reps, empty)
            whole, _ = timed(ENVIRONMENT.format(folder=str(folder)), args.reps, empty)
            theirs, _ = timed(METADATA_WAY.format(folder=str(folder)), args.reps, empty)
            rows.append((label, count, ours, whole, theirs))
    print("| distributions | count | installed_packages() ms | environment ms | importlib.metadata ms |")
    print("|---|---|---|---|---|")
    for label, count, ours, whole, theirs in rows:
        print(f"| {label} | {count} | {ours:.1f} | {whole:.1f} | {theirs:.1f} |")
    worst = rows[-1][2]
    met = "yes" if worst <= TARGET_MS else "NO"
    print(f"\ntarget: installed_packages() ≤ {TARGET_MS:g} ms with {args.dists} distributions: {worst:.1f} ms ({met})")


if __name__ == "__main__":
    main()
