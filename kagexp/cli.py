"""The `kagexp` command: parses arguments, calls the library, prints. No logic of its own.

Click, not Typer: Typer costs ~20 ms more at start-up and `kagexp --help` must stay under 100 ms.
Heavy modules (copier, cookiecutter, rich) are imported inside the commands that use them.
Exit codes: 0 ok, 1 a run failed (or `diff --exit-code` found a difference), 2 user error, 130 interrupted
(`kagexp.errors.run_command`, shared with exp.py).
"""

from __future__ import annotations

import gc as python_gc
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path

import click

from kagexp import __version__, tables
from kagexp.errors import quiet_stdout, run_command
from kagexp.listing import STATUSES

FORMATS = click.Choice(tables.FORMATS)


def _bulk_read(command: Callable) -> Callable:
    """For the commands that read every run: 100,000 runs are a million objects that all live to
    the end, which Python's cycle collector would walk again and again (a tenth of the time), and
    reading makes no cycles worth collecting. Commands only: a notebook's process keeps its GC."""

    @wraps(command)
    def without_gc(*args, **kwargs):
        python_gc.disable()
        try:
            return command(*args, **kwargs)
        finally:
            python_gc.enable()

    return without_gc


def _color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def _project():
    from kagexp.project import load_project

    return load_project()


def _print_table(columns: list[str], rows: list[list], fmt: str) -> None:
    """Rich table on a terminal, plain aligned text when piped (stable for grep and tests)."""
    if fmt == "table" and _color():
        tables.rich_table(columns, rows)
    else:
        click.echo(tables.render(columns, rows, fmt))


class _Commands(click.Group):
    """Every command ends the same way: what escapes it becomes an exit code in `errors.run_command`,
    and a mistake on the command line is one line too, like every other kagexp error."""

    def invoke(self, ctx: click.Context):
        code = run_command(lambda: super(_Commands, self).invoke(ctx), debug=ctx.params.get("debug", False))
        ctx.exit(code)

    def main(self, *args, **kwargs):
        try:
            code = super().main(*args, **{**kwargs, "standalone_mode": False})
        except click.exceptions.NoArgsIsHelpError as exc:  # `kagexp` alone: the help
            exc.show()
            code = exc.exit_code
        except click.UsageError as exc:
            where = f"; see {exc.ctx.command_path} --help" if exc.ctx is not None else ""
            click.echo(f"kagexp: error: {exc.format_message().rstrip('.')}{where}", err=True)
            code = exc.exit_code
        except click.ClickException as exc:
            exc.show()
            code = exc.exit_code
        except click.Abort:
            click.echo("Aborted!", err=True)
            code = 1
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kagexp")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
def cli(debug: bool) -> None:
    """Kaggle-style experiments: one folder per experiment, one run per YAML override.

    \b
    Example:
      kagexp init my-comp && cd my-comp
      python exp/exp001/exp.py
      kagexp new -m "hypothesis: deeper trees help"
      kagexp runs --sort -cv
    """


@cli.command()
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--template", "-t", help="A copier or cookiecutter template (path or git URL).")
@click.option("--data", "-d", multiple=True, metavar="KEY=VALUE", help="Answer a template question.")
@click.option("--defaults", is_flag=True, help="Take every default answer without asking.")
@click.option("--trust", is_flag=True, help="Allow the template to run its own code (tasks, hooks).")
@click.option("--force", is_flag=True, help="Render into a folder that is not empty.")
@click.option("--vcs-ref", metavar="REF", help="The git tag, branch or commit of a template kept in git.")
def init(dest: Path, template, data: tuple[str, ...], defaults: bool, trust: bool, force: bool, vcs_ref) -> None:
    """Create a new project in DEST from the built-in template or --template.

    \b
    Example:
      kagexp init my-comp --data competition=titanic --data metric_name=auc
    """
    from kagexp import scaffold

    ask = not defaults and sys.stdin.isatty()
    made = _trusting(
        scaffold.init_project,
        trust,
        dest,
        template=template,
        data=_parse_data(data),
        defaults=not ask,
        force=force,
        vcs_ref=vcs_ref,
    )
    if made.kept:
        click.echo(f"kept {len(made.kept)} existing file(s) as they were: {', '.join(made.kept)}", err=True)
    if made.hint:
        click.echo(made.hint, err=True)
    click.echo(f"created {made.path}\nnext: cd {dest} && python exp/exp001/exp.py")


