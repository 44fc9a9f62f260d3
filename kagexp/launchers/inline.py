"""Runs one after another in this process: the default, and the easiest to debug."""

from __future__ import annotations

from kagexp import run
from kagexp.provenance import Provenance
from kagexp.run import RunFunction, RunResult, RunSpec


class InlineLauncher:
    parallel = False

    def describe(self, specs: list[RunSpec]) -> str:
        return ""

    def launch(
        self,
        *,
        fn: RunFunction,
        specs: list[RunSpec],
        provenance: Provenance,
        reporter=None,
        fail_fast: bool = False,
        capture: bool = True,
    ) -> list[RunResult]:
        results = []
        for spec in specs:
            result = run.execute(fn, spec, provenance, capture, on_start=reporter.started if reporter else None)
            results.append(result)
            if reporter:
                reporter.finished(spec, result)
            if result.status == "interrupted":
                raise KeyboardInterrupt
            if fail_fast and result.status == "failed":
                break
        return results
