"""Runs as one Slurm job array, through submitit; or as local processes through submitit's
`local` executor (`--slurm cluster=local`), which runs the same submission, pickling and
result-collection code on this machine.

What travels to a job: where the run function is (exp.py's path and the function's name in
it), the function itself pickled by value with cloudpickle, its spec, and where the project is.
The job puts the experiment folder on `sys.path`, so that `from train import fit` in exp.py works
there as it does here, then imports exp.py by its path under another name than `__main__` (so its
`kagexp.main(...)` line does not run) and takes the function by its name: a traceback in
`error.txt` names exp.py and the line, as on the other launchers (cloudpickle 3.1.3 names the code
of a pickled `__main__` function `<dynamic-code>`), and the code that runs is the code the job's
snapshot records. exp.py's top level runs again in every job, as on any machine that starts
afresh. Only a function that has no name in exp.py (a lambda, a nested function) or no file (a
notebook) comes from the pickle; its code gets exp.py's name back when it was defined there.

Provenance (host, GPUs, git, the code hash) is computed again in the job, on the node that runs
it. The run folders, and so `data/output`, must be on a filesystem that the login node and the
compute nodes share; submitit's own files (pickles, logs, the sbatch script) go to
`data/output/exp/<exp>/.submitit/`.
"""

from __future__ import annotations

import os
import pickle
import shutil
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kagexp import config
from kagexp.errors import ConfigError
from kagexp.fingerprints import Inputs
from kagexp.launchers import Reporter, execute_in_worker, from_folder, interrupt_once, with_environment
from kagexp.provenance import Provenance, importable
from kagexp.run import RunFunction, RunResult, RunSpec
from kagexp.scripts import import_script

CLUSTERS = ("slurm", "local")
POLL_SECONDS = {"slurm": 5.0, "local": 0.2}
GRACE_SECONDS = 30.0  # after Ctrl-C, how long cancelled jobs get to record their end
NUMBERS = (("time_min", 1, False), ("gpus_per_node", 0, False), ("cpus_per_task", 1, False))
NUMBERS += (("mem_gb", 0, True), ("array_parallelism", 1, True))


@dataclass(frozen=True)
class JobSetup:
    """Where a job finds the project, the command that submitted it (for `meta.json`), and where
    the run function is defined: `script` (exp.py) and its `function` name there, when it has one."""

    root: Path
    exp_dir: Path
    exclude: tuple[str, ...]
    command: tuple[str, ...]
    script: str | None = None
    function: str | None = None
    inputs: Inputs | None = None  # the data files to fingerprint, in the job as here


def check_settings(settings: dict, overrides: dict) -> dict:
    """`kagexp.yml`'s `slurm:` with the `--slurm KEY=VALUE` overrides, checked like a config."""
    problems = config.check_override(settings, overrides, base_name="the slurm settings", extensible=False)
    if problems:
        raise ConfigError("--slurm: " + "; ".join(p.message for p in problems))
    merged = {**settings, **overrides}
    if merged["cluster"] not in CLUSTERS:
        raise ConfigError(f"slurm.cluster must be one of {', '.join(CLUSTERS)}, not {merged['cluster']!r}")
    if merged["additional"] is not None and not isinstance(merged["additional"], dict):
        raise ConfigError("slurm.additional must be a mapping of sbatch options, such as {account: my-lab}")
    if not isinstance(merged["setup"], list):
        raise ConfigError("slurm.setup must be a list of shell lines")
    for key, least, optional in NUMBERS:
        value = merged[key]
        if value is None and optional:
            continue
        kinds = (int, float) if key == "mem_gb" else int
        if isinstance(value, bool) or not isinstance(value, kinds) or value < least:
            raise ConfigError(f"slurm.{key} must be a number of at least {least}, not {value!r}")
    return merged