def _trusting(action, trust: bool, *args, **kwargs):
    """Run `action`; when the template runs code and a person is at the terminal, ask once."""
    from kagexp.errors import UntrustedTemplateError

    try:
        return action(*args, trust=trust, **kwargs)
    except UntrustedTemplateError as exc:
        if trust or not sys.stdin.isatty() or not click.confirm(f"{exc}.\nTrust it and run its code?", default=False):
            raise
        return action(*args, trust=True, **kwargs)


def _parse_data(pairs: tuple[str, ...]) -> dict:
    answers = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--data")
        answers[key.strip()] = value
    return answers


@cli.command()
@click.argument("name", required=False)
@click.option("--from", "source", metavar="EXP", help="Experiment to copy (default: the highest numbered).")
@click.option("-m", "--message", "note", help="A note for the new experiment, e.g. the hypothesis it tests.")
@click.option(
    "--template", "-t", help="Start from a copier or cookiecutter template, or a starter kagexp ships (gbdt-folds)."
)
@click.option("--data", "-d", multiple=True, metavar="KEY=VALUE", help="Answer a template question.")
@click.option("--trust", is_flag=True, help="Allow the template to run its own code.")
def new(name: str | None, source: str | None, note: str | None, template: str | None, data, trust: bool) -> None:
    """Copy an experiment wholesale into a new one (default: the next number, from the latest).

    \b
    Example:
      kagexp new exp042 --from exp041 -m "larger images help"
      kagexp new --template gbdt-folds -m "a GBDT baseline"
    """
    from kagexp import scaffold

    created = _trusting(
        scaffold.new_experiment,
        trust,
        _project(),
        name=name,
        source=source,
        note=note,
        template=template,
        data=_parse_data(data),
    )
    for relative, size in created.large_files:
        click.echo(
            f"warning: copied a large file {relative} ({size / 2**20:.0f} MB); "
            "add it to new.exclude in kagexp.yml to leave it out next time",
            err=True,
        )
    origin = created.parent or created.template
    folder = f"exp/{created.name}"
    click.echo(f"created {folder}" + (f" from {origin}" if origin else "") + f" ({created.copied} files)")
    click.echo(f"next: edit {folder}/, then python {folder}/exp.py")


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("exp")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(exp: str, args: tuple[str, ...]) -> None:
    """Run an experiment: the same as `python exp/EXP/exp.py ARGS`.

    \b
    Example:
      kagexp run 1 --only run002 --force
    """
    from kagexp.experiment import run_script

    sys.exit(run_script(exp, list(args)))


@cli.command()
@click.argument("a")
@click.argument("b", required=False)
@click.option("--stat", is_flag=True, help="Only the summary, no unified diffs.")
@click.option("--config", "only_config", is_flag=True, help="Only the config (and metrics, environment).")
@click.option("--code", "only_code", is_flag=True, help="Only the code files.")
@click.option("--tool", metavar="CMD", help="Open an external diff tool on the two code folders (e.g. meld).")
@click.option("--exit-code", is_flag=True, help="Exit with 1 when they differ, like git diff.")
def diff(a: str, b: str | None, stat: bool, only_config: bool, only_code: bool, tool: str | None, exit_code: bool):
    """Compare two experiments, runs or folders (one experiment: with its parent).

    \b
    Example:
      kagexp diff exp033 exp034
      kagexp diff exp033/run002 exp034/run001 --config
    """
    from kagexp import diff as diffing
    from kagexp.views import comparison_text

    if tool is not None:
        diffing.tool_command(tool)  # a malformed --tool is an error before anything is compared
    comparison = diffing.compare(_project(), a, b)
    if tool is not None:
        sys.exit(diffing.open_tool(tool, comparison.left, comparison.right))
    parts = ("config",) if only_config else ("code",) if only_code else ("config", "code")
    try:
        for line in comparison_text(comparison, stat, parts):
            click.echo(_colored(line))
    except BrokenPipeError:  # `kagexp diff … | head`: stop quietly; --exit-code still answers, as git's does
        quiet_stdout()
    if exit_code and comparison.differs:
        sys.exit(1)


