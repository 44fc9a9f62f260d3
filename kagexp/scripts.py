"""An experiment's exp.py as a module: what Slurm jobs, `kagexp rerun` and `kagexp doctor` import.

exp.py ends in `if __name__ == "__main__": kagexp.main(run, RUNS)`; imported under `MODULE`, its
top level runs (imports, RUNS, the run function) and that line does not.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

MODULE = "__kagexp_exp__"  # the name exp.py is imported under: not `__main__`


def import_script(path: Path) -> types.ModuleType:
    """exp.py as a module named `MODULE`: its top level runs, its `if __name__ == "__main__":` does not."""
    spec = importlib.util.spec_from_file_location(MODULE, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE] = module  # before it runs: dataclasses and pickling look their module up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[MODULE]
        raise
    return module
