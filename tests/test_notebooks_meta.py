"""Every notebook reads the same way: title, Colab badge, objectives and time on top; the Colab setup cell;
the profile cell; a summary and the papers at the end; no pip magics; small stored outputs. Not executed here."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))  # what learners open
SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("[0-9]*.ipynb"))  # the source
NOTEBOOKS = EXERCISES + SOLUTIONS
FIXTURE = ROOT / "tests" / "fixtures" / "98_exercise.ipynb"
MAX_BYTES = 300_000
GUARD = 'if "google.colab" in sys.modules:'
PIP_MAGIC = re.compile(r"^\s*[!%]\s*(pip|conda|mamba)\b|^\s*!.*\bpip\s+install\b", re.MULTILINE)


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f"course_tools_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


colab = _load_tool("colab")
each_notebook = pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(ROOT / "notebooks")) for p in NOTEBOOKS])


def _read(path: Path):
    return nbformat.read(path, as_version=4)


# ---------------------------------------------------------------- the real notebooks
@each_notebook
def test_first_cell_has_title_badge_objectives_and_time(path):
    nb = _read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown", f"{path.name}: the first cell must be Markdown"
    title = first.source.lstrip().splitlines()[0]
    assert re.match(rf"^# {path.name[:2]} · \S", title), f"{path.name}: title should read '# {path.name[:2]} · Title', got {title!r}"
    badge = colab.badge_line(colab.notebook_path(path))
    assert badge in first.source, f"{path.name}: missing or wrong Colab badge (python tools/colab.py --write)"
    assert re.search(r"what you will learn", first.source, re.IGNORECASE), f"{path.name}: add **What you will learn**"
    assert re.search(r"\*\*Time\*\*|^#+\s*Time\b", first.source, re.MULTILINE), f"{path.name}: add **Time** per profile"
    for profile in ("smoke", "quick", "full"):
        assert profile in first.source, f"{path.name}: the Time line should give the {profile} profile's time"


@each_notebook
def test_second_cell_is_the_colab_setup_cell(path):
    setup = _read(path).cells[1]
    assert setup.cell_type == "code" and GUARD in setup.source, f"{path.name}: cell 2 must be the Colab setup cell"
    assert colab.problems(path) == []


@each_notebook
def test_third_cell_picks_device_profile_and_seed(path):
    cell = _read(path).cells[2]
    assert cell.cell_type == "code"
    for call in ("get_device(", "get_profile(", "seed_everything(", "COURSE_PROFILE"):
        assert call in cell.source, f"{path.name}: the cell after the setup cell should contain {call}"


@each_notebook
def test_no_pip_magics_and_small_file(path):
    nb = _read(path)
    pips = [cell.source for cell in nb.cells if cell.cell_type == "code" and PIP_MAGIC.search(cell.source)]
    assert not pips, f"{path.name}: no !pip / %pip; the setup cell installs the course in Colab: {pips}"
    size = path.stat().st_size
    assert size < MAX_BYTES, f"{path.name} is {size / 1e3:.0f} KB: clear or shrink the stored outputs (< {MAX_BYTES // 1000} KB)"


@each_notebook
def test_ends_with_summary_and_further_reading(path):
    nb = _read(path)
    assert nb.cells[-1].cell_type == "markdown", f"{path.name}: end with the Summary / Further reading Markdown"
    last_code = max((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), default=-1)
    tail = "\n".join(cell.source for cell in nb.cells[last_code + 1:])
    assert re.search(r"summary", tail, re.IGNORECASE), f"{path.name}: the closing Markdown needs a Summary"
    assert re.search(r"further reading", tail, re.IGNORECASE), f"{path.name}: the closing Markdown needs Further reading"


@each_notebook
def test_python3_kernel_and_nbformat_4(path):
    nb = _read(path)
    assert nb.nbformat == 4 and nb.metadata.get("kernelspec", {}).get("name") == "python3"


def test_colab_check_passes_on_every_notebook():
    if not NOTEBOOKS:
        pytest.skip("no notebooks/*.ipynb yet")
    result = subprocess.run([sys.executable, "tools/colab.py", "--check"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- tools/colab.py itself
def test_setup_cell_does_nothing_outside_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(os, "chdir", lambda *a: calls.append(a))
    namespace = {}
    exec(colab.SETUP_CELL, namespace)
    assert calls == [] and "REPO_URL" not in namespace


def test_setup_cell_in_colab_clones_installs_puts_the_course_on_the_path_and_enters_notebooks(monkeypatch, tmp_path):
    """In Colab: clone once, install, make course_lib importable in this kernel, cd to notebooks/. The cell is
    run with Colab's /content replaced by tmp_path; running it again must not clone again or nest folders."""
    monkeypatch.setitem(sys.modules, "google.colab", object())
    monkeypatch.setattr(sys, "path", list(sys.path))
    repo = colab.REPO_URL.rsplit("/", 1)[-1]
    root = str(tmp_path / repo)
    cell = colab.SETUP_CELL.replace(f'"{colab.COLAB_ROOT}/{repo}"', repr(root))
    assert cell != colab.SETUP_CELL
    calls = []

    def run(cmd, **kwargs):
        calls.append(cmd)
        if cmd[:2] == ["git", "clone"]:
            os.makedirs(os.path.join(cmd[-1], "notebooks"))

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(os, "chdir", lambda where: calls.append(where))
    exec(cell, {})
    assert calls == [["git", "clone", "--depth", "1", colab.REPO_URL, root],
                     [sys.executable, "-m", "pip", "install", "-q", "-e", root], f"{root}/notebooks"]
    assert sys.path[0] == root  # the editable install alone would reach only new processes
    calls.clear()
    exec(cell, {})  # run twice: no second clone, the path added once
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", "-e", root], f"{root}/notebooks"]
    assert sys.path.count(root) == 1