def _colored(line: str) -> str:
    if not _color():
        return line
    if line.startswith(("+++", "---")):
        return click.style(line, bold=True)
    if line.startswith("@@"):
        return click.style(line, fg="cyan")
    if line.startswith(("+", "  + ", "  added")):
        return click.style(line, fg="green")
    if line.startswith(("-", "  - ", "  removed")):
        return click.style(line, fg="red")
    return line


@cli.command(name="ls")
@click.option("--format", "fmt", type=FORMATS, default="table", help="Output format.")
@_bulk_read
def ls_(fmt: str) -> None:
    """List experiments: parent, runs by status, best metric and its run, code changed, note.

    \b
    Example:
      kagexp ls --format json
    """
    from kagexp.results import experiments_overview, summary_rows

    project = _project()
    overview = experiments_overview(project)
    _warn(overview.warnings)
    machine = fmt in tables.MACHINE
    _print_table(*summary_rows(overview.summaries, project.settings["metric"]["name"], machine), fmt)


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        click.echo(warning, err=True)


@cli.command()
@click.argument("exps", nargs=-1)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    metavar="STATUS[,STATUS…]",
    help=f"Only runs with these statuses, repeated or comma-separated ({', '.join(STATUSES)}).",
)
@click.option("--where", metavar="EXPR", help="Filter, e.g. 'model.params.max_depth>=2 and (cv>0.9 or lb>0.9)'.")
@click.option("--sort", "sort_key", metavar="KEY", help="Sort by a key or metric; -KEY for descending.")
@click.option("--limit", type=click.IntRange(min=0), help="Show at most N runs.")
@click.option("--format", "fmt", type=FORMATS, default="table", help="Output format (csv, json: every key, in full).")
@click.option("--all-keys", is_flag=True, help="Show every config key, not only those that vary (always in csv, json).")
@click.option(
    "--refresh", is_flag=True, help="Read every run folder again, not the listing's cache (after hand edits)."
)
@_bulk_read
def runs(exps, statuses, where, sort_key, limit, fmt, all_keys, refresh) -> None:
    """List runs: one row each, with the config keys that vary, metrics (the project's first, LB
    beside it) and status; under a table, the CV–LB rank correlation.

    \b
    Example:
      kagexp runs exp001 exp002 --where 'cv>0.9' --sort -cv --format csv
      kagexp runs --status failed,interrupted
    """
    from kagexp.listing import list_runs

    every_key = all_keys or fmt in tables.MACHINE
    listed = list_runs(_project(), list(exps), statuses, where, sort_key, limit, every_key, refresh)
    _warn(listed.warnings)
    if listed.empty and fmt == "table":
        click.echo("no runs match" if exps or statuses or where or limit is not None else "no runs yet", err=True)
        return
    if fmt == "json":  # column by column: 100,000 rows never become lists
        click.echo(listed.json())
    else:
        _print_table(listed.columns, listed.rows, fmt)
    line = listed.cv_lb() if fmt == "table" else None
    if line:
        click.echo(line)


@cli.command()
@click.argument("run_id", metavar="RUN")
def show(run_id: str) -> None:
    """Everything about one run: override, merged config, metrics, status, provenance, files.

    \b
    Example:
      kagexp show exp001/run002
    """
    from kagexp.records import find_run
    from kagexp.views import record_text

    project = _project()
    click.echo("\n".join(record_text(find_run(project, run_id), project.settings["metric"]["name"])))


@cli.command()
@click.argument("exp", required=False)
@click.option("--all", "everything", is_flag=True, help="The project's RESULTS.md: one row per experiment.")
@click.option(
    "--diary", is_flag=True, help="The project's DIARY.md: each experiment as it ran, base, best so far, time."
)
def report(exp: str | None, everything: bool, diary: bool) -> None:
    """Write RESULTS.md (runs table, best run, config changes, CV vs LB, plots) for an experiment.

    \b
    Example:
      kagexp report exp002
      kagexp report --all
      kagexp report --diary
    """
    from kagexp import report as reports

    if sum((bool(exp), everything, diary)) != 1:
        several = "one of them, not several: " if exp or everything or diary else ""
        raise click.UsageError(f"{several}name an experiment, or pass --all for the whole project, or --diary")
    project = _project()
    if diary:
        written = reports.report_diary(project)
    else:
        written = reports.report_project(project) if everything else reports.report_experiment(project, exp)
    _warn(written.warnings)
    click.echo(f"wrote {written.path.relative_to(project.root)}")


