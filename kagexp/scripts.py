"""An experiment's exp.py as a module: what Slurm jobs, `kagexp rerun` and `kagexp doctor` import.

exp.py ends in `if __name__ == "__main__": kagexp.main(run, RUNS)`; imported under `MODULE`, its
top level runs (imports, RUNS, the run function) and that line does not.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def snapshot_imports(snapshot: Path) -> Iterator[None]:
    """The snapshot first on `sys.path`, its own modules imported from it (a module of the same name
    loaded before is set aside), and all of them forgotten afterwards, with `sys.path` as it was:
    two snapshots with a `model.py` each (a rerun, a blend's members) never see each other's."""
    saved_path = list(sys.path)
    own = {p.stem for p in snapshot.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()}
    shadowed = {name: sys.modules.pop(name) for name in list(sys.modules) if _top(name) in own}
    sys.path.insert(0, str(snapshot))
    try:
        yield
    finally:
        sys.path[:] = saved_path
        inside = str(snapshot) + os.sep
        for name, module in list(sys.modules.items()):
            if name == MODULE or _top(name) in own or str(getattr(module, "__file__", None)).startswith(inside):
                del sys.modules[name]
        sys.modules.update(shadowed)


def _top(name: str) -> str:
    return name.partition(".")[0]
