"""tools/student.py: student builds keep the hints, drop every solution, and leave a notebook that runs."""
from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "98_exercise.ipynb"
SOLUTIONS = ROOT / "notebooks" / "solutions"
NOTEBOOKS = sorted(SOLUTIONS.glob("[0-9]*.ipynb"))
CHECKED = NOTEBOOKS + [FIXTURE]  # the fixture meets the chapters' bar too, so these tests run before chapters exist
MIN_EXERCISES = 5  # issue 19: every chapter notebook (01 and up) has at least five exercises


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f"course_tools_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


student = _load_tool("student")


def _solution_lines(nb) -> set[str]:
    """Stripped lines inside solution blocks that occur in no code outside them (so their absence means something);
    a hint in markdown that quotes one is a leak."""
    inside, outside = set(), set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        blocks = student.solution_blocks(cell.source)
        in_block = {n for begin, end, _ in blocks for n in range(begin + 1, end)}
        for number, line in enumerate(cell.source.splitlines()):
            (inside if number in in_block else outside).add(line.strip())
    return {line for line in inside - outside if line and line not in {"return", "pass"}}


def _text(nb) -> str:
    return "\n".join(cell.source for cell in nb.cells)


def _python(source: str) -> str:
    """A cell's source as plain Python (IPython magics turned into calls), for ast.parse."""
    from IPython.core.inputtransformer2 import TransformerManager
    return TransformerManager().transform_cell(source)


def _is_stub(node) -> bool:
    """`raise NotImplementedError("Exercise ...")`, the line the build puts in place of a solution."""
    return (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
            and getattr(node.exc.func, "id", None) == "NotImplementedError"
            and str(getattr(node.exc.args[0], "value", "")).startswith("Exercise "))


def _stubs(text: str) -> int:
    return text.count(student.YOUR_CODE)


# ---------------------------------------------------------------- the transformation itself
def test_strip_keeps_hints_and_indentation_and_drops_the_solution():
    source = "def f(x):\n    # Hint: double it.\n    # BEGIN SOLUTION\n    y = 2 * x\n    return y\n    # END SOLUTION\n\ncheck(f)"
    stub = f"    {student.YOUR_CODE}\n    {student.stub('f')}"
    assert student.strip_solutions(source) == f"def f(x):\n    # Hint: double it.\n{stub}\n\ncheck(f)"


def test_strip_handles_nested_blocks_tabs_and_trailing_spaces():
    source = "for a in b:\n\tif a:\n\t\t# BEGIN SOLUTION  \n\t\tsecret()\n\t\t# END SOLUTION\n\tdone()\n"
    stub = f"\t\t{student.YOUR_CODE}\n\t\t{student.stub('of this cell')}"
    assert student.strip_solutions(source) == f"for a in b:\n\tif a:\n{stub}\n\tdone()\n"


def test_the_stub_names_the_function_it_stands_in():
    source = "def my_gram(x):\n    # Hint: one product.\n    # BEGIN SOLUTION\n    return x @ x\n    # END SOLUTION\n"
    namespace = {}
    exec(student.strip_solutions(source), namespace)  # defining the function does not raise; calling it does
    with pytest.raises(NotImplementedError, match="^Exercise my_gram: replace this line with your code"):
        namespace["my_gram"](1)


def test_markers_must_be_whole_lines():
    source = 'print("# BEGIN SOLUTION")\nx = 1  # END SOLUTION'
    assert student.strip_solutions(source) == source


@pytest.mark.parametrize("source, words", [
    ("# BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n# END SOLUTION", "without a '# BEGIN SOLUTION'"),
    ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION", "second '# BEGIN SOLUTION'"),
])
def test_unbalanced_markers_name_the_notebook_and_cell(source, words):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell(source)])
    with pytest.raises(student.MarkerError, match=re.escape(words)) as error:
        student.student_notebook(nb, name="notebooks/07_broken.ipynb")
    assert "notebooks/07_broken.ipynb, cell 2" in str(error.value)