@cli.command()
@click.option("--format", "fmt", type=FORMATS, default="table", help="Output format.")
def tree(fmt: str) -> None:
    """The experiment lineage (`kagexp new --from`): each experiment's best metric, its change
    against its parent, its runs and their compute time, and its note.

    \b
    Example:
      kagexp tree
      kagexp tree --format json
    """
    from kagexp.lineage import lineage, tree_table

    _print_table(*tree_table(lineage(_project()), machine=fmt in tables.MACHINE), fmt)


@cli.command()
@click.argument("names", nargs=-1, metavar="RUN...")
@click.option("--check", is_flag=True, help="Compare every metric with the original attempt's; exit 1 if one differs.")
@click.option("--tol", type=click.FloatRange(min=0), metavar="REL", help="With --check: relative difference allowed.")
def rerun(names: tuple[str, ...], check: bool, tol: float | None) -> None:
    """Run runs again from their code snapshot, recorded config and seed, as a new attempt.

    RUN is EXP/RUN, or an experiment for all its done runs. Prints what changed in the
    environment since the original attempt (kept under attempts/N/).

    \b
    Example:
      kagexp rerun exp003/run002 --check
      kagexp rerun exp003 --check --tol 1e-6
    """
    from kagexp import rerun as reruns
    from kagexp.errors import UsageError
    from kagexp.views import rerun_text

    if tol is not None and not check:
        raise UsageError("--tol goes with --check (it is the relative difference --check allows)")
    project = _project()
    targets = reruns.plan(project, list(names))
    failed = False

    def started(spec) -> None:
        click.echo(f"{spec.label} rerun started", err=True)

    for outcome in reruns.rerun_each(project, targets, tol, on_start=started):
        click.echo("\n".join(rerun_text(outcome, project.root, check, tol)))
        failed = failed or outcome.status != "done" or (check and bool(outcome.mismatches))
    if failed:
        sys.exit(1)


@cli.command()
@click.argument("exp", required=False)
def doctor(exp: str | None) -> None:
    """Check an experiment before a long run (default: the highest numbered): imports, configs,
    input files, output folder and disk, GPU, trackers, git guards. Exit 1 when a check fails.

    \b
    Example:
      kagexp doctor exp042
    """
    from kagexp.doctor import doctor as checks

    results = checks(_project(), exp)
    width = max(len(c.name) for c in results)
    for c in results:
        click.echo(f"{c.level:4}  {c.name:{width}}  {c.detail}")
    if any(c.level == "fail" for c in results):
        sys.exit(1)


@cli.command()
@click.argument("run_id", metavar="RUN", required=False)
@click.argument("score", type=float, required=False)
@click.option("-m", "--message", "note", help="A note, e.g. what changed in this submission.")
@click.option(
    "--force",
    is_flag=True,
    help="Record it anyway (no submission.csv; outside [0, 1] for auc, accuracy, f1).",
)
@click.option("--fetch", is_flag=True, help="Read every submission's scores from Kaggle and store them in their runs.")
@click.option("--rm", "remove", is_flag=True, help="Remove a run's Nth LB score: kagexp lb --rm EXP/RUN N.")
def lb(run_id: str | None, score: float | None, note: str | None, force: bool, fetch: bool, remove: bool) -> None:
    """Record a public leaderboard score for a run's submission, or fetch them all from Kaggle.

    \b
    Example:
      kagexp lb exp003/run002 0.912 -m "first forest"
      kagexp lb --fetch
      kagexp lb --rm exp003/run002 1
    """
    from kagexp import leaderboard
    from kagexp.errors import UsageError

    if fetch:
        if run_id or score is not None or remove:
            raise UsageError("lb --fetch takes no run and no score")
        _print_fetched(leaderboard.fetch(_project()))
        return
    if not run_id or score is None:
        raise UsageError("name a run and a score (kagexp lb exp003/run002 0.912), or use --fetch or --rm")
    if remove:
        if not score.is_integer() or score < 1:
            raise UsageError(f"lb --rm takes the number of the score to remove (1 is the oldest), not {score:g}")
        run, removed = leaderboard.remove_score(_project(), run_id, int(score))
        click.echo(f"{run}: removed LB {removed['score']:g} of {removed.get('time', '?')}")
        return
    scores = leaderboard.record_score(_project(), run_id, score, note, force)
    earlier = ", ".join(f"{entry['score']:g}" for entry in scores.history[:-1])
    previous = f" (before: {earlier})" if earlier else ""
    click.echo(f"{scores.run}: LB {score:g}{previous}")


