"""kagexp.grid and kagexp.zipped: override strings built from dotted keys, run for real."""

import json

import pytest
import yaml
from helpers import make_project, out_dir, run_exp

import kagexp
from kagexp.errors import ConfigError


def test_grid_crosses_values_with_the_last_key_fastest():
    runs = kagexp.grid({"model.params.max_depth": [1, 2], "lr": [1e-3, 1e-2]})
    assert [yaml.safe_load(r) for r in runs] == [
        {"model": {"params": {"max_depth": 1}}, "lr": 0.001},
        {"model": {"params": {"max_depth": 1}}, "lr": 0.01},
        {"model": {"params": {"max_depth": 2}}, "lr": 0.001},
        {"model": {"params": {"max_depth": 2}}, "lr": 0.01},
    ]


def test_zipped_pairs_values_and_wants_equal_lengths():
    runs = kagexp.zipped({"model.params.max_depth": [1, 2], "model.name": ["a", "b"]})
    assert [yaml.safe_load(r) for r in runs] == [
        {"model": {"params": {"max_depth": 1}, "name": "a"}},
        {"model": {"params": {"max_depth": 2}, "name": "b"}},
    ]
    with pytest.raises(ConfigError, match=r"as many values as the others \(a: 2, b: 1\)"):
        kagexp.zipped({"a": [1, 2], "b": [1]})


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        ({}, "takes a dict of dotted keys"),
        ({"lr": 0.1}, "`lr` needs a non-empty list of values"),
        ({"lr": []}, "`lr` needs a non-empty list of values"),
        ({"model..lr": [1]}, "'model..lr' is not a dotted key"),
        ({"model": [1], "model.lr": [2]}, "`model.lr` goes inside `model`, which has a value"),
        ({"model.lr": [1], "model": [2]}, "`model` has a value and keys inside it"),
    ],
)
def test_grid_mistakes_are_one_clear_error(axes, message):
    with pytest.raises(ConfigError, match=message):
        kagexp.grid(axes)


def test_a_grid_added_to_hand_written_runs_runs_for_real(tmp_path):
    runs = '["dataset:\\n  batch_size: 20\\n"] + kagexp.grid({"model.params.max_depth": [2, 3], "lr": [1e-2]})'
    root = make_project(tmp_path, runs=runs)
    done = run_exp(root)
    assert done.returncode == 0, done.stderr
    merged = [yaml.safe_load((out_dir(root) / f"run00{i}" / "config.yml").read_text()) for i in (1, 2, 3)]
    assert [(m["dataset"]["batch_size"], m["model"]["params"]["max_depth"], m["lr"]) for m in merged] == [
        (20, 1, 0.001),
        (10, 2, 0.01),
        (10, 3, 0.01),
    ]
    assert json.loads((out_dir(root) / "run003" / "metrics.json").read_text())["cv"] == 0.3