@pytest.fixture(scope="module")
def fixture_build(tmp_path_factory):
    """The fixture notebook built once into an output folder that held a stale notebook: (source, written, built)."""
    folder = tmp_path_factory.mktemp("student_build")
    source = nbformat.read(FIXTURE, as_version=4)
    (folder / "src").mkdir()
    nbformat.write(source, folder / "src" / FIXTURE.name)
    (folder / "out").mkdir()
    (folder / "out" / "stale.ipynb").write_text("{}")
    written = student.build(folder / "src", folder / "out")
    return source, written, folder / "out"


def test_the_fixture_has_solution_lines_to_hide():
    assert {"doubled = x * 2", "energy = (row ** 2).sum()", "rows.append(energy)"} <= \
        _solution_lines(nbformat.read(FIXTURE, as_version=4))


def test_build_writes_each_notebook_and_removes_stale_ones(fixture_build):
    _, written, out = fixture_build
    assert [p.name for p in written] == [FIXTURE.name] and sorted(p.name for p in out.iterdir()) == [FIXTURE.name]


def test_build_writes_a_valid_notebook_without_solution_lines_or_markers(fixture_build):
    source, written, _ = fixture_build
    nb = nbformat.read(written[0], as_version=4)
    nbformat.validate(nb)
    text = _text(nb)
    assert not [line for line in _solution_lines(source) if line in text]
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text


def test_build_stubs_each_exercise_and_keeps_its_hints(fixture_build):
    text = _text(nbformat.read(fixture_build[1][0], as_version=4))
    assert _stubs(text) == 3
    assert "# Hint: one multiplication; do not change x in place." in text and "# Hint: square, then sum." in text


def test_build_clears_outputs_and_notebook_metadata_but_keeps_exercise_tags(fixture_build):
    nb = nbformat.read(fixture_build[1][0], as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert set(nb.metadata) <= {"kernelspec", "language_info"} and "kernelspec" in nb.metadata
    assert code[1].metadata == {"tags": ["exercise"]}


def test_build_keeps_markdown_cells_as_they_are(fixture_build):
    source, written, _ = fixture_build
    nb = nbformat.read(written[0], as_version=4)
    assert [cell.source for cell in nb.cells if cell.cell_type == "markdown"] == \
           [cell.source for cell in source.cells if cell.cell_type == "markdown"]


def test_cli_reports_marker_errors_and_keeps_the_previous_build(tmp_path):
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("def f():\n    # BEGIN SOLUTION\n    return 1")])
    (tmp_path / "src").mkdir()
    nbformat.write(bad, tmp_path / "src" / "05_bad.ipynb")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "01_old.ipynb").write_text("{}")
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "student.py"), "--src", str(tmp_path / "src"),
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "05_bad.ipynb, cell 1" in result.stderr and "never closed" in result.stderr
    assert (tmp_path / "out" / "01_old.ipynb").exists()


def test_stub_makes_the_check_explain_instead_of_crash(tmp_path, monkeypatch):
    """Run the student build of the fixture in a real kernel: the checks print 'not done yet', no error."""
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.delenv("COURSE_CHECKS_STRICT", raising=False)
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    nb = student.student_notebook(nbformat.read(FIXTURE, as_version=4))
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    printed = "".join(out.get("text", "") for out in outputs)
    assert printed.count("not done yet") == 3, printed
    assert "Exercise double: replace this line with your code" in printed and "correct" not in printed


# ---------------------------------------------------------------- the real notebooks (not executed here) and the fixture
@pytest.mark.parametrize("path", CHECKED, ids=[p.name for p in CHECKED])
def test_student_build_of_each_notebook_hides_every_solution(path):
    source = nbformat.read(path, as_version=4)
    nb = student.student_notebook(source, name=path.name)
    text = _text(nb)
    leaked = [line for line in _solution_lines(source) if line in text]
    assert not leaked, f"{path.name}: solution lines survive in the student build: {leaked}"
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    blocks = sum(len(student.solution_blocks(c.source)) for c in source.cells if c.cell_type == "code")
    assert _stubs(text) == blocks
    if path.name.startswith("00"):
        assert blocks == 0, f"{path.name} is the setup notebook and should hold no exercise"
    elif path.parent == SOLUTIONS:
        assert blocks >= MIN_EXERCISES, f"{path.name}: {blocks} exercise(s); every chapter needs >= {MIN_EXERCISES}"