def _print_fetched(fetched) -> None:
    for run, sub in fetched.stored:
        private = f", private {sub.private:g}" if sub.private is not None else ""
        click.echo(f"{run}: LB {sub.public:g}{private} ({sub.date}, {sub.description!r})")
    click.echo(f"{len(fetched.stored)} scores stored, {fetched.known} already there, {len(fetched.pending)} pending")
    for sub in fetched.unmatched:
        click.echo(f"unmatched: {sub.date} {sub.file} {sub.description!r} public {sub.public}")


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option("-m", "--message", help="The submission message (default: the run and its metric).")
@click.option("--dry-run", is_flag=True, help="Print the kaggle command instead of running it.")
def submit(run_id: str, message: str | None, dry_run: bool) -> None:
    """Submit a run's submission.csv with the official kaggle client.

    \b
    Example:
      kagexp submit exp003/run002 --dry-run
    """
    import shlex

    from kagexp.leaderboard import submission
    from kagexp.leaderboard import submit as send

    sub = submission(_project(), run_id, message)
    if dry_run:
        click.echo(shlex.join(sub.command))
        return
    sys.exit(send(sub))


# --- ship to Kaggle: pack, rehearse, push (kagexp.pack, kagexp.rehearse, kagexp.push) ----------------


@cli.command()
@click.argument("run_ids", nargs=-1, required=True, metavar="EXP/RUN...")
@click.option("-o", "--out", type=click.Path(path_type=Path), help="The pack folder (default: data/output/packs/SLUG).")
@click.option("--dataset", metavar="OWNER/SLUG", help="The Kaggle dataset id (default: kaggle.dataset in kagexp.yml).")
@click.option("--artifacts", multiple=True, metavar="GLOB", help="Only the saved files that match (default: all).")
@click.option("--wheels", multiple=True, metavar="REQ", help="Also a wheel of this requirement, via pip download.")
@click.option("--upload", is_flag=True, help="Then upload it: kaggle datasets create (or version).")
def pack(run_ids, out, dataset, artifacts, wheels, upload: bool) -> None:
    """Pack done runs as a Kaggle dataset, with an offline inference kernel in kernel/.

    A blend (blend/NAME) is packed with its members; the kernel combines their submissions.

    \b
    Example:
      kagexp pack exp003/run002 --dataset alice/titanic-exp003 --wheels lightgbm==4.5.0
      kagexp pack blend/blend001 --dataset alice/titanic-blend
    """
    from kagexp.diskuse import human
    from kagexp.pack import pack as make_pack

    packed = make_pack(_project(), list(run_ids), out, dataset, list(artifacts), list(wheels))
    click.echo(f"packed {', '.join(packed.runs)} into {packed.path} ({human(packed.size)})")
    if upload:
        from kagexp.push import upload_dataset

        sys.exit(upload_dataset(packed.path))


@cli.command()
@click.argument("pack_dir", type=click.Path(path_type=Path), metavar="DIR")
@click.option("--limit", default="9h", show_default=True, help="Time limit, e.g. 9h, 30m, 90s.")
@click.option(
    "--scale",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="The hidden test set is this many times larger: the time is projected.",
)
@click.option("--allow-network", is_flag=True, help="Run without the network guard where unshare -n is not allowed.")
def rehearse(pack_dir: Path, limit: str, scale: float, allow_network: bool) -> None:
    """Run a pack's kernel here as Kaggle would: offline, read-only input, fresh venv, time limit.

    \b
    Example:
      kagexp rehearse data/output/packs/titanic-exp003 --scale 10
    """
    from kagexp.rehearse import rehearse as run_rehearsal

    done = run_rehearsal(_project(), pack_dir, limit, scale, allow_network)
    for line in done.lines():
        click.echo(line)
    if not done.ok:
        sys.exit(1)


