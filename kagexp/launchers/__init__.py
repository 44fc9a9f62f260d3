"""Launchers run a list of runs somewhere: in this process, in a pool, on a cluster."""

from __future__ import annotations

from typing import Protocol

from kagexp.errors import ConfigError
from kagexp.provenance import Provenance
from kagexp.run import RunFunction, RunResult, RunSpec


class Reporter(Protocol):
    def started(self, spec: RunSpec) -> None: ...

    def finished(self, spec: RunSpec, result: RunResult) -> None: ...


class Launcher(Protocol):
    def launch(
        self,
        *,
        fn: RunFunction,
        specs: list[RunSpec],
        provenance: Provenance,
        reporter: Reporter | None,
        fail_fast: bool = False,
        capture: bool = True,
    ) -> list[RunResult]: ...


def get_launcher(name: str) -> Launcher:
    if name == "inline":
        from kagexp.launchers.inline import InlineLauncher

        return InlineLauncher()
    raise ConfigError(f"unknown launcher {name!r}; available: inline")