@dataclass
class SlurmLauncher:
    """`--launcher slurm`: every run is one task of a job array; `--jobs N` runs at most N at once."""

    settings: dict
    folder: Path
    jobs: int | None = None
    poll: float | None = None
    grace: float = GRACE_SECONDS
    parallel = True

    @classmethod
    def from_settings(
        cls, settings: dict, overrides: dict, out_dir: Path, jobs: int | None = None, submit: bool = True
    ) -> SlurmLauncher:
        """`submit=False` for a launcher that only shows its sbatch script (`--dry-run`)."""
        if not importable("submitit"):
            raise ConfigError("--launcher slurm needs submitit: pip install 'kagexp[slurm]'")
        launcher = cls(check_settings(settings, overrides), out_dir / ".submitit", jobs)
        if submit and launcher.cluster == "slurm" and not shutil.which("sbatch"):
            raise ConfigError(
                "--launcher slurm: no `sbatch` on this machine; submit from the cluster's login node "
                "(--dry-run shows the sbatch script), or try the same path here with --slurm cluster=local"
            )
        return launcher

    @property
    def cluster(self) -> str:
        return self.settings["cluster"]

    @property
    def job_folder(self) -> Path:
        """One folder per Slurm job (`%j`); the local executor names its files by job id itself."""
        return self.folder / "%j" if self.cluster == "slurm" else self.folder

    def parameters(self, name: str) -> dict[str, Any]:
        """Submitit's parameters for the executor of `self.cluster` (AutoExecutor's generic names
        where they exist; the local executor ignores the Slurm-only ones)."""
        s = self.settings
        generic = {"name": name, "timeout_min": s["time_min"], "cpus_per_task": s["cpus_per_task"]}
        generic.update({k: s[k] for k in ("gpus_per_node", "mem_gb") if s[k]})
        if self.cluster == "local":
            return {**generic, "local_setup": s["setup"]} if s["setup"] else generic
        slurm = {"partition": s["partition"], "setup": s["setup"] or None, "additional_parameters": s["additional"]}
        slurm["array_parallelism"] = self.jobs or s["array_parallelism"]
        return {**generic, **{f"slurm_{k}": v for k, v in slurm.items() if v is not None}}

    def executor(self, name: str):
        import submitit

        executor = submitit.AutoExecutor(folder=self.job_folder, cluster=self.cluster)
        try:
            executor.update_parameters(**self.parameters(name))
        except (ValueError, NameError, AssertionError) as exc:
            raise ConfigError(f"slurm settings: {exc}") from None
        return executor

    def describe(self, specs: list[RunSpec]) -> str:
        if not specs:
            return ""
        script = self.script(f"kagexp-{specs[0].exp}", len(specs))
        return f"# the sbatch script of the job array of {len(specs)} runs:\n{script}"

    def script(self, name: str, count: int) -> str:
        """The sbatch script of a job array of `count` runs, as submitit writes it; no cluster needed."""
        from submitit.slurm.slurm import SlurmExecutor

        class _ScriptOnly(SlurmExecutor):  # the real executor, minus its check that `srun` is installed
            @classmethod
            def affinity(cls) -> int:
                return 2

        executor = _ScriptOnly(folder=self.job_folder)
        generic = {k: v for k, v in self.parameters(name).items() if not k.startswith("slurm_")}
        native = {k[len("slurm_") :]: v for k, v in self.parameters(name).items() if k.startswith("slurm_")}
        executor.update_parameters(**executor._convert_parameters(generic), **native)
        executor.parameters["map_count"] = count  # what submitting `count` jobs in a batch sets
        return executor._make_submission_file_text(executor._submitit_command_str, "")

    def launch(
        self,
        *,
        fn: RunFunction,
        specs: list[RunSpec],
        provenance: Provenance,
        reporter: Reporter | None,
        fail_fast: bool = False,
        capture: bool = True,
    ) -> list[RunResult]:
        if not specs:
            return []
        import cloudpickle

        script, function = defined_in_script(fn)
        command = (sys.executable, *sys.argv)
        setup = JobSetup(
            provenance.root, provenance.exp_dir, tuple(provenance.exclude), command, script, function, provenance.inputs
        )
        blob = cloudpickle.dumps(fn)
        executor = self.executor(f"kagexp-{specs[0].exp}")
        with executor.batch():
            jobs = [executor.submit(run_job, blob, spec, setup, capture) for spec in specs]
        if reporter:
            ids = jobs[0].job_id.split("_")[0] if self.cluster == "slurm" else ", ".join(j.job_id for j in jobs)
            reporter.say(
                f"{specs[0].exp}: {len(jobs)} run(s) submitted to {self.cluster} as job {ids}; "
                f"submitit's logs in {self.folder}"
            )
        batch = _Batch(dict(zip([j.job_id for j in jobs], zip(jobs, specs))), reporter)
        try:
            batch.collect(self.poll or POLL_SECONDS[self.cluster], fail_fast, self.grace)
        except KeyboardInterrupt:
            batch.cancel("interrupted (Ctrl-C)", self.grace)
            raise
        return batch.results