@cli.command(name="push-kernel")
@click.argument("pack_dir", type=click.Path(path_type=Path), metavar="DIR")
def push_kernel(pack_dir: Path) -> None:
    """Push a pack's inference kernel with kaggle kernels push -p DIR/kernel.

    \b
    Example:
      kagexp push-kernel data/output/packs/titanic-exp003
    """
    from kagexp.push import push_kernel as push

    sys.exit(push(pack_dir))


# --- disk use, the trash and retention ------------------------------------------------------


def _print_sizes(columns: list[str], rows: list[list], fmt: str) -> None:
    """Sizes (the last column) read as `1.5 GB` in tables, and as bytes in csv and json."""
    from kagexp.diskuse import human

    if fmt in ("table", "md"):
        rows = [[*row[:-1], human(row[-1])] for row in rows]
    _print_table(columns, rows, fmt)


@cli.command()
@click.argument("exp", required=False)
@click.option("--format", "fmt", type=FORMATS, default="table", help="Output format (sizes in bytes in csv, json).")
def du(exp: str | None, fmt: str) -> None:
    """Disk space of each experiment's outputs, or of each run of EXP; biggest first.

    \b
    Example:
      kagexp du
      kagexp du exp003
    """
    from kagexp import diskuse, trash

    project = _project()
    columns, rows = diskuse.runs(project, exp) if exp else diskuse.experiments(project)
    _print_sizes(columns, rows, fmt)
    if fmt == "table" and not exp:
        total, trashed = sum(row[-1] for row in rows), trash.size(project)
        click.echo(f"total {diskuse.human(total)}; trash {diskuse.human(trashed)} (kagexp trash list)")


@cli.command()
@click.argument("targets", nargs=-1, required=True, metavar="EXP|EXP/RUN...")
def rm(targets: tuple[str, ...]) -> None:
    """Move runs, or all of an experiment's outputs, to the trash (data/output/.trash); nothing is deleted.

    An experiment's code folder exp/EXP stays. `kagexp restore` brings them back.

    \b
    Example:
      kagexp rm exp003/run002 exp003/run005
      kagexp rm exp004
    """
    from kagexp import trash
    from kagexp.diskuse import human

    project = _project()
    entry = trash.remove(project, list(targets))
    for item in entry.items:
        click.echo(f"moved {trash.label(project, item)} ({human(item.size)}) to the trash")
    click.echo(f"trash entry {entry.id}; undo: kagexp restore {entry.id}")


@cli.command()
@click.argument("what", required=False, metavar="[ID|EXP|EXP/RUN]")
def restore(what: str | None) -> None:
    """Bring back from the trash: the newest entry, an entry by ID, or an experiment or a run.

    Refuses to overwrite anything that is there again (nothing is restored then).

    \b
    Example:
      kagexp restore
      kagexp restore exp003/run002
    """
    from kagexp import trash

    project = _project()
    restored = trash.restore(project, what)
    for item in restored.items:
        click.echo(f"restored {trash.label(project, item)}")
    if restored.left:
        click.echo(f"trash entry {restored.entry.id} still holds {restored.left} item(s)")


@cli.command()
@click.argument("exps", nargs=-1)
@click.option("--keep", default="best:3,submitted,lb", show_default=True, help="Runs kept whole.")
@click.option("--larger-than", metavar="SIZE", help="Only files larger than this, e.g. 50MB.")
@click.option("--dry-run", is_flag=True, help="List what would move, move nothing.")
@click.option("--format", "fmt", type=FORMATS, default="table", help="Output format of the file list.")
def gc(exps: tuple[str, ...], keep: str, larger_than: str | None, dry_run: bool, fmt: str) -> None:
    """Move the heavy files (models, predictions…) of runs not worth keeping to the trash.

    Kept whole: the --keep runs, runs used by a blend or a pack, running runs. The others keep
    their records (meta, config, metrics, logs), so they are still listed and can be re-run.

    \b
    Example:
      kagexp gc --keep best:3,submitted,lb --larger-than 50MB --dry-run
      kagexp gc exp003 exp004 --keep best:1
    """
    from kagexp import retention
    from kagexp.diskuse import human, parse_size

    project = _project()
    size = parse_size(larger_than) if larger_than else 0
    planned = retention.plan(project, retention.Keep.parse(keep), list(exps) or None, size)
    entry = None if dry_run else retention.collect(project, planned)
    if planned.files:
        _print_sizes(*planned.rows(), fmt)
    moved = f"{len(planned.files)} file(s), {human(planned.size)}"
    kept = f"{len(planned.kept)} run(s) kept whole"
    if entry is None:
        click.echo(f"gc would move {moved}; {kept}" if dry_run else f"gc: nothing to move; {kept}", err=True)
        return
    click.echo(f"gc moved {moved} to trash entry {entry.id}; {kept}; undo: kagexp restore {entry.id}", err=True)


