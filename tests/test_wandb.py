"""wandb, for real and offline: no network, no key, every file of wandb's inside tmp_path.

What a run sent is read back from the offline run's `run-<id>.wandb` file: a LevelDB-style log
of wandb's protobuf records (wandb 0.31 reads it in Go only, so the reader is here)."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import depth_runs, make_project, meta, out_dir

SETTINGS = """\
name: test
wandb:
  enabled: true
  project: kagexp-tests
  mode: offline
  tags: [baseline, trees]
"""

BODY = """\
for epoch in range(3):
    ctx.log({"loss": 1.0 / (epoch + 1)}, step=epoch)
ctx.log({"cv": cfg.model.params.max_depth / 10})
if ctx.name == "run002":
    raise ValueError("depth two is cursed")
"""


@pytest.fixture
def wandb_env(tmp_path):
    """wandb's own folders in tmp_path, silent; WANDB_DIR is left for each test to choose."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k != "NO_COLOR"}
    env.update(
        WANDB_CACHE_DIR=str(tmp_path / "wandb-cache"),
        WANDB_CONFIG_DIR=str(tmp_path / "wandb-config"),
        WANDB_DATA_DIR=str(tmp_path / "wandb-data"),
        WANDB_SILENT="true",
    )
    return env


def run_exp(root: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "exp/exp001/exp.py", *args], cwd=root, capture_output=True, text=True, env=env, timeout=120
    )


def test_each_run_is_one_offline_wandb_run(tmp_path, wandb_env):
    root = make_project(tmp_path / "project", body=BODY, settings=SETTINGS, runs=depth_runs(1, 2))
    (root / "exp/exp001/lineage.yml").write_text("parent: null\nnote: 'hypothesis: depth helps'\n")
    done = run_exp(root, wandb_env)
    assert done.returncode == 1, done.stderr
    ids = set()
    for run, exit_code in (("run001", 0), ("run002", 1)):
        info = meta(root, run)["wandb"]
        assert info["mode"] == "offline" and info["url"] is None and info["project"] == "kagexp-tests"
        offline = Path(info["dir"])
        assert offline.parent == out_dir(root) / run / "wandb" and offline.name.endswith(info["id"])
        records = read_records(offline / f"run-{info['id']}.wandb")
        first = records["run"][0].run
        assert (first.run_id, first.display_name, first.run_group) == (info["id"], f"exp001/{run}", "exp001")
        assert (first.project, first.job_type, list(first.tags)) == ("kagexp-tests", "train", ["baseline", "trees"])
        assert first.notes == "hypothesis: depth helps"
        config = items(first.config.update)
        assert config["model"]["params"]["max_depth"] == int(run[-1]) and config["lr"] == 0.001
        history = [items(r.history.item) for r in records["history"]]
        assert [(h["_step"], h["loss"]) for h in history[:3]] == [(0, 1.0), (1, 0.5), (2, 1 / 3)]
        assert history[-1]["cv"] == int(run[-1]) / 10
        assert records["exit"][-1].exit.exit_code == exit_code
        ids.add(info["id"])
    assert len(ids) == 2
    assert meta(root, "run002")["status"] == "failed"


def test_wandb_runs_in_parallel_workers_and_honours_wandb_dir(tmp_path, wandb_env):
    settings = SETTINGS.replace("  mode: offline\n", "")  # offline through the environment this time
    root = make_project(tmp_path / "project", body='ctx.log({"cv": 0.5})\n', settings=settings)
    env = {**wandb_env, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "wandb-dir")}
    done = run_exp(root, env, "--jobs", "2")
    assert done.returncode == 0, done.stderr
    infos = [meta(root, run)["wandb"] for run in ("run001", "run002", "run003")]
    assert len({info["id"] for info in infos}) == 3
    for info in infos:
        assert info["mode"] == "offline" and Path(info["dir"]).parent == tmp_path / "wandb-dir" / "wandb"
        history = read_records(Path(info["dir"]) / f"run-{info['id']}.wandb")["history"]
        assert [items(r.history.item).get("cv") for r in history] == [0.5]
    assert not (out_dir(root) / "run001" / "wandb").exists()


def test_a_tracker_that_breaks_is_switched_off_and_the_run_goes_on(tmp_path, wandb_env):
    body = """\
import wandb
ctx.log({"before": 1})
wandb.run.finish()  # wandb.run is the kagexp run's W&B run; later logging to it fails
ctx.log({"after": 2})
print("still running")
"""
    root = make_project(tmp_path / "project", runs=[""], body=body, settings=SETTINGS)
    done = run_exp(root, wandb_env)
    assert done.returncode == 0, done.stderr
    info = meta(root, "run001")
    assert info["status"] == "done" and "is finished" in info["wandb"]["error"]
    assert json.loads((out_dir(root) / "run001" / "metrics.json").read_text()) == {"before": 1, "after": 2}
    log = (out_dir(root) / "run001" / "log.txt").read_text()
    # two pipes feed log.txt: kagexp's warning (stderr) may land inside the run's line (stdout)
    assert "kagexp: wandb failed (UsageError: Run" in log and "still running" in log
    assert "switched off for this run, whose own files go on" in done.stderr


def test_wandb_off_is_never_imported_and_a_run_may_turn_it_on(tmp_path, wandb_env):
    body = 'ctx.log({"wandb_imported": "wandb" in sys.modules})\n'
    runs = ["", "+wandb: {enabled: true, mode: offline}\n"]
    root = make_project(tmp_path / "project", runs=runs, body=body)
    done = run_exp(root, wandb_env)
    assert done.returncode == 0, done.stderr
    first = json.loads((out_dir(root) / "run001" / "metrics.json").read_text())
    assert first == {"wandb_imported": False} and "wandb" not in meta(root, "run001")
    assert meta(root, "run002")["wandb"]["mode"] == "offline"
    forked = run_exp(root, wandb_env, "--jobs", "2", "--force", "--only", "1")
    assert forked.returncode == 0, forked.stderr
    assert json.loads((out_dir(root) / "run001" / "metrics.json").read_text()) == {"wandb_imported": False}
    wrong = make_project(tmp_path / "wrong", runs=["+wandb: {projcet: x}\n"])
    bad = run_exp(wrong, wandb_env)
    assert bad.returncode == 2 and "config key `wandb.projcet` is not a wandb setting" in bad.stderr


# --- reading an offline run's .wandb file ----------------------------------------------------


def read_records(path: Path) -> dict[str, list]:
    """wandb's records in `path`, by kind (`run`, `history`, `exit`, …)."""
    from wandb.proto import wandb_internal_pb2

    records: dict[str, list] = {}
    for data in _log_records(path.read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        records.setdefault(record.WhichOneof("record_type"), []).append(record)
    return records


def items(entries) -> dict:
    """wandb's key/value items (config, history) as a dict; keys are in `key` or `nested_key`."""
    return {entry.key or ".".join(entry.nested_key): json.loads(entry.value_json) for entry in entries}


def _log_records(data: bytes, block: int = 32768):
    """A 7-byte file header (`:W&B`, magic 0xBEE1, version), then 32 KiB blocks of chunks, each
    with a 7-byte header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last)."""
    ident, magic, _version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic) == (b":W&B", 0xBEE1)
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        room = block - pos % block
        if room < 7:  # a block's tail too short for a header is padding
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            pos += room
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            yield pending
            pending = b""
