"""The wheels a pack carries, so that an offline kernel can `pip install --no-index`: kagexp's own,
zipped from the imported package (no build tool, no network, editable installs too), and the extra
requirements the user names, fetched with `pip download`.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

from kagexp.errors import KagexpError

_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed times: the same code makes the same wheel


def kagexp_wheel(dest: Path) -> Path:
    """A pure-Python wheel of the kagexp package that is imported now (the code that made the runs)."""
    import kagexp

    package = Path(kagexp.__file__).parent
    version = kagexp.__version__
    info = f"kagexp-{version}.dist-info"
    entries = [
        (f"kagexp/{path.relative_to(package).as_posix()}", path.read_bytes())
        for path in sorted(package.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    ]
    entries += [
        (f"{info}/METADATA", _metadata(version).encode()),
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: kagexp\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{info}/entry_points.txt", b"[console_scripts]\nkagexp = kagexp.cli:main\n"),
    ]
    record = "".join(f"{name},sha256={_digest(data)},{len(data)}\n" for name, data in entries)
    entries.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode()))
    path = dest / f"kagexp-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in entries:
            wheel.writestr(zipfile.ZipInfo(name, _EPOCH), data, zipfile.ZIP_DEFLATED)
    return path


def _metadata(version: str) -> str:
    """Core metadata; the requirements of the installed kagexp when it is installed (the kernel
    installs with --no-deps, so they are information)."""
    from importlib import metadata

    try:
        requires = metadata.requires("kagexp") or []
    except metadata.PackageNotFoundError:
        requires = []
    lines = ["Metadata-Version: 2.1", "Name: kagexp", f"Version: {version}", "Requires-Python: >=3.10"]
    return "\n".join([*lines, *(f"Requires-Dist: {r}" for r in requires)]) + "\n"


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def download(requirements: list[str], dest: Path) -> list[Path]:
    """`pip download --no-deps` of each requirement (a name and version, or a local wheel file):
    the Kaggle image has the common libraries, so only what is named is fetched. pip's own
    settings (PIP_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX) apply."""
    if not requirements:
        return []
    before = set(dest.iterdir())
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(dest)]
    done = subprocess.run([*command, *requirements], capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise KagexpError(f"pip download {' '.join(requirements)} failed: {last}")
    return sorted(set(dest.iterdir()) - before)