@cli.group(name="trash")
def trash_() -> None:
    """The trash (data/output/.trash): list its entries, or empty it for good.

    \b
    Example:
      kagexp trash list
      kagexp trash empty --yes
    """


@trash_.command(name="list")
@click.option("--format", "fmt", type=FORMATS, default="table", help="Output format (sizes in bytes in csv, json).")
def trash_list(fmt: str) -> None:
    """Each trash entry: its id, when, the command that made it, what it holds and its size.

    \b
    Example:
      kagexp trash list
    """
    from kagexp import trash

    rows = [
        [e.id, e.created[:19].replace("T", " "), e.command, len(e.items), e.size] for e in trash.entries(_project())
    ]
    if not rows and fmt == "table":
        click.echo("the trash is empty", err=True)
        return
    _print_sizes(["id", "made", "command", "items", "size"], rows, fmt)


@trash_.command(name="empty")
@click.option("--yes", "-y", is_flag=True, help="Do not ask (for scripts).")
def trash_empty(yes: bool) -> None:
    """Delete everything in the trash, for good, after asking.

    \b
    Example:
      kagexp trash empty --yes
    """
    from kagexp import trash
    from kagexp.diskuse import human
    from kagexp.errors import UsageError

    project = _project()
    listed = trash.entries(project)
    if not listed:
        click.echo("the trash is empty", err=True)
        return
    size = human(sum(entry.size for entry in listed))
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"the trash holds {size}; deleting it for good takes --yes when no one is asked")
        click.confirm(f"Delete {len(listed)} trash entries ({size}) for good?", abort=True)
    emptied = trash.empty(project, [entry.id for entry in listed])
    click.echo(f"deleted {emptied.entries} trash entries ({human(emptied.size)})")


# --- blends (kagexp.blend) ---------------------------------------------------------------


@cli.command(name="blend")
@click.argument("runs", nargs=-1, required=True, metavar="RUN RUN...")
@click.option("--method", type=click.Choice(["mean", "rank", "hill", "ridge"]), default="mean", show_default=True)
@click.option("--metric", metavar="NAME", help="auc, logloss, rmse, mae, accuracy, f1 or pkg.module:function.")
@click.option("-o", "--output", "name", metavar="NAME", help="The blend's name (default: the next blendNNN).")
def blend_(runs: tuple[str, ...], method: str, metric: str | None, name: str | None) -> None:
    """Blend runs' out-of-fold predictions made on the same rows and folds; save it as a run.

    \b
    Example:
      kagexp blend exp001/run002 exp002/run001 --method hill -o lr_gbm
    """
    from kagexp.blend import blend

    made = blend(_project(), list(runs), method, metric, name)
    click.echo("\n".join(made.lines()))


@cli.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="HTML file (default: data/output/dashboard.html).",
)
@_bulk_read
def dashboard(output: Path | None) -> None:
    """Write one self-contained HTML page of every run: table, experiment tree, run details, plots.

    It needs no server and no network (open it from file://, even offline).

    \b
    Example:
      kagexp dashboard && xdg-open data/output/dashboard.html
      kagexp dashboard -o /tmp/comp.html
    """
    from kagexp.dashboard import write_dashboard

    project = _project()
    path = write_dashboard(project, output)
    click.echo(f"wrote {output if output is not None else path.relative_to(project.root)}")


def main() -> None:
    cli.main(prog_name="kagexp")
