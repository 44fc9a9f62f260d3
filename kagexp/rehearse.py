"""`kagexp rehearse`: a pack's kernel run on this machine the way Kaggle runs it.

- the network is off: the kernel runs in a new network namespace (`unshare -n`);
- the input is read-only: the pack and the competition data are copied under a Kaggle-like
  `input/` with read-only modes; where mount namespaces are allowed (root) that folder is also
  bind-mounted read-only for the kernel, so a write fails as on Kaggle; and a manifest of sizes,
  times and hashes taken before and after the run catches any write that got through;
- a fresh virtual environment: the current environment's packages are visible (as a Kaggle image's
  are) but kagexp is not, so the kernel must install it from the packed wheels, offline;
- a time limit, after which the kernel's whole process group is killed.

An audit hook in that environment records a network connection or a write into the input as it
happens, so the reason is named even when the kernel catches the error. The sandbox (input copies,
venv) is a temporary folder removed at the end; `DIR/rehearsal/` keeps the working folder and log.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from kagexp import files, packformat
from kagexp.errors import KagexpError, UsageError
from kagexp.project import Project
from kagexp.records import find_run
from kagexp.runfolder import read_jsonl

SANDBOX_ENV = {"input": "KAGEXP_KAGGLE_INPUT", "working": "KAGEXP_KAGGLE_WORKING", "events": "KAGEXP_REHEARSAL_EVENTS"}

GUARD = '''"""Put in place by `kagexp rehearse` in its throwaway venv: records what Kaggle's sandbox refuses."""
import json
import os
import sys

_EVENTS = os.environ.get("KAGEXP_REHEARSAL_EVENTS")
_INPUT = os.path.realpath(os.environ.get("KAGEXP_KAGGLE_INPUT") or "/kaggle/input")
_LOCAL = ("localhost", "127.0.0.1", "::1", "", None)
_CHANGES = {"os.remove": 0, "os.rename": 0, "os.mkdir": 0, "os.rmdir": 0, "os.chmod": 0, "os.truncate": 0}


