"""Templates are code until trusted, and nothing they render lands outside the destination.

Every template here is a real malicious one, built in tmp_path; copier and cookiecutter render them
for real. Each refusal is one line, and leaves no file behind, not even where the attack aimed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers import build_tree, make_project, snapshot_tree, subprocess_env

from kagexp.errors import TemplateError, UntrustedTemplateError
from kagexp.project import load_project
from kagexp.scaffold import init_project, new_experiment
from kagexp.scaffold.confine import confined

FIXTURES = Path(__file__).parent / "fixtures"
SANDBOX_ESCAPE = '{{ cycler.__init__.__globals__.os.system("touch PWNED") }}'


@pytest.fixture(autouse=True)
def fake_home(tmp_path, monkeypatch):
    """copier and cookiecutter read and write under the home folder; keep them in the test's."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.chdir(tmp_path)  # where a relative `touch PWNED` would land
    return home


def cookiecutter(root: Path, files: dict, **context: str) -> Path:
    """A cookiecutter template whose project folder is `{{cookiecutter.slug}}/` holding `files`."""
    import json

    build_tree(root, {"cookiecutter.json": json.dumps({"slug": "proj", **context}), "{{cookiecutter.slug}}": files})
    return root


def copier_template(root: Path, files: dict, questions: str = "") -> Path:
    build_tree(root, {"copier.yml": "_subdirectory: template\n" + questions, "template": files})
    return root


def everything(tmp_path: Path) -> set[str]:
    """Every file under tmp_path, but the templates' own and the fake home's."""
    return {p for p in snapshot_tree(tmp_path) if not p.startswith(("tpl", "home/"))}


# --- cookiecutter templates are code ------------------------------------------------------------


def test_every_cookiecutter_template_needs_trust(tmp_path):
    plain = FIXTURES / "cookiecutter-exp"
    evil_jinja = cookiecutter(tmp_path / "tpl-jinja", {"README.md": SANDBOX_ESCAPE})
    evil_extension = cookiecutter(tmp_path / "tpl-ext", {"README.md": "hi"}, _extensions=["evilext.Evil"])
    build_tree(
        evil_extension,
        {"evilext.py": "open('PWNED', 'w').close()\nfrom jinja2.ext import Extension\nclass Evil(Extension): pass\n"},
    )
    for template in (plain, evil_jinja, evil_extension):
        with pytest.raises(UntrustedTemplateError, match=r"runs code \(cookiecutter renders without a sandbox") as info:
            init_project(tmp_path / "p", template=template)
        assert "\n" not in str(info.value) and "pass --trust" in str(info.value)
    root = make_project(tmp_path / "proj")
    before = snapshot_tree(root)
    with pytest.raises(UntrustedTemplateError):
        new_experiment(load_project(root), template=evil_jinja)
    assert snapshot_tree(root) == before
    assert not (tmp_path / "p").exists() and not (tmp_path / "PWNED").exists()


def test_the_cli_refuses_a_cookiecutter_template_in_one_line(tmp_path):
    template = cookiecutter(tmp_path / "tpl", {"README.md": SANDBOX_ESCAPE})
    done = subprocess.run(
        [sys.executable, "-m", "kagexp", "init", "p", "--template", str(template)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"kagexp: error: the template {template} runs code") and done.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "tpl"]


# --- rendered paths stay inside the destination ----------------------------------------------


@pytest.mark.parametrize(
    "files, context",
    [
        ({"{{cookiecutter.f}}.txt": "x"}, {"f": "../../../../escape_cc"}),
        ({"{{cookiecutter.d}}": {"x.txt": "x"}}, {"d": "../../../../escape_dir"}),
        ({"{{cookiecutter.f}}.txt": "x"}, {"f": "/ABS/escape_abs"}),
    ],
    ids=["file", "folder", "absolute"],
)
def test_a_trusted_cookiecutter_template_may_not_write_outside(tmp_path, files, context):
    context = {key: value.replace("/ABS", str(tmp_path)) for key, value in context.items()}
    template = cookiecutter(tmp_path / "tpl", files, **context)
    dest = tmp_path / "a" / "b" / "p"

    with pytest.raises(TemplateError, match="writes .*escape.*, outside the folder it renders into") as info:
        init_project(dest, template=template, trust=True)

    assert "\n" not in str(info.value)
    assert everything(tmp_path) == set()  # no project, no temporary folder, no escaped file


def test_an_answer_may_not_move_the_project_outside(tmp_path):
    """An honest template, a hostile answer: the project folder's own name climbs out."""
    template = cookiecutter(tmp_path / "tpl", {"README.md": "# {{ cookiecutter.slug }}\n"})
    with pytest.raises(TemplateError, match="outside the folder it renders into"):
        init_project(tmp_path / "p", template=template, trust=True, data={"slug": "../../../../escape_slug"})
    assert everything(tmp_path) == set()


@pytest.mark.parametrize(
    "files, questions",
    [
        ({"{{f}}.txt.jinja": "x"}, "f:\n  default: ../../../../escape_cp\n"),
        ({"{{d}}": {"x.txt": "x"}}, "d:\n  default: ../../../../escape_dir\n"),
        ({"{{f}}.txt": "x"}, "f:\n  default: /ABS/escape_abs\n"),
    ],
    ids=["file", "folder", "absolute"],
)
def test_a_copier_template_may_not_write_outside(tmp_path, files, questions):
    template = copier_template(tmp_path / "tpl", files, questions.replace("/ABS", str(tmp_path)))
    with pytest.raises(TemplateError, match="outside the folder it renders into") as info:
        init_project(tmp_path / "p", template=template, trust=True)
    assert "\n" not in str(info.value)
    assert everything(tmp_path) == set()


@pytest.mark.parametrize(
    "files",
    [
        {"README.md.jinja": SANDBOX_ESCAPE},
        {"{{ ''.__class__.__mro__[1].__subclasses__() }}.txt": "x"},
        {"a.txt.jinja": '{{ lipsum.__globals__.os.popen("touch PWNED").read() }}'},
    ],
    ids=["content", "file-name", "globals"],
)
def test_copier_sandbox_refusals_are_one_line(tmp_path, files):
    template = copier_template(tmp_path / "tpl", files)
    with pytest.raises(TemplateError, match="does what copier's sandbox forbids .*unsafe") as info:
        init_project(tmp_path / "p", template=template, trust=True)
    assert "\n" not in str(info.value)
    assert everything(tmp_path) == set()  # no PWNED either


def test_confinement_is_per_thread_and_ends_with_the_render(tmp_path):
    inside, outside = tmp_path / "in", tmp_path / "out.txt"
    inside.mkdir()
    other: list = []
    with pytest.raises(TemplateError, match=f"writes {outside}, outside"), confined("t", inside):
        (inside / "ok.txt").write_text("fine")
        (inside / "ok.txt").read_text()
        worker = threading.Thread(target=lambda: other.append(Path(tmp_path / "thread.txt").write_text("x")))
        worker.start()
        worker.join()
        try:
            outside.write_text("no")
        except PermissionError:
            pass  # an engine that swallows the refusal is caught all the same
    assert not outside.exists() and (tmp_path / "thread.txt").exists() and (inside / "ok.txt").exists()
    outside.write_text("after the render, anything goes")
    os.remove(outside)