@dataclass
class _Batch:
    """The parent's side: poll the jobs, report runs as they start and end, cancel on Ctrl-C."""

    waiting: dict[str, tuple[Any, RunSpec]]
    reporter: Reporter | None
    results: list[RunResult] = field(default_factory=list)
    reported: set[str] = field(default_factory=set)
    since: float = field(default_factory=time.time)

    def collect(self, poll: float, fail_fast: bool, grace: float) -> None:
        while self.waiting:
            for job_id, (job, spec) in list(self.waiting.items()):
                if job.done():
                    self.finished(job_id, wait_for_result=True)
                elif job_id not in self.reported and job.state == "RUNNING":
                    self.reported.add(job_id)
                    if self.reporter:
                        self.reporter.started(spec)
            if fail_fast and any(r.status == "failed" for r in self.results):
                self.cancel("stopped by --fail-fast: another run failed", grace)
                return
            if self.waiting:
                time.sleep(poll)

    def finished(self, job_id: str, wait_for_result: bool, reason: str = "") -> None:
        """A job that ended: its result, else what its run folder says (a job killed outside the run)."""
        job, spec = self.waiting.pop(job_id)
        result = None
        if wait_for_result or job.paths.result_pickle.exists():
            try:
                result = job.result()  # waits a little for the result file on a shared filesystem
            except Exception as exc:  # the job died outside the run: killed, timed out, could not unpickle
                reason = reason or _job_failure(exc)
        if result is None:
            result = from_folder(spec, self.since, "failed" if wait_for_result else "interrupted", reason)
        if result is None and wait_for_result:
            result = RunResult(spec.name, "failed", message=reason)
        if result is not None:  # None: cancelled before its run started, so `not run`
            self.results.append(result)
            if self.reporter:
                self.reporter.finished(spec, result)

    def cancel(self, reason: str, grace: float) -> None:
        """Cancel the unfinished jobs; their runs record `interrupted` themselves when they can."""
        for job, _ in self.waiting.values():
            try:
                job.cancel(check=False)
            except Exception:
                pass
        deadline = time.monotonic() + grace
        while self.waiting and time.monotonic() < deadline:
            for job_id, (job, _) in list(self.waiting.items()):
                if job.done():
                    self.finished(job_id, wait_for_result=False, reason=reason)
            time.sleep(0.1)
        for job_id in list(self.waiting):
            self.finished(job_id, wait_for_result=False, reason=reason)


def _job_failure(exc: Exception) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    last = lines[-1].strip() if lines else type(exc).__name__
    return f"its job failed: {last}"[:300]


def run_job(blob: bytes, spec: RunSpec, setup: JobSetup, capture: bool) -> RunResult:
    """What a job runs: one run, recorded in its folder like any other."""
    interrupt_once()  # scancel and Slurm's time limit send SIGTERM: the run ends `interrupted`
    if str(setup.exp_dir) not in sys.path:
        sys.path.insert(0, str(setup.exp_dir))
    fn = load_function(blob, setup)
    provenance = Provenance(setup.root, setup.exp_dir, list(setup.exclude), setup.inputs)
    job_id = os.environ.get("SLURM_ARRAY_JOB_ID") and (
        f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID')}"
    )
    changes = {"command": list(setup.command), "slurm_job_id": job_id or os.environ.get("SLURM_JOB_ID")}
    changes = {k: v for k, v in changes.items() if v}
    return execute_in_worker(fn, spec, with_environment(provenance, **changes), capture)


# --- the run function, from exp.py by its path --------------------------------------------


def defined_in_script(fn: RunFunction) -> tuple[str | None, str | None]:
    """The script run as `__main__` (exp.py) when `fn` was defined there, and `fn`'s name in it when
    that name is `fn` (not for a lambda, a nested function, or a name bound to something else since).
    (None, None) in a notebook (its `__main__` has no file) or for a function from another module,
    which cloudpickle pickles by reference: the job imports it by its name."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if getattr(fn, "__module__", None) != "__main__" or not path:
        return None, None
    name = getattr(fn, "__qualname__", "")
    return os.path.abspath(path), name if name.isidentifier() and getattr(main, name, None) is fn else None


def load_function(blob: bytes, setup: JobSetup) -> RunFunction:
    """In a job: the run function from exp.py, imported by its path; else the pickled one.

    exp.py's top level runs before the run is seeded, as it does on the other launchers; when it
    fails here (exp.py changed since it was submitted, a file missing on this node), the run fails
    with that traceback in its error.txt.
    """
    if not (setup.script and setup.function):
        return unpickle(blob, setup.script)
    try:
        fn = getattr(import_script(Path(setup.script)), setup.function, None)
    except Exception as exc:
        return _failing(exc)
    if callable(fn):
        return fn
    # not in exp.py by that name any more (edited since it was submitted): the submitted function,
    # its code named `<dynamic-code>`, since exp.py's lines no longer match it
    return pickle.loads(blob)


def _failing(exc: Exception) -> RunFunction:
    def import_failed(cfg, ctx):
        raise exc  # with the traceback of the import, down to exp.py's line

    return import_failed


def unpickle(blob: bytes, script: str | None) -> RunFunction:
    fn = pickle.loads(blob)
    if script:
        restore_filename(fn, script)
    return fn


def restore_filename(fn: object, filename: str) -> None:
    """Give the code of `fn`, and of the functions it reaches through its globals and closure,
    `filename` back where cloudpickle wrote `<dynamic-code>`: their tracebacks name exp.py again."""
    seen: set[int] = set()
    todo = [fn]
    while todo:
        item = todo.pop()
        if not isinstance(item, types.FunctionType) or id(item) in seen:
            continue
        seen.add(id(item))
        if item.__code__.co_filename != "<dynamic-code>":
            continue  # not from the pickle: a library's function keeps its own file
        item.__code__ = _renamed(item.__code__, filename)
        todo.extend(item.__globals__.values())
        todo.extend(cell.cell_contents for cell in item.__closure__ or () if _filled(cell))


def _renamed(code: types.CodeType, filename: str) -> types.CodeType:
    consts = tuple(_renamed(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:  # a cell not yet assigned
        return False
    return True
