"""The `kagexp` command: parses arguments, calls the library, prints. No logic of its own.

Click, not Typer: Typer costs ~20 ms more at start-up and `kagexp --help` must stay under 100 ms.
"""

from __future__ import annotations

import sys
import traceback

import click

from kagexp import __version__
from kagexp.errors import KagexpError

EXIT_USAGE = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kagexp")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Kaggle-style experiments: one folder per experiment, one run per YAML override.

    Example: kagexp run exp001 --only run002
    """
    ctx.obj = {"debug": debug}


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("exp")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(exp: str, args: tuple[str, ...]) -> None:
    """Run an experiment: the same as `python exp/EXP/exp.py ARGS`.

    Example: kagexp run 1 --only run002 --force
    """
    from kagexp.experiment import run_script

    sys.exit(run_script(exp, list(args)))


def main() -> None:
    debug = "--debug" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
    except KagexpError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"kagexp: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except click.exceptions.Abort:
        click.echo("kagexp: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