def _record(kind, detail):
    fd = os.open(_EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    os.write(fd, (json.dumps({"kind": kind, "detail": detail}) + "\\n").encode())
    os.close(fd)


def _inside(path):
    if isinstance(path, int):
        return False
    path = os.path.realpath(os.fsdecode(path))
    return path == _INPUT or path.startswith(_INPUT + os.sep)


def _hook(event, args):
    try:
        if event == "socket.connect" and getattr(args[0], "family", None) != 1:
            host = args[1][0] if isinstance(args[1], tuple) else args[1]
            if host not in _LOCAL:
                _record("network", f"connect to {args[1]!r}")
        elif event == "socket.getaddrinfo" and args[0] not in _LOCAL:
            _record("network", f"look up {args[0]!r}")
        elif event == "open" and args[2] & (os.O_WRONLY | os.O_RDWR) and _inside(args[0]):
            _record("write", os.fsdecode(args[0]))
        elif event in _CHANGES and _inside(args[0]):
            _record("write", f"{event} {os.fsdecode(args[0])}")
    except Exception:
        pass


if _EVENTS:
    sys.addaudithook(_hook)
'''

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([hms])")


def parse_duration(text: str) -> float:
    """`9h`, `30m`, `90s`, `1h30m` → seconds."""
    parts = _DURATION.findall(text.strip().lower())
    if not parts or "".join(a + b for a, b in parts) != text.strip().lower():
        raise UsageError(f"--limit {text!r} is not a duration; write it like 9h, 30m, 90s or 1h30m")
    return sum(float(value) * {"h": 3600, "m": 60, "s": 1}[unit] for value, unit in parts)


# Run first inside the new namespaces (`unshare -n -m`): the input becomes a read-only mount there
# (a write fails as on Kaggle, EROFS), then the kernel replaces this process. Mounts made in a
# private mount namespace never reach the rest of the machine.
MOUNT_READ_ONLY = """\
import os, subprocess, sys
subprocess.run(["mount", "--bind", sys.argv[1], sys.argv[1]], check=True)
subprocess.run(["mount", "-o", "remount,bind,ro", sys.argv[1]], check=True)
os.execv(sys.argv[2], sys.argv[2:])
"""


@dataclass(frozen=True)
class Isolation:
    """How the kernel is fenced in: the command prefix, and what it achieves."""

    prefix: list[str]
    network_off: bool
    mounts: bool  # the input is mounted read-only (else: read-only copies, checked by a manifest)


def isolation(allow_network: bool) -> Isolation:
    """New network and mount namespaces where allowed (root); without them, only with --allow-network."""
    unshare = shutil.which("unshare")
    for flags, mounts in ((["-n", "-m"], True), (["-n"], False)):
        if mounts and not shutil.which("mount"):
            continue
        if unshare and subprocess.run([unshare, *flags, "true"], capture_output=True).returncode == 0:
            return Isolation([unshare, *flags], True, mounts)
    if allow_network:
        return Isolation([], False, False)
    raise KagexpError(
        "cannot switch the network off here: `unshare -n` needs root (or CAP_SYS_ADMIN); "
        "rehearse as root, or pass --allow-network to rehearse without this guard"
    )


@dataclass
class Rehearsal:
    """How a rehearsal went: the reason when it failed, the wall time, the submission's check."""

    run: str
    working: Path
    log: Path
    seconds: float = 0.0
    scale: float = 1.0
    limit: float = 0.0
    network_off: bool = True
    mounted: bool = False  # the input was a read-only mount, not only read-only copies
    reason: str = ""
    identical: bool | None = None
    rows: int = 0
    columns: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.reason

    infer_seconds: float | None = None  # `infer` alone, as the kernel reported it

    @property
    def projected(self) -> float:
        """Setup (installing, importing) stays; `infer` grows with the test set. Without its own
        time, the whole wall time is scaled (an upper bound)."""
        if self.infer_seconds is None:
            return self.seconds * self.scale
        return self.seconds + self.infer_seconds * (self.scale - 1)

    def lines(self) -> list[str]:
        guard = "network off" if self.network_off else "NETWORK ON (--allow-network)"
        guard += ", read-only input mount" if self.mounted else ", read-only input copy"
        if not self.ok:
            return [f"rehearsal of {self.run} failed: {self.reason}", f"kernel log: {self.log}"]
        same = "identical to" if self.identical else "same columns and rows as, but not identical to,"
        lines = [
            f"rehearsal of {self.run}: ok in {self.seconds:.1f} s ({guard}, fresh venv)",
            f"submission.csv: {self.rows} rows, columns {','.join(self.columns)}; {same} the training run's",
        ]
        if self.scale != 1:
            over = " (over the limit)" if self.projected > self.limit else ""
            lines.append(f"projected for a test set {self.scale:g}x larger: {self.projected:.0f} s{over}")
        return [*lines, f"working folder: {self.working}"]

    def record(self) -> dict:
        return {
            "seconds": round(self.seconds, 3),
            "scale": self.scale,
            "infer_seconds": self.infer_seconds,
            "projected_seconds": round(self.projected, 3),
            "limit_seconds": self.limit,
            "network_off": self.network_off,
            "input_mounted_read_only": self.mounted,
            "identical": self.identical,
        }


def rehearse(
    project: Project, pack_dir: Path, limit: str = "9h", scale: float = 1.0, allow_network: bool = False
) -> Rehearsal:
    """Run the pack's kernel in a sandbox; the result says why it failed, if it did. A successful
    rehearsal is recorded in the run it packed."""
    pack_dir = pack_dir.resolve()
    manifest = packformat.read_manifest(pack_dir)
    record = find_run(project, manifest.kernel_run)
    fence, seconds = isolation(allow_network), parse_duration(limit)
    out = pack_dir / packformat.REHEARSAL
    if out.exists():
        shutil.rmtree(out)  # the previous rehearsal's folder: only rehearse writes there
    (out / "working").mkdir(parents=True)
    result = Rehearsal(manifest.kernel_run, out / "working", out / packformat.REHEARSAL_LOG, scale=scale, limit=seconds)
    result.network_off, result.mounted = fence.network_off, fence.mounts
    with tempfile.TemporaryDirectory(prefix="kagexp-rehearsal-") as tmp:
        sandbox = Sandbox(Path(tmp), pack_dir, project.input_dir, manifest)
        try:
            sandbox.prepare()
            result.reason = sandbox.run(fence, result)
        finally:
            sandbox.writable_again()
    if result.ok:
        result.reason = _check_submission(result, record.path / "submission.csv")
    if result.ok:
        record.run_folder.record_rehearsal({"pack": pack_dir.name, **result.record()})
    return result


@dataclass
class Sandbox:
    """The throwaway input copies, venv and home of one rehearsal."""

    root: Path
    pack_dir: Path
    competition_data: Path
    manifest: packformat.Manifest

    @property
    def input(self) -> Path:
        return self.root / "input"

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    def prepare(self) -> None:
        slug = self.manifest.dataset.split("/")[1]
        ignore = shutil.ignore_patterns(*packformat.NOT_UPLOADED)
        shutil.copytree(self.pack_dir, self.input / slug, ignore=ignore)
        data = self.input / (self.manifest.competition or "")
        if self.competition_data.is_dir():
            shutil.copytree(self.competition_data, data, dirs_exist_ok=True)
        _read_only(self.input)
        self.before = input_manifest(self.input)
        self._make_venv()
        (self.root / "home").mkdir()

    def _make_venv(self) -> None:
        """A venv without kagexp that still sees this environment's packages, as a Kaggle image would:
        plain paths in a .pth file add the site folders without running their .pth files (which is
        how an editable kagexp install would come back)."""
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(self.venv)], check=True)
        site = Path(sysconfig.get_path("purelib", vars={"base": str(self.venv), "platbase": str(self.venv)}))
        here = [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and os.path.isdir(p)]
        (site / "_kagexp_environment.pth").write_text("".join(f"{p}\n" for p in here))
        (site / "_kagexp_rehearsal.py").write_text(GUARD)
        (site / "_kagexp_rehearsal.pth").write_text("import _kagexp_rehearsal\n")
        self.site = site

    def env(self, working: Path) -> dict[str, str]:
        skip = ("PYTHON", "KAGGLE_", "KAGEXP_", "VIRTUAL_ENV", "PIP_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
        env.update(
            PATH=f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            HOME=str(self.root / "home"),
            PYTHONNOUSERSITE="1",
            PYTHONDONTWRITEBYTECODE="1",  # Kaggle's read-only input silently gets none either
            PIP_DISABLE_PIP_VERSION_CHECK="1",
        )
        paths = {"input": self.input, "working": working, "events": self.events}
        env.update({SANDBOX_ENV[key]: str(path) for key, path in paths.items()})
        return env

    def run(self, fence: Isolation, result: Rehearsal) -> str:
        """Run the kernel; the reason it failed, or ''."""
        script = self.pack_dir.resolve() / packformat.KERNEL / packformat.KERNEL_SCRIPT
        python = str(self.venv / "bin" / "python")
        mount = [python, "-c", MOUNT_READ_ONLY, str(self.input)] if fence.mounts else []
        command = [*fence.prefix, *mount, python, str(script)]
        started = time.monotonic()
        with open(result.log, "wb") as log:
            process = subprocess.Popen(
                command,
                cwd=result.working,
                env=self.env(result.working),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                code = process.wait(timeout=result.limit)
            except subprocess.TimeoutExpired:
                code = None
            finally:  # past the limit, or Ctrl-C here: nothing of the kernel may outlive the rehearsal
                _kill_group(process)
        result.seconds = time.monotonic() - started
        return self._reason(code, result)

    def _reason(self, code: int | None, result: Rehearsal) -> str:
        events = read_jsonl(self.events)  # a line cut short by a killed kernel is skipped
        result.infer_seconds = next((e["seconds"] for e in events if e.get("kind") == "infer"), None)
        network = [e["detail"] for e in events if e.get("kind") == "network"]
        network.sort(key=lambda detail: not detail.startswith("connect"))  # a connection says more than a look-up
        writes = [e["detail"] for e in events if e.get("kind") == "write"]
        changed = changes(self.before, input_manifest(self.input))
        if code is None:
            return f"it ran past the time limit of {result.limit:.0f} s and was stopped"
        if network:
            return f"the kernel used the network ({network[0]}); on Kaggle the internet is off"
        if writes or changed:
            where = (writes or changed)[0]
            return f"the kernel wrote into its input ({where}); write under the working folder instead"
        if code != 0:
            return f"the kernel failed with exit code {code}: {_last_line(result.log)}"
        if not (self.site / "kagexp" / "__init__.py").is_file():
            return "kagexp was not installed from the packed wheels; pack the run again"
        if not (result.working / "submission.csv").is_file():
            return "the kernel left no submission.csv in its working folder"
        return ""

    def writable_again(self) -> None:
        """So that the temporary folder can be removed."""
        for folder, _, _ in os.walk(self.input):
            os.chmod(folder, 0o755)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # the kernel and all it started are gone already
        pass
    process.wait()


def _read_only(root: Path) -> None:
    for folder, _, names in os.walk(root):
        for name in names:
            os.chmod(os.path.join(folder, name), 0o444)
    for folder, _, _ in os.walk(root, topdown=False):
        os.chmod(folder, 0o555)


def input_manifest(root: Path) -> dict[str, tuple]:
    """Every path under `root` with its size, modification time and hash (folders: their names)."""
    found: dict[str, tuple] = {}
    for folder, dirs, names in os.walk(root):
        for name in dirs:
            found[os.path.relpath(os.path.join(folder, name), root)] = ("folder",)
        for name in names:
            path = os.path.join(folder, name)
            stat = os.lstat(path)
            found[os.path.relpath(path, root)] = (stat.st_size, stat.st_mtime_ns, files.sha256(path))
    return found


def changes(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    """What differs between two manifests: paths added, removed or changed."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def _last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def _check_submission(result: Rehearsal, training: Path) -> str:
    """The rehearsal's submission must have the training run's columns and row count."""
    made = result.working / "submission.csv"
    header, rows = _shape(made)
    result.columns, result.rows = header, rows
    if not training.is_file():
        return ""
    expected_header, expected_rows = _shape(training)
    if header != expected_header:
        return f"submission.csv has columns {','.join(header)}, the training run's {','.join(expected_header)}"
    if rows != expected_rows:
        return f"submission.csv has {rows} rows, the training run's {expected_rows}"
    result.identical = made.read_bytes() == training.read_bytes()
    return ""


def _shape(path: Path) -> tuple[list[str], int]:
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        return header, sum(1 for _ in reader)