@pytest.mark.parametrize("path", CHECKED, ids=[p.name for p in CHECKED])
def test_each_stub_sits_in_a_function_with_a_hint_and_a_check(path):
    """So that the student build runs: the stub raises only when the check calls the student's function."""
    source = nbformat.read(path, as_version=4)
    cells = [c for c in source.cells if c.cell_type == "code"]
    for index, cell in enumerate(cells):
        blocks = student.solution_blocks(cell.source)
        if not blocks:
            continue
        lines = cell.source.splitlines()
        for begin, _, _ in blocks:
            above = [line.strip() for line in lines[:begin] if line.strip()]
            assert above and (above[-1].startswith("#") or above[-1].endswith('"""')), \
                f"{path.name}: put a hint comment right above line {begin + 1}'s '# BEGIN SOLUTION':\n{cell.source}"
        tree = ast.parse(_python(student.strip_solutions(cell.source)))
        functions = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
        stubs_in_functions = {id(node) for fn in functions for node in ast.walk(fn) if _is_stub(node)}
        assert len(stubs_in_functions) == len(blocks), \
            f"{path.name}: a solution block is not inside a function, so the student build would crash:\n{cell.source}"
        following = cell.source + "\n" + (cells[index + 1].source if index + 1 < len(cells) else "")
        assert re.search(r"\bcheck(s\.check_\w+|s\.compare)\(", following), \
            f"{path.name}: an exercise must be followed by its checks.check_<name>(fn) call:\n{cell.source}"


HINT_1 = "**Hint 1.**"  # points the way, in the markdown cell above the exercise
HINT_2 = re.compile(r"<details>\s*<summary>.*Hint 2.*</summary>.*?</details>", re.S)  # folded: nearly the answer


@pytest.mark.parametrize("path", CHECKED, ids=[p.name for p in CHECKED])
def test_each_exercise_has_two_hints_the_second_folded_away(path):
    """The markdown cell above an exercise gives a first hint that points the way, and a second inside <details>."""
    source = nbformat.read(path, as_version=4)
    last_markdown = ""
    for cell in source.cells:
        if cell.cell_type == "markdown":
            last_markdown = cell.source
            continue
        blocks = len(student.solution_blocks(cell.source))
        if not blocks:
            continue
        first, second = last_markdown.count(HINT_1), len(HINT_2.findall(last_markdown))
        assert first >= blocks and second >= blocks, (
            f"{path.name}: the markdown above this exercise needs '{HINT_1} ...' and a "
            f"'<details><summary>Hint 2 ...</summary> ... </details>' for each of its {blocks} exercise(s) "
            f"(found {first} and {second}):\n{cell.source[:300]}")


# ---------------------------------------------------------------- the committed exercise edition
def test_the_exercise_edition_is_the_build_of_the_solutions():
    """notebooks/*.ipynb must be exactly what `make student` writes from notebooks/solutions/."""
    problems = student.stale(SOLUTIONS, ROOT / "notebooks")
    assert not problems, "run `make student` and commit notebooks/*.ipynb:\n" + "\n".join(problems)


def test_check_mode_reports_drift_without_writing(tmp_path):
    (tmp_path / "src").mkdir()
    nbformat.write(nbformat.read(FIXTURE, as_version=4), tmp_path / "src" / FIXTURE.name)
    student.build(tmp_path / "src", tmp_path / "out")
    tool = [sys.executable, str(ROOT / "tools" / "student.py"), "--src", str(tmp_path / "src"), "--out", str(tmp_path / "out")]
    assert subprocess.run(tool + ["--check"], capture_output=True, timeout=60).returncode == 0
    edited = tmp_path / "out" / FIXTURE.name
    edited.write_text(edited.read_text().replace("double", "triple"))
    result = subprocess.run(tool + ["--check"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and f"{FIXTURE.name}: differs" in result.stderr and "make student" in result.stderr
    assert "triple" in edited.read_text()  # --check writes nothing


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_the_exercise_edition_names_its_editions(path):
    exercise = nbformat.read(ROOT / "notebooks" / path.name, as_version=4).cells[0].source
    assert "/blob/main/notebooks/solutions/" not in exercise
    if path.name.startswith("00"):
        return
    solution = nbformat.read(path, as_version=4).cells[0].source
    assert student.SOLUTIONS_NOTE.format(name=path.name) in solution
    assert student.EXERCISES_NOTE.format(name=path.name) in exercise
