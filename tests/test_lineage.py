"""`kagexp tree` and `kagexp report --diary` on a real lineage made with `kagexp new`."""

import json

import pytest
from helpers import make_project, run_exp, run_kagexp

from kagexp import lineage
from kagexp.project import load_project

BODY = """\
time.sleep(0.05)
ctx.log({"cv": cfg.model.params.max_depth / 10 + float(open(Path(__file__).parent / "bonus.txt").read())})
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """exp001 (cv 0.1–0.2) → exp002 (+0.05) → exp004 (worse); exp001 → exp003 (never ran)."""
    root = make_project(tmp_path_factory.mktemp("lineage"), runs=[depth(1), depth(2)], body=BODY)
    (root / "exp/exp001/bonus.txt").write_text("0\n")
    assert run_exp(root).returncode == 0
    for name, source, note, bonus in (
        ("exp002", "exp001", "a bonus helps", "0.05"),
        ("exp003", "exp001", "idea for later", None),
        ("exp004", "exp002", "less bonus", "0.01"),
    ):
        made = run_kagexp(root, "new", name, "--from", source, "-m", note)
        assert made.returncode == 0, made.stderr
        if bonus:
            (root / "exp" / name / "bonus.txt").write_text(bonus + "\n")
            assert run_exp(root, exp=name).returncode == 0
    return root


def depth(d):
    return f"model:\n  params:\n    max_depth: {d}\n"


def test_tree_draws_the_lineage_with_best_delta_and_time(project):
    lines = run_kagexp(project, "tree").stdout.splitlines()
    assert lines[0].split() == ["exp", "best", "cv", "best", "run", "vs", "parent", "runs", "time", "note"]
    names = [line[: line.index("exp0") + 6] for line in lines[1:]]
    assert names == ["exp001", "├── exp002", "│   └── exp004", "└── exp003"]
    exp002 = lines[2].split()
    assert exp002[2:6] == ["0.25", "run002", "+0.05", "2"] and exp002[6].endswith("s")
    assert lines[2].endswith("a bonus helps")
    assert lines[3].split()[3:6] == ["0.21", "run002", "-0.04"]
    assert lines[4].split()[2:] == ["0", "idea", "for", "later"]


def test_tree_json_is_typed(project):
    rows = {row["exp"]: row for row in json.loads(run_kagexp(project, "tree", "--format", "json").stdout)}
    assert rows["exp001"]["parent"] is None and rows["exp004"]["parent"] == "exp002"
    assert rows["exp002"]["vs parent"] == pytest.approx(0.05) and rows["exp002"]["best cv"] == pytest.approx(0.25)
    assert rows["exp003"]["best cv"] is None and rows["exp003"]["runs"] == 0
    assert 0.1 <= rows["exp001"]["time"] < 30  # seconds: two runs of 0.05 s and more


def test_a_loop_written_by_hand_does_not_hang(project, tmp_path):
    root = make_project(tmp_path, runs=[depth(1)])
    (root / "exp/exp002").mkdir()
    (root / "exp/exp001/lineage.yml").write_text("parent: exp002\n")
    (root / "exp/exp002/lineage.yml").write_text("parent: exp001\n")
    lin = lineage.lineage(load_project(root))
    assert [(prefix + node.name) for node, prefix in lin.walk()] == ["exp001", "└── exp002"]


def test_diary_tells_the_story_from_the_run_folders(project):
    done = run_kagexp(project, "report", "--diary")
    assert done.returncode == 0 and done.stdout == "wrote DIARY.md\n", done.stderr
    text = (project / "DIARY.md").read_text()
    assert text.startswith("# test — diary\n")
    sections = text.split("\n## ")[1:]
    assert [s.split()[0] for s in sections] == ["exp001", "exp002", "exp004", "exp003"]  # as they ran
    exp002 = sections[1]
    assert "a bonus helps\n" in exp002
    assert "- base: exp001 (cv 0.2)\n" in exp002
    assert "- best: cv 0.25 (run002), +0.05 against exp001 (new best)\n" in exp002
    assert "- best so far: cv 0.25 (exp002/run002); time so far " in exp002
    exp004 = sections[2]
    assert "- base: exp002 (cv 0.25)\n" in exp004 and "(new best)" not in exp004
    assert "- best so far: cv 0.25 (exp002/run002)" in exp004
    assert "- runs: none yet\n" in sections[3] and "- best: no cv yet\n" in sections[3]


def test_elapsed_reads_like_a_person_would_write_it():
    assert [lineage.elapsed(s) for s in (4.24, 725, 11_220)] == ["4.2s", "12m 05s", "3h 07m"]