def test_badge_links_to_the_same_notebook_in_the_repo():
    badge = colab.badge_line("02_diffusion.ipynb")
    github = colab.REPO_URL.removeprefix("https://github.com/")
    assert badge.endswith(f"(https://colab.research.google.com/github/{github}/blob/{colab.BRANCH}/notebooks/02_diffusion.ipynb)")


def test_each_edition_badge_opens_its_own_path():
    """A learner's badge opens the exercise edition; the solutions' badge opens the solutions."""
    exercise = ROOT / "notebooks" / "01_gan.ipynb"
    solution = ROOT / "notebooks" / "solutions" / "01_gan.ipynb"
    assert colab.notebook_path(exercise) == "01_gan.ipynb"
    assert colab.notebook_path(solution) == "solutions/01_gan.ipynb"
    assert "/blob/main/notebooks/solutions/01_gan.ipynb)" in colab.badge_line(colab.notebook_path(solution))


@pytest.fixture(scope="module")
def repaired(tmp_path_factory):
    """A notebook with a wrong badge and an old repository URL, checked then repaired once by tools/colab.py.

    Returns (the broken notebook, its path, problems found before, the --check run, the --write run)."""
    nb = _read(FIXTURE)
    nb.cells[0].source = nb.cells[0].source.replace("98_exercise", "01_gan")  # a badge copied from another notebook
    nb.cells.insert(1, nbformat.v4.new_code_cell(colab.SETUP_CELL.replace(colab.REPO_URL, "https://github.com/old/place")))
    path = tmp_path_factory.mktemp("colab_write") / FIXTURE.name
    nbformat.write(nb, path)
    tool = [sys.executable, str(ROOT / "tools" / "colab.py")]
    problems = colab.problems(path)
    checked = subprocess.run(tool + ["--check", str(path)], capture_output=True, text=True, timeout=60)
    written = subprocess.run(tool + ["--write", str(path)], capture_output=True, timeout=60)
    return nb, path, problems, checked, written


def test_check_finds_the_wrong_badge_and_the_old_setup_cell(repaired):
    _, _, problems, checked, _ = repaired
    assert len(problems) == 2
    assert checked.returncode == 1 and "Colab badge" in checked.stdout and "setup cell" in checked.stdout


def test_write_repairs_badge_and_repo_url_then_check_passes(repaired):
    _, path, _, _, written = repaired
    assert written.returncode == 0
    assert colab.problems(path) == []


def test_write_keeps_the_other_cells_and_drops_the_old_url(repaired):
    nb, path, _, _, _ = repaired
    fixed = _read(path)
    assert len(fixed.cells) == len(nb.cells) and fixed.cells[2].source == nb.cells[2].source
    assert "https://github.com/old/place" not in fixed.cells[1].source


def test_fix_leaves_a_repaired_notebook_byte_for_byte(repaired):
    path = repaired[1]
    before = path.read_bytes()
    assert colab.fix(path) is False and path.read_bytes() == before


def test_write_inserts_missing_badge_and_setup_cell(tmp_path):
    path = tmp_path / "05_new.ipynb"
    shutil.copy(FIXTURE, path)
    nb = _read(path)
    nb.cells[0].source = "# 05 · New chapter\n\nText."
    nbformat.write(nb, path)
    assert colab.fix(path) is True
    fixed = _read(path)
    assert fixed.cells[0].source.splitlines()[:2] == ["# 05 · New chapter", colab.badge_line("05_new.ipynb")]
    assert fixed.cells[1].source == colab.SETUP_CELL and len(fixed.cells) == len(nb.cells) + 1
